"""The CAM weightings against numpy on a model whose activations and gradients are known in closed form.

The model: A = 2x2 average pooling of the image (the captured layer, 4 x 4 x K), logits = W . flatten(A) (no
bias). So the gradient of class c with respect to A is W[:, c] reshaped, whatever the image, and each CAM's
coarse map follows from REFERENCE §10 (pytorch-grad-cam's formulas) in numpy; Score-CAM's masks are upsampled by
torch's ``interpolate(align_corners=True)``, the op pytorch-grad-cam uses, and its scores computed in numpy.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

import tf_gag
from tf_gag.methods.cams import CAMS

SIDE, K, CLASSES = 8, 3, 4


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4 * 4 * K, CLASSES)).astype(np.float32)
    inputs = keras.Input((SIDE, SIDE, K))
    pooled = keras.layers.AveragePooling2D(2, name="features")(inputs)
    logits = keras.layers.Dense(CLASSES, use_bias=False, name="head")(keras.layers.Flatten()(pooled))
    model = keras.Model(inputs, logits)
    model.get_layer("head").set_weights([weights])
    images = rng.uniform(0.1, 1.0, size=(2, SIDE, SIDE, K)).astype(np.float32)
    return model, weights, images


def _activations(images):
    return images.reshape(len(images), 4, 2, 4, 2, K).mean(axis=(2, 4)).astype(np.float64)


def _coarse(name, a, g):
    """(4, 4) rectified coarse map of one image, from (4, 4, K) activations and gradients."""
    total = a.sum(axis=(0, 1))
    if name == "grad_cam":
        weights = g.mean(axis=(0, 1))
    elif name == "grad_cam_pp":
        alpha = g**2 / (2 * g**2 + total * g**3 + 1e-6)
        weights = (np.where(g != 0, alpha, 0) * np.maximum(g, 0)).sum(axis=(0, 1))
    elif name == "xgrad_cam":
        weights = (g * a / (total + 1e-7)).sum(axis=(0, 1))
    elif name == "hires_cam":
        weights = g
    elif name == "layer_cam":
        weights = np.maximum(g, 0)
    return np.maximum((weights * a).sum(axis=-1), 0)


def _expected_maps(coarse):
    upsampled = tf.image.resize(np.stack(coarse)[..., None], (SIDE, SIDE), method="bilinear")[..., 0].numpy()
    low = upsampled.min(axis=(1, 2), keepdims=True)
    span = upsampled.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (upsampled - low) / np.where(span > 0, span, 1), 0)


@pytest.mark.parametrize("name", ["grad_cam", "grad_cam_pp", "xgrad_cam", "hires_cam", "layer_cam"])
def test_gradient_cams_match_their_formulas(setup, name):
    model, weights, images = setup
    method = {"grad_cam_pp": "grad_cam_plus_plus"}.get(name, name)
    targets = [1, 3]
    maps = tf_gag.explain(model, images, method, targets, layer="features")
    a = _activations(images)
    coarse = [_coarse(name, a[i], weights[:, t].reshape(4, 4, K).astype(np.float64)) for i, t in enumerate(targets)]
    np.testing.assert_allclose(maps, _expected_maps(coarse), atol=2e-5)


def _score_weights(model_weights, image, target, a, convention):
    upsampled = torch.nn.functional.interpolate(torch.tensor(a.transpose(2, 0, 1)[None]), size=(SIDE, SIDE),
                                                mode="bilinear", align_corners=True)[0].numpy()
    low = upsampled.min(axis=(1, 2), keepdims=True)
    masks = (upsampled - low) / (upsampled.max(axis=(1, 2), keepdims=True) - low + 1e-8)
    masked = image[None].astype(np.float64) * masks[..., None]  # (K, H, W, K channels of the image)
    logits = _activations(masked).reshape(K, -1) @ model_weights.astype(np.float64)
    if convention == "library":
        scores = logits[:, target]
        return np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities[:, target] - 1.0 / CLASSES  # a zero input has zero logits: uniform probabilities


@pytest.mark.parametrize("convention", ["library", "paper"])
def test_score_cam_weights_channels_by_the_scores_of_masked_images(setup, convention):
    model, weights, images = setup
    targets = [0, 2]
    maps = tf_gag.explain(model, images, "score_cam", targets, layer="features", convention=convention,
                          mask_batch=2)  # 2 x 3 masks in batches of 2: across images
    a = _activations(images)
    coarse = [np.maximum((_score_weights(weights, images[i], t, a[i], convention) * a[i]).sum(axis=-1), 0)
              for i, t in enumerate(targets)]
    np.testing.assert_allclose(maps, _expected_maps(coarse), atol=2e-5)


def test_hires_cam_is_grad_cam_when_the_gradient_is_constant_over_the_map():
    # A global average pooling head: d logit / d A_k = w_k / (h w) at every position.
    inputs = keras.Input((SIDE, SIDE, 2))
    features = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="features")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features)))
    images = np.random.default_rng(1).normal(size=(2, SIDE, SIDE, 2)).astype(np.float32)
    grad_cam = tf_gag.explain(model, images, "grad_cam", 1)
    np.testing.assert_allclose(tf_gag.explain(model, images, "hires_cam", 1), grad_cam, atol=1e-6)
    np.testing.assert_allclose(tf_gag.explain(model, images, "xgrad_cam", 1), grad_cam, atol=1e-5)


def test_every_cam_is_registered_and_refuses_what_it_cannot_use(setup):
    model, _, images = setup
    listed = {info["parts"].get("cam") for info in tf_gag.list_methods().values()}
    assert set(CAMS) <= listed
    with pytest.raises(ValueError, match="convention: expected one of"):
        tf_gag.Explainer(model, "score_cam", convention="other")
    with pytest.raises(ValueError, match="mask_batch: expected an integer >= 1"):
        tf_gag.Explainer(model, "score_cam", mask_batch=0)
    with pytest.raises(ValueError, match="cam: a CAM weighting"):
        tf_gag.Explainer(model, tf_gag.Method(cam="grad_cam"))
    with pytest.raises(ValueError, match="cam: a layer source needs a CAM weighting"):
        tf_gag.Explainer(model, tf_gag.Method(source="layer"))


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_plus_plus", "xgrad_cam", "hires_cam", "layer_cam",
                                    "score_cam"])
def test_every_cam_reads_tokens_as_their_patch_grid(method):
    """A transformer-like model: its (N, 16, c) tokens are the 4 x 4 patch map reshaped, so each CAM on the tokens
    equals the same CAM on the map."""
    def seeded(seed):  # fixed weights: with Keras' unseeded draw, a CAM may be all zero in some processes
        return {"kernel_initializer": keras.initializers.GlorotUniform(seed=seed)}

    inputs = keras.Input((SIDE, SIDE, 2))
    patches = keras.layers.Conv2D(3, 2, strides=2, activation="relu", name="patches", **seeded(1))(inputs)
    tokens = keras.layers.Reshape((16, 3), name="tokens")(patches)  # the (N, 4, 4, 3) map as 16 tokens
    mixed = keras.layers.Dense(3, activation="tanh", **seeded(2))(tokens)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, **seeded(3))(keras.layers.Flatten()(mixed)))
    images = np.random.default_rng(2).uniform(0, 1, size=(2, SIDE, SIDE, 2)).astype(np.float32)
    on_tokens = tf_gag.explain(model, images, method, [0, 3], layer="tokens")
    on_map = tf_gag.explain(model, images, method, [0, 3], layer="patches")
    assert on_tokens.max() == 1.0
    np.testing.assert_allclose(on_tokens, on_map, atol=1e-6)
