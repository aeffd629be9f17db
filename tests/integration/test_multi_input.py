"""Keras models with an image input and other inputs (metadata): explained and scored with the others held fixed.

Independent references: the same model as a one-input callable per image (its metadata row fixed in the
closure, the path every one-input test checks), a plain tape for Vanilla Gradient, and Grad-CAM computed by
hand from the model's own layers.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gag

SIDE = 40


@pytest.fixture(scope="module")
def two_inputs():
    rng = np.random.default_rng(0)
    image = keras.Input((SIDE, SIDE, 3), name="image")
    metadata = keras.Input((4,), name="metadata")
    features = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    joined = keras.layers.Concatenate()([pooled, keras.layers.Dense(5, activation="relu", name="meta")(metadata)])
    logits = keras.layers.Dense(3, name="logits")(joined)
    model = keras.Model([image, metadata], keras.layers.Activation("softmax")(logits))
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    x = rng.normal(size=(3, SIDE, SIDE, 3)).astype(np.float32)
    meta = rng.normal(size=(3, 4)).astype(np.float32)
    return model, keras.Model(model.inputs, logits), x, meta


def per_image(logits_model, meta, i):
    """Image i's model as a one-input callable: its metadata row is a constant."""
    row = tf.constant(meta[i : i + 1])
    return lambda x: logits_model([x, tf.repeat(row, tf.shape(x)[0], axis=0)])


@pytest.mark.parametrize("method, options", [("vg", {}), ("gb", {}), ("ig", {"steps": 5}), ("gag", {"n_samples": 4}),
                                             ("guided_ig", {"steps": 5}), ("rectgrad", {}), ("ggig", {"points": 4})])
def test_every_method_holds_the_other_inputs_fixed(two_inputs, method, options):
    model, logits_model, x, meta = two_inputs
    ours = tf_gag.attributions(model, x, method, 1, inputs={"metadata": meta}, **options)
    for i in range(len(x)):
        alone = tf_gag.attributions(per_image(logits_model, meta, i), x[i : i + 1], method, 1, **options)
        np.testing.assert_allclose(ours[i], alone[0], rtol=1e-5, atol=1e-6 * np.abs(alone).max())


def test_vanilla_gradient_is_the_tape_gradient_and_grad_cam_the_hand_computed_one(two_inputs):
    model, logits_model, x, meta = two_inputs
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = logits_model([xt, tf.constant(meta)])[:, 2]
    np.testing.assert_allclose(tf_gag.attributions(model, x, "vg", 2, inputs=meta), tape.gradient(score, xt),
                               rtol=1e-5, atol=1e-7)
    parts = keras.Model(model.inputs, [model.get_layer("conv").output, logits_model.output])
    with tf.GradientTape() as tape:
        activations, logits = parts([xt, tf.constant(meta)])
        score = logits[:, 2]
    grads = tape.gradient(score, activations)
    cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, axis=[1, 2], keepdims=True) * activations, axis=-1))
    cam = tf.image.resize(cam[..., None], (SIDE, SIDE), method="bilinear")[..., 0].numpy()
    low, span = cam.min(axis=(1, 2), keepdims=True), np.ptp(cam, axis=(1, 2), keepdims=True)
    expected = np.where(span > 0, (cam - low) / np.where(span > 0, span, 1), 0)
    np.testing.assert_allclose(tf_gag.explain(model, x, "grad_cam", 2, inputs={"metadata": meta}), expected,
                               atol=1e-5)


def test_evaluate_changes_only_the_image(two_inputs):
    model, logits_model, x, meta = two_inputs
    maps = tf_gag.explain(model, x, "vg", 1, inputs={"metadata": meta})
    metrics = ("rcap", "dauc", "iauc")
    result = tf_gag.evaluate(model, x, maps, 1, metrics=metrics, inputs={"metadata": meta}, batch_size=2)
    for i in range(len(x)):
        alone = tf_gag.evaluate(per_image(logits_model, meta, i), x[i : i + 1], maps[i : i + 1], 1, metrics=metrics,
                                preprocessing=None)
        for metric in metrics:
            np.testing.assert_allclose(result[metric][i], alone[metric][0], rtol=1e-5, atol=1e-7)
    explained = tf_gag.evaluate(model, x, "vg", 1, metrics=("dauc",), inputs={"metadata": meta})
    np.testing.assert_allclose(explained["dauc"], result["dauc"], rtol=1e-5)


def test_bad_other_inputs_get_clear_errors(two_inputs, tmp_path):
    model, _, x, meta = two_inputs
    with pytest.raises(ValueError, match=r"inputs: the model also takes \['metadata'\] besides the image 'image'"):
        tf_gag.explain(model, x, "vg")
    with pytest.raises(ValueError, match=r"inputs: 'metadata' expected shape \(3, 4\) \(one row per image\), got"):
        tf_gag.explain(model, x, "vg", inputs={"metadata": meta[:2]})
    with pytest.raises(ValueError, match=r"inputs: expected the model's other inputs \['metadata'\]; unknown"):
        tf_gag.explain(model, x, "vg", inputs={"meta": meta})
    with pytest.raises(ValueError, match="image_input: the model has no input named 'photo'"):
        tf_gag.ModelAdapter(model, image_input="photo")
    with pytest.raises(ValueError, match="image_input: 'metadata' has shape"):
        tf_gag.ModelAdapter(model, image_input="metadata")
    with pytest.raises(ValueError, match=r"dataset: the model also takes \['metadata'\]; expected dict elements"):
        tf_gag.explain(model, tf.data.Dataset.from_tensor_slices(x), "vg")


def test_sanity_checks_take_the_other_inputs(two_inputs):
    model, _, x, meta = two_inputs
    weights = [w.copy() for w in model.get_weights()]
    result = tf_gag.sanity.randomization(model, x, ["vg", "grad_cam"], inputs={"metadata": meta})
    assert result.steps == ["logits", "meta", "conv"]
    assert np.isfinite(result.scores["spearman"]["vg"]).all()
    perturbed = tf_gag.sanity.perturbation(model, x, ["vg"], noise=[1e-4], inputs={"metadata": meta})
    assert perturbed.means("spearman_abs")["vg"][0] > 0.99
    for w, original in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(w, original)


def test_serving_export_takes_the_other_inputs_as_signature_arguments(two_inputs, tmp_path):
    model, _, x, meta = two_inputs
    path = tf_gag.export_saved_model(model, str(tmp_path / "serving"), "sg", n_samples=4)
    loaded = tf.saved_model.load(path)
    explained = loaded.signatures["explain_class"](images=tf.constant(x), targets=tf.constant([1, 1, 1]),
                                                    metadata=tf.constant(meta))
    expected = tf_gag.explain(model, x, "sg", 1, inputs={"metadata": meta}, n_samples=4)
    np.testing.assert_allclose(explained["saliency"].numpy(), expected, atol=1e-5)
    predicted = loaded.signatures["serving_default"](images=tf.constant(x), metadata=tf.constant(meta))
    np.testing.assert_allclose(predicted["probabilities"].numpy(), model.predict([x, meta], verbose=0), atol=1e-6)


@pytest.mark.kernels
def test_a_dataset_carries_the_other_inputs_as_keys(two_inputs):
    model, _, x, meta = two_inputs
    labels = np.array([0, 1, 2])
    elements = {"image": x, "metadata": meta, "label": labels, "name": ["a", "b", "c"]}  # "name": ignored
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    # The same batch_size on both paths: the same chunks, so the same float32 rounding and equal results.
    expected = tf_gag.explain(model, x, "vg", labels, inputs={"metadata": meta}, batch_size=2)
    np.testing.assert_array_equal(tf_gag.explain(model, dataset, "vg", batch_size=2), expected)
    streamed = tf_gag.evaluate(model, dataset, "vg", metrics=("dauc", "iauc"), batch_size=2)
    whole = tf_gag.evaluate(model, x, "vg", labels, metrics=("dauc", "iauc"), inputs={"metadata": meta},
                            batch_size=2)
    for metric in ("dauc", "iauc"):
        np.testing.assert_array_equal(streamed[metric], whole[metric])
