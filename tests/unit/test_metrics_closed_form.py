"""Metrics on tiny cases computed by hand, and the paper's Figure 4 propositions."""
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

import tf_gag
from tf_gag import metrics

W = 0.5  # the sum model's weight


def sum_model(x):
    """Two logits [0, W * sum(x)]: P(class 1) = sigmoid(W * sum of pixel values)."""
    total = tf.reduce_sum(x, axis=[1, 2, 3])
    return tf.stack([tf.zeros_like(total), W * total], axis=1)


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


# 16 distinct saliency values 0/15 ... 15/15, scattered over a 4x4 map.
DISTINCT = (np.array([[3, 15, 7, 0], [11, 1, 14, 9], [5, 12, 2, 13], [8, 4, 10, 6]]) / 15.0).astype(np.float32)
ONES = np.ones((1, 4, 4, 1), np.float32)


def test_rcap_by_hand():
    # Steps recover 10..50 % of 16 pixels: ceil(1.6, 3.2, 4.8, 6.4, 8) = 2, 4, 5, 7, 8 pixels, the most
    # salient first. The map's values sum to 120/15; the top c pixels hold (15 + 14 + ...) / 15.
    counts = [2, 4, 5, 7, 8]
    top_sums = [15 + 14, 15 + 14 + 13 + 12, 65, 84, 92]
    ratio = np.array(top_sums) / 120.0
    probability = np.array([sigmoid(W * c) for c in counts])  # recovered pixels are 1, the rest black 0
    result = tf_gag.evaluate(sum_model, ONES, DISTINCT, targets=1, metrics="rcap")
    np.testing.assert_allclose(result.curves["rcap"]["saliency_ratio"][0], ratio, rtol=1e-6)
    np.testing.assert_allclose(result.curves["rcap"]["probability"][0], probability, rtol=1e-6)
    np.testing.assert_allclose(result["rcap"], [np.mean(ratio * probability)], rtol=1e-6)
    np.testing.assert_allclose(result.curves["rcap"]["recovered"], [0.1, 0.2, 0.3, 0.4, 0.5])
    # Without ties the reference convention recovers the same pixels.
    reference = tf_gag.evaluate(sum_model, ONES, DISTINCT, targets=1, metrics=tf_gag.RCAP(convention="reference"))
    np.testing.assert_allclose(reference["rcap"], result["rcap"], rtol=1e-6)


def test_rcap_with_other_steps_by_hand():
    # lower_bound 40, interval 20: steps recover 20, 40, 60 % of 16 pixels: ceil(3.2, 6.4, 9.6) = 4, 7, 10.
    counts = [4, 7, 10]
    ratio = np.array([15 + 14 + 13 + 12, 84, 105]) / 120.0
    probability = np.array([sigmoid(W * c) for c in counts])
    result = tf_gag.evaluate(sum_model, ONES, DISTINCT, targets=1, metrics=[tf_gag.RCAP(lower_bound=40, interval=20)])
    np.testing.assert_allclose(result.curves["rcap"]["recovered"], [0.2, 0.4, 0.6])
    np.testing.assert_allclose(result.curves["rcap"]["saliency_ratio"][0], ratio, rtol=1e-6)
    np.testing.assert_allclose(result["rcap"], [np.mean(ratio * probability)], rtol=1e-6)


def test_rcap_black_comes_from_the_preprocessing():
    # Inputs (x - 100) / 50: black pixels are -2 in the model's input space.
    prep = tf_gag.Preprocessing(mean=100.0, std=50.0)
    counts = [2, 4, 5, 7, 8]
    probability = [sigmoid(W * (c * 1.0 + (16 - c) * -2.0)) for c in counts]
    result = tf_gag.evaluate(sum_model, ONES, DISTINCT, targets=1, metrics="rcap", preprocessing=prep)
    np.testing.assert_allclose(result.curves["rcap"]["probability"][0], probability, rtol=1e-6)


def test_tie_rule_paper_and_reference():
    # Four pixels tie at the top value 1, four at 0.5, eight at 0.
    tied = np.zeros((4, 4), np.float32)
    tied[0] = 1.0
    tied[1] = 0.5
    paper = tf_gag.evaluate(sum_model, ONES, tied, targets=1, metrics="rcap")
    # Paper: M >= the c-th largest value, so ties join: 2 -> 4 pixels, 4 -> 4, 5 -> 8, 7 -> 8, 8 -> 8.
    np.testing.assert_allclose(
        paper.curves["rcap"]["probability"][0], [sigmoid(W * c) for c in (4, 4, 8, 8, 8)], rtol=1e-6
    )
    np.testing.assert_allclose(paper.curves["rcap"]["saliency_ratio"][0], [4 / 6, 4 / 6, 1, 1, 1], rtol=1e-6)
    # Reference: M > sort(M)[floor(p * 16) - 1] for p = .9 .. .5: indices 13, 11, 10, 8, 7 hold 1, .5, .5, .5, 0;
    # a threshold of 1 is clamped to 0 (recover everything above 0), as the PyTorch reference does.
    reference = tf_gag.evaluate(sum_model, ONES, tied, targets=1, metrics=tf_gag.RCAP(convention="reference"))
    np.testing.assert_allclose(
        reference.curves["rcap"]["probability"][0], [sigmoid(W * c) for c in (8, 4, 4, 4, 8)], rtol=1e-6
    )


def test_deletion_by_hand():
    # 10 steps delete 0, 10, ..., 90 % of 16 pixels: ceil(k * 1.6) pixels, set to 0.
    counts = [0, 2, 4, 5, 7, 8, 10, 12, 13, 15]
    curve = np.array([sigmoid(W * (16 - c)) for c in counts])
    result = tf_gag.evaluate(sum_model, ONES, DISTINCT, targets=1, metrics="dauc")
    np.testing.assert_allclose(result.curves["dauc"]["probability"][0], curve, rtol=1e-6)
    np.testing.assert_allclose(result.curves["dauc"]["fraction"], np.arange(10) / 10)
    area = sum((curve[i] + curve[i + 1]) / 2 * 0.1 for i in range(9))
    np.testing.assert_allclose(result["dauc"], [area], rtol=1e-6)


def test_insertion_against_numpy():
    """Insertion pastes the top pixels into a reflect-padded Gaussian blur (scipy's 'mirror')."""
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 2, (1, 6, 6, 1)).astype(np.float32)
    saliency = rng.permutation(36).reshape(6, 6).astype(np.float32) / 35
    background = ndimage.gaussian_filter(image[0, ..., 0].astype(np.float64), 1.0, mode="mirror", truncate=1.0)
    order = np.argsort(-saliency.reshape(-1))
    expected = []
    for k in range(10):
        shown = np.zeros(36, bool)
        shown[order[: math.ceil(k * 3.6 - 1e-9)]] = True
        composite = np.where(shown.reshape(6, 6), image[0, ..., 0], background)
        expected.append(sigmoid(W * composite.sum()))
    insertion = tf_gag.Insertion(blur_sigma=1.0, blur_kernel_size=3)
    result = tf_gag.evaluate(sum_model, image, saliency, targets=1, metrics=insertion)
    np.testing.assert_allclose(result.curves["iauc"]["probability"][0], expected, rtol=1e-5)
    np.testing.assert_allclose(result["iauc"], [np.trapezoid(expected, np.arange(10) / 10)], rtol=1e-5)


def test_rise_schedule_steps_through_every_pixel():
    # One row (4 pixels) per step, from none to all 16 deleted: 5 points over [0, 1].
    result = tf_gag.evaluate(sum_model, ONES, DISTINCT, targets=1, metrics=tf_gag.Deletion(schedule="rise"))
    curve = np.array([sigmoid(W * (16 - c)) for c in (0, 4, 8, 12, 16)])
    np.testing.assert_allclose(result.curves["dauc"]["fraction"], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(result.curves["dauc"]["probability"][0], curve, rtol=1e-6)
    np.testing.assert_allclose(result["dauc"], [np.trapezoid(curve, dx=0.25)], rtol=1e-6)
    fine = tf_gag.evaluate(sum_model, ONES, DISTINCT, targets=1,
                           metrics=tf_gag.Deletion(schedule="rise", pixels_per_step=6))
    np.testing.assert_allclose(fine.curves["dauc"]["fraction"], [0, 6 / 16, 12 / 16, 1.0])


def test_dice_and_mae_by_hand():
    p = np.array([[[1.0, 0.5], [0.0, 0.0]]])
    y = np.array([[[1.0, 1.0], [0.0, 0.0]]])
    dice = (2 * 1.5 + 1) / (2 + 1.5 + 1)
    np.testing.assert_allclose(metrics.log_cosh_dice(p, y), [math.log(math.cosh(1 - dice))])
    np.testing.assert_allclose(metrics.mae(p, y), [0.125])
    np.testing.assert_allclose(metrics.sqrt_mae(p, y), [math.sqrt(0.125)])
    result = tf_gag.evaluate(sum_model, np.ones((1, 2, 2, 1)), p, targets=1, masks=y,
                             metrics=("log_cosh_dice", "sqrt_mae"))
    np.testing.assert_allclose(result["log_cosh_dice"], [math.log(math.cosh(1 - dice))], rtol=1e-6)
    np.testing.assert_allclose(result["sqrt_mae"], [math.sqrt(0.125)], rtol=1e-6)


def test_dataset_auc_is_the_area_of_the_mean_curve():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (3, 4, 4, 1)).astype(np.float32)
    maps = rng.uniform(0, 1, (3, 4, 4)).astype(np.float32)
    small_blur = tf_gag.Insertion(blur_kernel_size=3, blur_sigma=1.0)
    result = tf_gag.evaluate(sum_model, images, maps, targets=1, metrics=("dauc", small_blur))
    for name in ("dauc", "iauc"):
        mean_curve = result.curves[name]["probability"].mean(axis=0)
        np.testing.assert_allclose(result.means()[name], np.trapezoid(mean_curve, np.arange(10) / 10), rtol=1e-12)
        np.testing.assert_allclose(result.means()[name], result[name].mean(), rtol=1e-12)


# ----- The paper's Figure 4 ---------------------------------------------------

SIZE = 60
SIDE = 27  # a centred 27 x 27 object covers 20.25 % of the 60 x 60 image


def object_mask():
    mask = np.zeros((SIZE, SIZE), np.float32)
    start = (SIZE - SIDE) // 2
    mask[start : start + SIDE, start : start + SIDE] = 1.0
    return mask


def object_model(x):
    """Confidence grows with the fraction r of the object recovered: logits [0, 10 (r - 0.5)]."""
    obj = tf.constant(object_mask())[tf.newaxis, :, :, tf.newaxis]
    r = tf.reduce_sum(x * obj, axis=[1, 2, 3]) / tf.reduce_sum(obj)
    return tf.stack([tf.zeros_like(r), 10.0 * (r - 0.5)], axis=1)


def gaussian_map(centre, sigma):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    g = np.exp(-((yy - centre) ** 2 + (xx - centre) ** 2) / (2 * sigma**2))
    return ((g - g.min()) / (g.max() - g.min())).astype(np.float32)


@pytest.fixture(scope="module")
def figure4():
    image = np.where(object_mask() > 0, 1.0, 0.5).astype(np.float32)[np.newaxis, :, :, np.newaxis]
    centre, shifted = (SIZE - 1) / 2, (SIZE - 1) / 2 + 0.3 * SIZE
    maps = np.stack(
        [gaussian_map(centre, 6), gaussian_map(centre, 18), gaussian_map(shifted, 6), gaussian_map(shifted, 18)]
    )
    images = np.repeat(image, 4, axis=0)
    return tf_gag.evaluate(object_model, images, maps, targets=1, metrics=("rcap", "dauc", "iauc"))


def test_figure4_rcap_orders_the_maps(figure4):
    m1, m2, m3, m4 = figure4["rcap"]
    assert m1 > m2  # Proposition 2: same coverage, the visually noisier map scores lower
    assert m1 > m3 > m4  # Proposition 1: the map covering more of the object scores higher


def test_figure4_deletion_insertion_cannot_tell_m1_from_m2(figure4):
    # M1 and M2 rank the pixels the same, so DAUC and IAUC score them the same; RCAP does not.
    for name in ("dauc", "iauc"):
        np.testing.assert_allclose(figure4[name][0], figure4[name][1], rtol=1e-9)
    assert figure4["rcap"][0] - figure4["rcap"][1] > 0.05
