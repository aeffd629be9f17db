"""A real two-input Keras model: the sklesion Xception skin-lesion classifier (image 254 x 254 x 3 in 0-255 plus
10 metadata values, softmax over 7 classes; ``pip install --no-deps sklesion==0.2.2``, see ../shared/DATA.md)."""
import importlib.util
import os
import time

import numpy as np
import pytest
import tensorflow as tf

import tf_gag
from tf_gag import assets

pytest.importorskip("sklesion")


@pytest.fixture(scope="module")
def sklesion():
    import keras

    folder = list(importlib.util.find_spec("sklesion").submodule_search_locations)[0]
    return keras.models.load_model(os.path.join(folder, "model.keras"), compile=False)


@pytest.mark.kernels
def test_sklesion_every_kind_of_method_with_its_metadata_fixed(sklesion):
    import keras

    adapter = tf_gag.ModelAdapter(sklesion)
    assert adapter.input_shape == (254, 254, 3) and [o.shape for o in adapter.other_inputs] == [(10,)]
    (name,) = [o.name for o in adapter.other_inputs]
    images = assets.photos(("chelsea", "coffee"), size=254)
    meta = np.stack([np.linspace(0, 1, 10), np.linspace(1, 0, 10)]).astype(np.float32)
    started = time.perf_counter()
    vg = tf_gag.attributions(adapter, images, "vg", 0, inputs={name: meta})
    # Independent: the logits are the final softmax Dense's pre-activation, from the model's own layers.
    head = sklesion.layers[-1]
    kernel, bias = head.get_weights()
    penultimate = keras.Model(sklesion.inputs, head.input)
    xt = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = (penultimate([xt, tf.constant(meta)], training=False) @ kernel + bias)[:, 0]
    expected = tape.gradient(score, xt).numpy()
    # float32, graph vs eager: a ReLU pre-activation within rounding of 0 may switch (see test_onnx's Lite0 note)
    error = np.linalg.norm(vg - expected) / np.linalg.norm(expected)
    assert error <= 1e-3, error
    for method in ("gb", "grad_cam"):
        maps = tf_gag.explain(adapter, images, method, inputs={name: meta})
        assert maps.shape == (2, 254, 254) and np.isfinite(maps).all() and maps.max() == 1.0, method
    other = tf_gag.attributions(adapter, images, "vg", 0, inputs={name: meta[::-1].copy()})
    assert not np.allclose(other, vg)  # the metadata is used, row by row
    scores = tf_gag.evaluate(adapter, images, "vg", metrics=("dauc",), inputs={name: meta})
    assert np.isfinite(scores["dauc"]).all()
    print(f"sklesion: VG, GB, Grad-CAM and DAUC on 2 images in {time.perf_counter() - started:.1f} s")
