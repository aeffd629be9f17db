"""Grad-CAM on a Keras vision transformer's tokens, against a hand computation with a plain tape.

Tokens (N, 1 + h*w, c) are read as the h x w patch grid without the class token;
the automatic layer is the residual Add entering the last attention (the last
block's patch tokens reach the logits through the class token only: zero
gradient). The ONNX side is in tests/system/test_onnx.py (against torch hooks).
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
from vit_reference import DIM, GRID, SIZE, vision_transformer

import tf_gag
from tf_gag import assets


def hand_grad_cam(model, layer, images, targets):
    """Grad-CAM at ``layer``'s tokens: tape gradient, class token dropped, grid reshape, min-max per image."""
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tokens, logits = probe(x)
        score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
    grads = tape.gradient(score, tokens).numpy()[:, 1:].reshape(len(x), GRID, GRID, DIM)
    activations = tokens.numpy()[:, 1:].reshape(len(x), GRID, GRID, DIM)
    heat = np.maximum((grads.mean(axis=(1, 2), keepdims=True) * activations).sum(-1, keepdims=True), 0)
    heat = tf.image.resize(heat, (SIZE, SIZE), method="bilinear").numpy()[..., 0]
    low, high = heat.min((1, 2), keepdims=True), heat.max((1, 2), keepdims=True)
    return np.where(high > low, (heat - low) / np.where(high > low, high - low, 1), 0)  # a constant map: 0


@pytest.fixture(scope="module")
def images():
    return (assets.photos(("chelsea", "coffee", "astronaut"), size=SIZE) / 127.5 - 1).astype(np.float32)


def test_the_automatic_layer_is_the_residual_stream_entering_the_last_attention(images):
    model = vision_transformer()
    targets = model.predict(images, verbose=0).argmax(1)
    cam = tf_gag.explain(model, images, "grad_cam", targets)
    expected = hand_grad_cam(model, "block_0", images, targets)
    np.testing.assert_allclose(cam, expected, atol=1e-5)
    assert (expected.max(axis=(1, 2)) == 1).sum() >= 2  # not all-zero maps
    # the last block's output would give all-zero maps: its patch tokens do not reach the logits
    probe = keras.Model(model.inputs, [model.get_layer("block_1").output, model.outputs[0]])
    with tf.GradientTape() as tape:
        tokens, logits = probe(tf.constant(images))
        score = tf.reduce_sum(logits[:, 0])
    assert np.abs(tape.gradient(score, tokens).numpy()[:, 1:]).max() == 0


def test_a_token_layer_chosen_by_name(images):
    model = vision_transformer()
    targets = model.predict(images, verbose=0).argmax(1)
    cam = tf_gag.explain(model, images, "grad_cam", targets, layer="attention_residual_0")
    expected = hand_grad_cam(model, "attention_residual_0", images, targets)
    np.testing.assert_allclose(cam, expected, atol=1e-5)
    assert (expected.max(axis=(1, 2)) == 1).sum() >= 2  # not all-zero maps
    assert np.abs(expected - hand_grad_cam(model, "block_0", images, targets)).max() > 0.05  # not the automatic


def test_a_layer_that_is_neither_map_nor_tokens_is_refused(images):
    model = vision_transformer()
    with pytest.raises(ValueError, match=r"layer: 'first_token' outputs shape \(1, 24\); Grad-CAM needs"):
        tf_gag.explain(model, images, "grad_cam", layer="first_token")
