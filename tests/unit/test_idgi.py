"""IDGI against closed forms: on a linear model every path gives w_i^2 / ||w||^2 (f(x) - f(x_0)); on any model the
attributions sum to f(x) - f(x_0) exactly (each step's shares sum to 1)."""
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

import tf_gag

SHAPE = (8, 8, 2)


def _linear(w, bias):
    def model(x):
        return tf.reshape(x, [tf.shape(x)[0], -1]) @ tf.constant(w.reshape(-1, w.shape[-1])) + bias

    return model


def _blurred(image, sigma, radius):
    """The image blurred as BlurIG's path start: scipy's Gaussian (mirror with the edge repeated, same radius)."""
    return np.stack([scipy.ndimage.gaussian_filter(image[..., c], sigma, mode="reflect", truncate=radius / sigma)
                     for c in range(image.shape[-1])], axis=-1)


@pytest.mark.parametrize("method, options", [
    ("idgi", {"steps": 5}),
    ("idgi", {"steps": 3, "baseline": "uniform", "trials": 2}),
    ("guided_idgi", {"steps": 4}),
    ("blur_idgi", {"steps": 4, "max_sigma": 1.0}),
    ("integrated_gradients", {"steps": 3, "idgi": True, "noise_samples": 2}),
])
def test_linear_model_closed_form(rng, method, options):
    w = rng.normal(size=SHAPE + (3,)).astype(np.float32)
    images = rng.uniform(0, 1, size=(2,) + SHAPE).astype(np.float32)
    targets = [2, 0]
    raw = tf_gag.attributions(_linear(w, np.float32([0.5, -1, 2])), images, method, targets, batch_size=4, **options)
    for i, t in enumerate(targets):
        wt = w[..., t].astype(np.float64)
        share = wt**2 / (wt**2).sum()
        if method == "blur_idgi":
            start = _blurred(images[i].astype(np.float64), 1.0, 4)
            expected = share * (wt * (images[i] - start)).sum()
        elif "noise_samples" in options or options.get("baseline") == "uniform":
            # noisy copies or random baselines: the same shares, and the sum is the mean change of the score
            np.testing.assert_allclose(raw[i] / share, (raw[i] / share).mean(), rtol=1e-4)
            continue
        else:
            expected = share * (wt * images[i]).sum()  # zeros baseline: f(x) - f(0) = w . x
        np.testing.assert_allclose(raw[i], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("method", ["idgi", "guided_idgi", "blur_idgi"])
def test_attributions_sum_to_the_change_of_the_score(rng, method):
    """Completeness holds exactly on a non-linear model (IG's own sum would carry a Riemann error)."""
    a = rng.normal(size=(int(np.prod(SHAPE)), 2)).astype(np.float32)

    def model(x):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        return tf.sin(3 * flat) @ tf.constant(a)

    images = rng.uniform(0, 1, size=(2,) + SHAPE).astype(np.float32)
    raw = tf_gag.attributions(model, images, method, 1, steps=6, **({"max_sigma": 1.0} if method == "blur_idgi"
                                                                       else {}))
    start = np.zeros_like(images, np.float64)
    if method == "blur_idgi":
        start = np.stack([_blurred(image.astype(np.float64), 1.0, 4) for image in images])
    f = lambda x: (np.sin(3 * x.reshape(len(x), -1)) @ a.astype(np.float64))[:, 1]  # noqa: E731
    np.testing.assert_allclose(raw.reshape(2, -1).sum(axis=1), f(images.astype(np.float64)) - f(start), rtol=1e-4,
                               atol=1e-4)


def test_idgi_needs_a_path(rng):
    model = _linear(rng.normal(size=SHAPE + (2,)).astype(np.float32), 0.0)
    with pytest.raises(ValueError, match=r"smoothgrad does not take \['idgi'\]"):
        tf_gag.Explainer(model, "smoothgrad", idgi=True)
    with pytest.raises(ValueError, match="idgi: expected True or False"):
        tf_gag.Explainer(model, "ig", idgi=1)
    assert "idgi" not in tf_gag.list_methods()["geometrically_guided_ig"]["options"]
