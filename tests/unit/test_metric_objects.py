"""Metric objects: their option checks, immutability, use alone and in `evaluate`, against numpy."""
import dataclasses
import math

import numpy as np
import pytest
from test_metrics_closed_form import W, sigmoid, sum_model

import tf_gag
from tf_gag.metrics import Metric

RNG = np.random.default_rng(7)
IMAGES = RNG.uniform(0, 0.2, (3, 5, 5, 2)).astype(np.float32)  # sums of pixels keep the probabilities near 0.5
MAPS = np.stack([RNG.permutation(25).reshape(5, 5) for _ in range(3)]).astype(np.float32) / 24  # no ties
MASKS = (RNG.uniform(0, 1, (3, 5, 5)) > 0.5).astype(np.float32)
SMALL_BLUR = {"blur_sigma": 1.0, "blur_kernel_size": 3}
PREP = tf_gag.Preprocessing(mean=25.0, std=250.0)  # black is -0.1 in the model's input space


def shown(saliency, fraction):
    """numpy: the paper's step, the ceil(fraction * P) most salient pixels (distinct values)."""
    count = math.ceil(round(fraction * saliency.size, 6))
    mask = np.zeros(saliency.size, bool)
    mask[np.argsort(-saliency.reshape(-1))[:count]] = True
    return mask.reshape(saliency.shape)[..., np.newaxis]


def numpy_rcap(images, maps, black, fractions):
    """RCAP of each map written out in numpy: mean over steps of (saliency ratio x P(target))."""
    out = []
    for image, saliency in zip(images, maps):
        terms = [saliency[shown(saliency, f)[..., 0]].sum() / saliency.sum()
                 * sigmoid(W * np.where(shown(saliency, f), image, black).sum()) for f in fractions]
        out.append(np.mean(terms))
    return np.array(out)


def numpy_deletion(images, maps, fill, fractions):
    """(N, K) probabilities when the top pixels are set to ``fill``, and their trapezoid areas."""
    curves = np.array([[sigmoid(W * np.where(shown(saliency, f), fill, image).sum()) for f in fractions]
                       for image, saliency in zip(images, maps)])
    return curves, ((curves[:, 1:] + curves[:, :-1]) / 2 * np.diff(fractions)).sum(axis=1)


# ----- options, checked when built --------------------------------------------


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: tf_gag.RCAP(lower_bound=0.5), r"lower_bound: expected a whole percentage .* got 0.5 \(a fraction\?"),
        (lambda: tf_gag.RCAP(lower_bound=100), r"lower_bound: expected a percentage in \[0, 100\)"),
        (lambda: tf_gag.RCAP(lower_bound=-10), r"lower_bound: expected a percentage in \[0, 100\)"),
        (lambda: tf_gag.RCAP(lower_bound=45), r"interval: expected a percentage that divides 100 - lower_bound = 55"),
        (lambda: tf_gag.RCAP(interval=0), r"interval: expected a percentage that divides"),
        (lambda: tf_gag.RCAP(interval=60), r"interval: expected a percentage that divides"),
        (lambda: tf_gag.RCAP(convention="strict"), r"convention: expected one of \['paper', 'reference'\]"),
        (lambda: tf_gag.Deletion(schedule="linear"), r"schedule: expected one of \['percentile', 'rise'\]"),
        (lambda: tf_gag.Deletion(steps=0), r"steps: expected an integer >= 1, got 0"),
        (lambda: tf_gag.Insertion(steps=2.5), r"steps: expected an integer >= 1, got 2.5"),
        (lambda: tf_gag.Insertion(pixels_per_step=0), r"pixels_per_step: expected an integer >= 1"),
        (lambda: tf_gag.Deletion(fill="grey"), r"fill: expected one of \['zero', 'black', 'blur'\], got 'grey'"),
        (lambda: tf_gag.Deletion(blur_sigma=0), r"blur_sigma: expected a finite number > 0, got 0"),
        (lambda: tf_gag.Insertion(blur_kernel_size=4), r"blur_kernel_size: expected an odd number of pixels, got 4"),
        (lambda: tf_gag.Insertion(convention="strict"), r"convention: expected one of"),
        (lambda: tf_gag.MAE(sqrt="yes"), r"sqrt: expected True or False, got 'yes'"),
        (lambda: tf_gag.RCAP(lower_bound=float("nan")), r"lower_bound: expected a whole percentage such as 50, got "
                                                        r"nan$"),
        (lambda: tf_gag.RCAP(interval=True), r"interval: expected a whole percentage such as 10, got True"),
        (lambda: tf_gag.Insertion(blur_sigma=float("inf")), r"blur_sigma: expected a finite number > 0, got inf"),
        (lambda: tf_gag.Deletion(blur_sigma="16"), r"blur_sigma: expected a finite number > 0, got '16'"),
        (lambda: tf_gag.Deletion(steps=True), r"steps: expected an integer >= 1, got True"),
        (lambda: tf_gag.Insertion(pixels_per_step=float("nan")), r"pixels_per_step: expected an integer >= 1, got nan"),
        (lambda: tf_gag.Insertion(blur_kernel_size="33"), r"blur_kernel_size: expected an integer >= 1, got '33'"),
        (lambda: tf_gag.Deletion(schedule=None), r"schedule: expected one of \['percentile', 'rise'\], got None"),
    ],
)
def test_bad_options_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_metrics_are_immutable_with_a_readable_repr():
    rcap = tf_gag.RCAP(lower_bound=40, interval=20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rcap.lower_bound = 60
    assert repr(rcap) == "RCAP(lower_bound=40, interval=20, convention='paper')"
    assert repr(tf_gag.Deletion()) == ("Deletion(steps=10, schedule='percentile', pixels_per_step=None, fill='zero', "
                                       "blur_sigma=16.0, blur_kernel_size=33, convention='paper')")
    assert repr(tf_gag.MAE(sqrt=True)) == "MAE(sqrt=True)"
    assert rcap == tf_gag.RCAP(40, 20) and hash(rcap) == hash(tf_gag.RCAP(40, 20)) and rcap != tf_gag.RCAP()


def test_names_directions_and_masks():
    metrics = [tf_gag.RCAP(), tf_gag.Deletion(), tf_gag.Insertion(), tf_gag.LogCoshDice(), tf_gag.MAE(),
               tf_gag.MAE(sqrt=True)]
    assert {m.name: m.better for m in metrics} == tf_gag.METRICS
    assert [m.needs_masks for m in metrics] == [False, False, False, True, True, True]
    assert [m.binary_masks for m in metrics] == [False, False, False, True, False, False]
    assert tf_gag.RCAP is tf_gag.metrics.RCAP and tf_gag.Deletion is tf_gag.metrics.Deletion


# ----- scores against numpy ---------------------------------------------------


def test_rcap_with_its_options_equals_numpy():
    result = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, metrics=[tf_gag.RCAP(lower_bound=40, interval=20)],
                             preprocessing=PREP)
    expected = numpy_rcap(IMAGES, MAPS, -0.1, [0.2, 0.4, 0.6])
    np.testing.assert_allclose(result["rcap"], expected, rtol=1e-6)
    np.testing.assert_allclose(result.curves["rcap"]["recovered"], [0.2, 0.4, 0.6])
    np.testing.assert_allclose(result.means()["rcap"], expected.mean(), rtol=1e-6)


@pytest.mark.parametrize("fill, value", [("zero", 0.0), ("black", -0.1)])
def test_deletion_with_its_options_equals_numpy(fill, value):
    result = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, metrics=tf_gag.Deletion(steps=4, fill=fill),
                             preprocessing=PREP)
    fractions = np.arange(4) / 4
    curves, areas = numpy_deletion(IMAGES, MAPS, value, fractions)
    np.testing.assert_allclose(result.curves["dauc"]["fraction"], fractions)
    np.testing.assert_allclose(result.curves["dauc"]["probability"], curves, rtol=1e-6)
    np.testing.assert_allclose(result["dauc"], areas, rtol=1e-6)
    # The dataset value is the area under the mean curve.
    mean_curve = curves.mean(axis=0)
    np.testing.assert_allclose(result.means()["dauc"], ((mean_curve[1:] + mean_curve[:-1]) / 8).sum(), rtol=1e-6)


# ----- alone, mixed, refused --------------------------------------------------


@pytest.mark.kernels
def test_a_metric_alone_equals_the_same_metric_in_evaluate():
    rcap, deletion, mae = tf_gag.RCAP(lower_bound=40, interval=20), tf_gag.Deletion(steps=5), tf_gag.MAE(sqrt=True)
    together = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, masks=MASKS, metrics=[rcap, deletion, mae],
                               batch_size=2)
    for metric in (rcap, deletion, mae):
        alone = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, masks=MASKS, batch_size=2, metrics=[metric])
        assert isinstance(alone, tf_gag.EvaluationResult) and list(alone) == [metric.name]
        np.testing.assert_array_equal(alone[metric.name], together[metric.name])
        assert alone.means() == {metric.name: together.means()[metric.name]}
    alone = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, batch_size=2, metrics=[rcap])  # the same chunks
    for key in ("recovered", "probability", "saliency_ratio"):
        np.testing.assert_array_equal(alone.curves["rcap"][key], together.curves["rcap"][key])


def test_a_mask_metric_alone_needs_masks():
    with pytest.raises(ValueError, match=r"masks: metrics \['log_cosh_dice'\] compare maps with ground-truth masks"):
        tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, metrics=[tf_gag.LogCoshDice()])


def test_a_metric_alone_warns_of_undefined_rcap():
    maps = MAPS.copy()
    maps[2] = 0.0
    with pytest.warns(UserWarning, match=r"image\(s\) \[2\] sum to 0, so their RCAP is undefined"):
        result = tf_gag.evaluate(sum_model, IMAGES, maps, targets=1, metrics=[tf_gag.RCAP()])
    assert np.isnan(result["rcap"][2]) and result.undefined() == {"rcap": 1}


def test_names_and_objects_mix():
    insertion = tf_gag.Insertion(**SMALL_BLUR)
    mixed = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, masks=MASKS,
                            metrics=["rcap", tf_gag.Deletion(steps=4), insertion, "sqrt_mae"])
    assert list(mixed) == ["rcap", "dauc", "iauc", "sqrt_mae"]
    np.testing.assert_allclose(mixed["rcap"], numpy_rcap(IMAGES, MAPS, 0.0, [0.1, 0.2, 0.3, 0.4, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(mixed["dauc"], numpy_deletion(IMAGES, MAPS, 0.0, np.arange(4) / 4)[1], rtol=1e-6)
    np.testing.assert_allclose(mixed["sqrt_mae"], np.sqrt(np.abs(MAPS - MASKS).mean(axis=(1, 2))), rtol=1e-6)
    alone = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, metrics=[insertion])
    np.testing.assert_array_equal(mixed["iauc"], alone["iauc"])
    assert "dauc           lower" in mixed.table()


def test_two_metrics_with_one_result_key_are_refused():
    with pytest.raises(ValueError, match=r"metrics: RCAP\(lower_bound=50, .*\) and RCAP\(lower_bound=40, .*\) both "
                                         r"give the result key 'rcap'; keep one"):
        tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, metrics=["rcap", tf_gag.RCAP(lower_bound=40)])
    with pytest.raises(ValueError, match=r"both give the result key 'dauc'"):
        tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, metrics=[tf_gag.Deletion(), tf_gag.Deletion(steps=5)])
    # The same metric twice (an object equal to a name's default) counts once.
    once = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, metrics=["rcap", tf_gag.RCAP(), "rcap"])
    assert list(once) == ["rcap"]


def test_other_objects_are_refused():
    with pytest.raises(ValueError, match=r"metrics: expected names from .* or tf_gag.metrics objects, got 50"):
        tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, metrics=["rcap", 50])


@pytest.mark.parametrize(
    "option, use",
    [
        ("lower_bound", "tf_gag.metrics.RCAP(lower_bound=...)"),
        ("interval", "tf_gag.metrics.RCAP(interval=...)"),
        ("convention", "tf_gag.metrics.RCAP(convention=...), tf_gag.metrics.Deletion(convention=...), "
                       "tf_gag.metrics.Insertion(convention=...)"),
        ("auc_schedule", "tf_gag.metrics.Deletion(schedule=...), tf_gag.metrics.Insertion(schedule=...)"),
        ("auc_steps", "tf_gag.metrics.Deletion(steps=...), tf_gag.metrics.Insertion(steps=...)"),
        ("pixels_per_step", "tf_gag.metrics.Deletion(pixels_per_step=...), "
                            "tf_gag.metrics.Insertion(pixels_per_step=...)"),
        ("deletion_fill", "tf_gag.metrics.Deletion(fill=...)"),
        ("blur_sigma", "tf_gag.metrics.Deletion(blur_sigma=...), tf_gag.metrics.Insertion(blur_sigma=...)"),
        ("blur_kernel_size", "tf_gag.metrics.Deletion(blur_kernel_size=...), "
                             "tf_gag.metrics.Insertion(blur_kernel_size=...)"),
    ],
)
def test_former_metric_options_of_evaluate_say_where_they_went(option, use):
    expected = f"{option}: evaluate() no longer takes metric options; use metrics=[{use}]"
    with pytest.raises(TypeError) as info:
        tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, **{option: 40})
    assert str(info.value) == expected


def test_an_unknown_keyword_is_a_plain_type_error():
    with pytest.raises(TypeError, match=r"evaluate\(\) got an unexpected keyword argument 'lowerbound'"):
        tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, lowerbound=40)


def test_a_new_metric_is_one_class():
    """evaluate knows no metric by name: a subclass of `Metric` scores, tabulates and averages like the others."""

    @dataclasses.dataclass(frozen=True)
    class MapMean(Metric):
        name = "map_mean"
        better = "lower"

        def score(self, batch):
            return np.asarray(batch.maps, np.float64).mean(axis=(1, 2)), {}

    result = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, metrics=[MapMean(), "rcap"], batch_size=2)
    np.testing.assert_allclose(result["map_mean"], MAPS.mean(axis=(1, 2)), rtol=1e-6)
    assert result.means()["map_mean"] == pytest.approx(MAPS.mean())
    assert "map_mean       lower" in result.table()
