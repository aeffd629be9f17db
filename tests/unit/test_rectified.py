"""Rectified Gradients' backward rule against a numpy implementation of the reference rule, and its closed forms.

The numpy side follows REFERENCE.md §8: at every ReLU, importance = a * g with a the forward output and g the
incoming (already rectified) gradient; the gradient passes where importance > tau, tau the q-th percentile of
the example's importances with the 'nearest' rank rule; for SAME convolutions the padding trick zeroes the
output gradient's outer ring before the convolution's backward. RectGrad multiplies by the input at the end.
"""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from reference import user_gradients

import tf_gag


def nearest_rank(importance, q):
    """Per row: sort descending, take s[round_half_even((d - 1)(1 - q / 100))]."""
    flat = importance.reshape(len(importance), -1)
    k = np.clip(np.round((flat.shape[1] - 1) * (1 - q / 100)).astype(int), 0, flat.shape[1] - 1)
    return -np.sort(-flat, axis=1)[:, k].reshape((-1,) + (1,) * (importance.ndim - 1))


def rectify(a, g, q, tau=None):
    importance = a * g
    threshold = nearest_rank(importance, q) if tau is None else tau
    return g * (importance > threshold)


def dense_net(rng, sizes=(12, 9, 7, 4)):
    inputs = keras.Input((2, 2, 3))
    h = keras.layers.Flatten()(inputs)
    for width in sizes[1:-1]:
        h = keras.layers.Dense(width, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(sizes[-1])(h))
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(weights)
    return model, weights


def numpy_dense_rectgrad(weights, x, target, q, tau=None):
    """d logit / d x through rectified ReLUs, for a dense ReLU net with (kernel, bias) pairs."""
    a, activations = x.reshape(len(x), -1).astype(np.float64), []
    for kernel, bias in zip(weights[0:-2:2], weights[1:-2:2]):
        a = np.maximum(a @ kernel + bias, 0)
        activations.append(a)
    g = np.tile(weights[-2][:, target], (len(x), 1))
    for (kernel, _), a in zip(reversed(list(zip(weights[0:-2:2], weights[1:-2:2]))), reversed(activations)):
        g = rectify(a, g, q, tau) @ kernel.T
    return g.reshape(x.shape)


@pytest.mark.parametrize("q", [0.0, 50.0, 80.0, 98.0])
def test_dense_relu_net_matches_the_numpy_rule(rng, q):
    model, weights = dense_net(rng)
    x = rng.normal(size=(3, 2, 2, 3)).astype(np.float32)
    expected = numpy_dense_rectgrad(weights, x, 2, q)
    nobias = tf_gag.attributions(model, x, "rectgrad_nobias", 2, percentile=q)
    rectgrad = tf_gag.attributions(model, x, "rectgrad", 2, percentile=q)
    np.testing.assert_allclose(nobias, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rectgrad, x * expected, rtol=1e-4, atol=1e-5)


def numpy_conv_same(x, kernel):
    """Stride-1 SAME 3x3 convolution (correlation, as TF), NHWC."""
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    h, w = x.shape[1:3]
    return sum(np.einsum("nhwc,co->nhwo", padded[:, i : i + h, j : j + w], kernel[i, j]) for i in range(3)
               for j in range(3))


def numpy_conv_same_input_gradient(g, kernel):
    h, w = g.shape[1:3]
    out = np.zeros((g.shape[0], h + 2, w + 2, kernel.shape[2]))
    for i in range(3):
        for j in range(3):
            out[:, i : i + h, j : j + w] += np.einsum("nhwo,co->nhwc", g, kernel[i, j])
    return out[:, 1:-1, 1:-1]


def ring_zeroed(g):
    out = g.copy()
    out[:, [0, -1]] = 0
    out[:, :, [0, -1]] = 0
    return out


def conv_net(rng):
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(h)))
    weights = [rng.normal(size=w.shape).astype(np.float32) * 0.5 for w in model.get_weights()]
    model.set_weights(weights)
    return model, weights


def numpy_conv_rectgrad(weights, x, target, q, padding_trick, tau=None):
    k1, b1, k2, b2, dense, _ = [w.astype(np.float64) for w in weights]
    a1 = np.maximum(numpy_conv_same(x.astype(np.float64), k1) + b1, 0)
    a2 = np.maximum(numpy_conv_same(a1, k2) + b2, 0)
    g = np.tile(dense[:, target], (len(x), 1)).reshape(a2.shape)
    g = rectify(a2, g, q, tau)
    g = numpy_conv_same_input_gradient(ring_zeroed(g) if padding_trick else g, k2)
    g = rectify(a1, g, q, tau)
    return numpy_conv_same_input_gradient(ring_zeroed(g) if padding_trick else g, k1)


@pytest.mark.parametrize("padding_trick", [True, False])
@pytest.mark.parametrize("q", [60.0, 90.0, 98.0])
def test_same_padded_conv_net_matches_the_numpy_rule(rng, q, padding_trick):
    model, weights = conv_net(rng)
    x = rng.normal(size=(2, 6, 6, 2)).astype(np.float32)
    expected = numpy_conv_rectgrad(weights, x, 1, q, padding_trick)
    got = tf_gag.attributions(model, x, "rectgrad_nobias", 1, percentile=q, padding_trick=padding_trick)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_constant_threshold_and_threshold_zero_is_guided_backprop(rng):
    model, weights = conv_net(rng)
    x = rng.normal(size=(2, 6, 6, 2)).astype(np.float32)
    expected = numpy_conv_rectgrad(weights, x, 0, None, False, tau=0.05)
    got = tf_gag.attributions(model, x, "rectgrad_nobias", 0, threshold=0.05, padding_trick=False)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    guided = tf_gag.attributions(model, x, "gb", 0)
    zero = tf_gag.attributions(model, x, "rectgrad_nobias", 0, threshold=0.0, padding_trick=False)
    np.testing.assert_array_equal(zero, guided)
    np.testing.assert_allclose(tf_gag.attributions(model, x, "rectgrad", 0, threshold=0.0, padding_trick=False),
                               x * guided, rtol=1e-6)


def test_model_without_relus_gives_the_closed_forms_and_says_so(rng):
    kernel = rng.normal(size=(12, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Flatten(), keras.layers.Dense(3, use_bias=False)])
    model.layers[-1].set_weights([kernel])
    x = rng.normal(size=(2, 2, 2, 3)).astype(np.float32)
    gradient = np.broadcast_to(kernel[:, 1].reshape(2, 2, 3), x.shape)
    with pytest.warns(UserWarning, match="found no ReLU/ReLU6 op .* the plain one"):
        rectgrad = tf_gag.attributions(model, x, "rectgrad", 1)
    np.testing.assert_allclose(rectgrad, x * gradient, rtol=1e-6)
    with pytest.warns(UserWarning, match="found no ReLU"):
        np.testing.assert_allclose(tf_gag.attributions(model, x, "rectgrad_nobias", 1), gradient, rtol=1e-6)


def test_small_layer_at_q98_gives_an_all_zero_map_never_nan(rng):
    model, _ = dense_net(rng, sizes=(12, 3, 4))
    x = rng.normal(size=(2, 2, 2, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        maps = tf_gag.explain(model, x, "rectgrad", 0)
    assert np.all(maps == 0.0)


def test_rectified_maps_are_batch_independent_and_thresholds_per_example(rng):
    model, _ = conv_net(rng)
    x = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    together = tf_gag.attributions(model, x, "rectgrad", 2, batch_size=3)
    for i in range(3):
        np.testing.assert_allclose(together[i : i + 1], tf_gag.attributions(model, x[i : i + 1], "rectgrad", 2),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"percentile": -1}, r"percentile: expected a number in \[0, 100\]"),
        ({"percentile": 100.5}, r"percentile: expected a number in \[0, 100\]"),
        ({"percentile": "98"}, r"percentile: expected a number"),
        ({"threshold": float("nan")}, r"threshold: expected a finite number"),
        ({"threshold": float("inf")}, r"threshold: expected a finite number"),
        ({"padding_trick": "yes"}, r"padding_trick: expected True or False"),
    ],
)
def test_bad_options_are_named(rng, options, match):
    model, _ = dense_net(rng)
    with pytest.raises(ValueError, match=match):
        tf_gag.Explainer(model, "rectgrad", **options)


def test_rule_is_listed_with_its_options_and_variants():
    methods = tf_gag.list_methods()
    for name in ("rectified_gradients", "rectified_gradients_nobias"):
        assert methods[name]["parts"]["rule"] == "rectified"
        assert methods[name]["options"]["percentile"] == 98.0 and methods[name]["options"]["padding_trick"] is True
        assert methods[name]["variants"] == ["+", "-", "A", "G", "GA"]
    assert methods["rectified_gradients"]["parts"]["modification"] == "times_input"


def test_g_variant_samples_under_noise(rng):
    model, _ = conv_net(rng)
    x = rng.normal(size=(1, 6, 6, 2)).astype(np.float32)
    # by default over the paper's n = 20 noisy copies, as GB's G variant samples n = 20 noisy inputs
    assert tf_gag.Explainer(model, "rectgrad", variant="GA").options["noise_samples"] == 20
    with pytest.raises(ValueError, match="noise_samples: a variance needs at least 2 samples"):
        tf_gag.explain(model, x, "rectgrad", 0, variant="GA", noise_samples=1)
    maps = tf_gag.explain(model, x, "rectgrad", 0, variant="GA", noise_samples=3)
    assert maps.shape == (1, 6, 6) and np.isfinite(maps).all()
    plus = tf_gag.attributions(model, x, "rectgrad", 0, variant="+")
    assert plus.min() >= 0


def test_other_threads_keep_plain_relu6_gradients_while_rectified_traces(rng):
    inputs = keras.Input((4, 4, 1))
    h = keras.layers.ReLU(max_value=6.0)(keras.layers.Conv2D(2, 3, padding="same")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    x = tf.constant(rng.normal(size=(1, 4, 4, 1)).astype(np.float32) * 5)
    tf_gag.attributions(model, x.numpy(), "rectgrad", 0)
    eager, traced = user_gradients(model, x)
    np.testing.assert_array_equal(traced, eager)


def test_relu6_keeps_its_zero_derivative_above_six(rng):
    inputs = keras.Input((2, 2, 3))
    hidden = keras.layers.Dense(40, activation="relu6")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    kernel, bias, head, head_bias = [rng.normal(size=w.shape).astype(np.float32) * 3 for w in model.get_weights()]
    model.set_weights([kernel, bias, head, head_bias])
    x = rng.normal(size=(2, 2, 2, 3)).astype(np.float32)
    z = x.reshape(2, -1).astype(np.float64) @ kernel + bias
    assert (z > 6).any() and (z < 0).any()
    g = np.tile(head[:, 1], (2, 1)) * (z < 6)
    expected = (rectify(np.clip(z, 0, 6), g, 70.0) @ kernel.T).reshape(x.shape)
    got = tf_gag.attributions(model, x, "rectgrad_nobias", 1, percentile=70.0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_padding_trick_on_one_pixel_maps_like_squeeze_excite(rng):
    """A SAME 1x1 conv on a pooled (N, 1, 1, C) map (squeeze-excite): its whole 1-pixel map is the ring."""
    def seeded(seed):  # weights fixed here, not by the global Keras RNG (test order must not matter)
        return {"kernel_initializer": keras.initializers.GlorotUniform(seed=seed), "bias_initializer": "ones"}

    inputs = keras.Input((6, 6, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", **seeded(1))(inputs)
    squeezed = keras.layers.Reshape((1, 1, 4))(keras.layers.GlobalAveragePooling2D()(h))
    excite = keras.layers.Conv2D(4, 1, padding="same", activation="relu", **seeded(2))(squeezed)
    scaled = keras.layers.Multiply()([h, excite])
    model = keras.Model(inputs, keras.layers.Dense(2, **seeded(3))(keras.layers.GlobalAveragePooling2D()(scaled)))
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    with_trick = tf_gag.attributions(model, x, "rectgrad_nobias", 0, percentile=50.0)
    without = tf_gag.attributions(model, x, "rectgrad_nobias", 0, percentile=50.0, padding_trick=False)
    assert with_trick.shape == x.shape and np.isfinite(with_trick).all()
    assert not np.allclose(with_trick, without)
