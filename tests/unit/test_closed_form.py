"""Methods on models whose gradients and integrals are known in closed form."""
import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from reference import minmax

import tf_gag


def linear_model(weights, bias):
    """Keras model: logits = flatten(x) @ weights + bias."""
    h, w, c, k = weights.shape
    model = keras.Sequential([keras.Input((h, w, c)), keras.layers.Flatten(), keras.layers.Dense(k)])
    model.layers[-1].set_weights([weights.reshape(-1, k), bias])
    return model


@pytest.fixture
def linear(rng):
    weights = rng.normal(size=(6, 5, 3, 4)).astype(np.float32)
    bias = rng.normal(size=(4,)).astype(np.float32)
    images = rng.normal(size=(3, 6, 5, 3)).astype(np.float32)
    return linear_model(weights, bias), weights, bias, images


def test_vanilla_gradient_of_linear_model_is_weights(linear):
    model, weights, _, images = linear
    targets = [0, 3, 1]
    raw = tf_gag.attributions(model, images, "vg", targets)
    np.testing.assert_allclose(raw, np.moveaxis(weights[..., targets], -1, 0), rtol=1e-5, atol=1e-6)
    maps = tf_gag.explain(model, images, "vg", targets)
    expected = minmax(np.abs(np.moveaxis(weights[..., targets], -1, 0)).sum(axis=-1))
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_vargrad_of_linear_model_is_zero_and_not_nan(linear):
    model, _, _, images = linear
    raw = tf_gag.attributions(model, images, "vargrad", 2, n_samples=5)
    np.testing.assert_allclose(raw, 0.0, atol=1e-8)
    maps = tf_gag.explain(model, images, "vargrad", 2, n_samples=5)
    assert np.all(np.isfinite(maps)) and np.all(maps == 0)


def smooth_model(x):
    """Two logits of a smooth nonlinear function: [sum sin(x) * a, sum x^2 * b + x]."""
    a = tf.reshape(tf.linspace(0.5, 1.5, 4 * 4 * 3), (4, 4, 3))
    s0 = tf.reduce_sum(tf.sin(2.0 * x) * a, axis=[1, 2, 3])
    s1 = tf.reduce_sum(0.3 * tf.square(x) * a + x, axis=[1, 2, 3])
    return tf.stack([s0, s1], axis=1)


@pytest.mark.parametrize("target", [0, 1])
def test_integrated_gradients_completeness(rng, target):
    images = rng.uniform(-1, 1, size=(2, 4, 4, 3)).astype(np.float32)
    raw = tf_gag.attributions(smooth_model, images, "ig", target, steps=20)
    expected = smooth_model(images).numpy()[:, target] - smooth_model(np.zeros_like(images)).numpy()[:, target]
    np.testing.assert_allclose(raw.sum(axis=(1, 2, 3)), expected, rtol=0.01)


def test_integrated_gradients_of_linear_model_is_closed_form(linear):
    model, weights, _, images = linear
    baseline = np.full((6, 5, 3), 0.25, np.float32)
    raw = tf_gag.attributions(model, images, "ig", 1, baseline=baseline, steps=7)
    np.testing.assert_allclose(raw, weights[..., 1] * (images - baseline), rtol=1e-4, atol=1e-5)


def test_guided_ig_equals_ig_on_linear_model(linear):
    model, _, _, images = linear
    ig = tf_gag.attributions(model, images, "ig", 2, steps=10)
    gig = tf_gag.attributions(model, images, "guided_ig", 2, steps=10)
    np.testing.assert_allclose(gig, ig, rtol=1e-4, atol=1e-5)


def test_guided_ig_is_complete_on_nonlinear_model(rng):
    images = rng.uniform(-1, 1, size=(2, 4, 4, 3)).astype(np.float32)
    raw = tf_gag.attributions(smooth_model, images, "guided_ig", 1, steps=200, max_dist=0.02)
    expected = smooth_model(images).numpy()[:, 1] - smooth_model(np.zeros_like(images)).numpy()[:, 1]
    np.testing.assert_allclose(raw.sum(axis=(1, 2, 3)), expected, rtol=0.02)


def test_blur_ig_matches_closed_form_for_linear_model(linear):
    """For f = w.x the BlurIG sum is -sum_k ds * w . (blur(s_k + h) - blur(s_k)) / h (scipy blur)."""
    model, weights, _, images = linear
    steps, max_sigma, h = 10, 3.0, 0.01
    raw = tf_gag.attributions(model, images, "blur_ig", 0, steps=steps, max_sigma=max_sigma, grad_step=h)
    radius = 4  # ceil(3 * (max_sigma + h)) capped by min(H, W) - 1 = 4
    w = weights[..., 0]

    def blur(image, sigma):
        if sigma == 0:
            return image
        return scipy.ndimage.gaussian_filter(image, (sigma, sigma, 0), mode="reflect", radius=(radius, radius, 0))

    for image, got in zip(images, raw):
        expected = np.zeros_like(image, dtype=np.float64)
        for k in range(steps):
            s = k * max_sigma / steps
            expected -= (max_sigma / steps) * w * (blur(image, s + h) - blur(image, s)) / h
        np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)
    # completeness: with fine steps the sum approaches f(x) - f(blur(x, max_sigma))
    fine = tf_gag.attributions(model, images, "blur_ig", 0, steps=300, max_sigma=max_sigma, grad_step=h)
    for image, got in zip(images, fine):
        np.testing.assert_allclose(got.sum(), (w * (image - blur(image, max_sigma))).sum(), rtol=0.03)


def test_blur_ig_reference_sign_flips_attributions(linear):
    model, _, _, images = linear
    ours = tf_gag.attributions(model, images, "blur_ig", 0, steps=4, max_sigma=2.0)
    reference = tf_gag.attributions(model, images, "blur_ig", 0, steps=4, max_sigma=2.0, reference_sign=True)
    np.testing.assert_allclose(reference, -ours, rtol=1e-6, atol=1e-7)


def test_smoothgrad_of_linear_model_is_weights(linear):
    model, weights, _, images = linear
    raw = tf_gag.attributions(model, images, "sg", 3, n_samples=4)
    np.testing.assert_allclose(raw, np.broadcast_to(weights[..., 3], raw.shape), rtol=1e-4, atol=1e-5)
