"""Bad input to `tf_gag.evaluate`: one clear error naming the argument, or a documented outcome."""
import numpy as np
import pytest
import tensorflow as tf

import tf_gag


def sum_model(x):
    total = tf.reduce_sum(x, axis=[1, 2, 3])
    return tf.stack([tf.zeros_like(total), 0.1 * total], axis=1)


def probability_model(x):
    """Probabilities without a softmax op (a softmax op is bypassed to its logits in the traced graph)."""
    scores = tf.exp(sum_model(x))
    return scores / tf.reduce_sum(scores, axis=1, keepdims=True)


IMAGES = np.ones((2, 4, 4, 1), np.float32)
# The paper's three metrics on 4 x 4 images: the default 33 px insertion blur needs images of 17 px or more.
SMALL_BLUR = {"metrics": ("rcap", "dauc", tf_gag.Insertion(blur_kernel_size=3, blur_sigma=1.0))}
MAPS = np.random.default_rng(0).uniform(0, 1, (2, 4, 4)).astype(np.float32)


@pytest.mark.parametrize(
    "maps, match",
    [
        (np.ones((2, 5, 4)), r"maps: expected shape \(2, 4, 4\)"),
        (np.ones((3, 4, 4)), r"maps: expected shape \(2, 4, 4\)"),
        (np.ones((2, 4, 4, 3)), r"maps: expected shape"),
        (-MAPS, r"maps: expected non-negative saliency, got negative values in image\(s\) \[0, 1\]"),
        (np.where(np.arange(16).reshape(4, 4) == 3, np.nan, 1.0)[None].repeat(2, 0), r"maps: NaN or Inf"),
    ],
)
def test_bad_maps(maps, match):
    with pytest.raises(ValueError, match=match):
        tf_gag.evaluate(sum_model, IMAGES, maps, **SMALL_BLUR)


def test_maps_of_strings_are_rejected():
    with pytest.raises(TypeError, match="maps: expected a numeric"):
        tf_gag.evaluate(sum_model, IMAGES, np.array([["a"] * 4] * 4), **SMALL_BLUR)


def test_all_zero_map_has_undefined_rcap_and_is_left_out_of_the_mean():
    maps = MAPS.copy()
    maps[1] = 0.0
    with pytest.warns(UserWarning, match=r"image\(s\) \[1\] sum to 0, so their RCAP is undefined"):
        result = tf_gag.evaluate(sum_model, IMAGES, maps, targets=1, **SMALL_BLUR)
    assert np.isnan(result["rcap"][1]) and np.isfinite(result["rcap"][0])
    assert result.means()["rcap"] == pytest.approx(result["rcap"][0])
    assert result.undefined()["rcap"] == 1
    assert "(1 undefined)" in result.table()
    assert np.all(np.isfinite(result["dauc"])) and np.all(np.isfinite(result["iauc"]))
    assert result.to_dict()["scores"]["rcap"][1] is None


@pytest.mark.parametrize(
    "options, match",
    [
        ({"metrics": ("rcap", "auc")}, r"metrics: expected names from \['rcap', 'dauc', .*\] or tf_gag.metrics "
                                       r"objects, got 'auc'"),
        ({"metrics": ()}, r"metrics: expected names from .* got none"),
        ({"metrics": [tf_gag.Insertion()]}, r"blur_kernel_size: 33 px is too large for 4x4 images \(at most 7\)"),
        ({"metrics": [tf_gag.Deletion(fill="blur")]}, r"blur_kernel_size: 33 px is too large for 4x4 images"),
        ({"metrics": ["rcap", tf_gag.Deletion(blur_kernel_size=33)]}, None),
        ({"batch_size": 0}, r"batch_size: expected an integer >= 1"),
        ({"targets": 5}, r"targets: class ids must lie in \[0, 1\]"),
    ],
)
def test_bad_options(options, match):
    """Options checked against the images; each metric object checks its own when built (test_metric_objects)."""
    if match is None:  # only metrics that blur check the blur against the image size
        tf_gag.evaluate(sum_model, IMAGES, MAPS, **{**SMALL_BLUR, **options})
        return
    with pytest.raises(ValueError, match=match):
        tf_gag.evaluate(sum_model, IMAGES, MAPS, **{**SMALL_BLUR, **options})


@pytest.mark.parametrize(
    "masks, metrics, match",
    [
        (None, ("rcap", "log_cosh_dice"), r"masks: metrics \['log_cosh_dice'\] compare maps with ground-truth"),
        (np.ones((2, 3, 3)), "mae", r"masks: expected shape \(2, 4, 4\)"),
        (np.full((2, 4, 4), 0.5), "log_cosh_dice", r"masks: expected binary masks \(0 or 1 only\)"),
        (np.full((2, 4, 4), 2.0), "mae", r"masks: expected values in \[0, 1\]"),
    ],
)
def test_bad_masks(masks, metrics, match):
    with pytest.raises(ValueError, match=match):
        tf_gag.evaluate(sum_model, IMAGES, MAPS, masks=masks, metrics=metrics)


def test_soft_masks_are_fine_for_mae():
    result = tf_gag.evaluate(sum_model, IMAGES, MAPS, masks=np.full((2, 4, 4), 0.5), metrics="mae")
    np.testing.assert_allclose(result["mae"], np.abs(MAPS - 0.5).mean(axis=(1, 2)), rtol=1e-6)


def test_probability_outputs_are_refused_unless_declared():
    with pytest.raises(ValueError, match=r"model: its outputs look like probabilities .* output='probabilities'"):
        tf_gag.evaluate(probability_model, IMAGES, MAPS, targets=1, **SMALL_BLUR)
    declared = tf_gag.ModelAdapter(probability_model, output="probabilities")
    as_probabilities = tf_gag.evaluate(declared, IMAGES, MAPS, targets=1, **SMALL_BLUR)
    as_logits = tf_gag.evaluate(sum_model, IMAGES, MAPS, targets=1, **SMALL_BLUR)
    ending_in_softmax = tf_gag.evaluate(lambda x: tf.nn.softmax(sum_model(x)), IMAGES, MAPS, targets=1, **SMALL_BLUR)
    for name in ("rcap", "dauc", "iauc"):
        np.testing.assert_allclose(as_probabilities[name], as_logits[name], rtol=1e-6)
        np.testing.assert_allclose(ending_in_softmax[name], as_logits[name], rtol=1e-6)


def test_failed_batch_keeps_the_scores_already_computed():
    """The third image's recovered images fail inside the model; the first two keep their scores."""

    def fragile(x):
        # Fails only on an image mixing bright (50) pixels with black ones (-5): the third's recoveries.
        bad = tf.logical_and(tf.reduce_max(x) > 40.0, tf.reduce_min(x) < -1.0)
        check = tf.debugging.Assert(tf.logical_not(bad), ["bright and black pixels together"])
        with tf.control_dependencies([check]):
            return sum_model(x)

    images = np.ones((3, 4, 4, 1), np.float32)
    images[2] = 50.0
    maps = np.random.default_rng(1).uniform(0.1, 1, (3, 4, 4)).astype(np.float32)
    black = tf_gag.Preprocessing(mean=5.0, std=1.0)
    with pytest.raises(tf_gag.PartialResultError, match=r"the batch of images 2..2 failed") as info:
        tf_gag.evaluate(fragile, images, maps, targets=1, metrics="rcap", batch_size=2, preprocessing=black)
    np.testing.assert_array_equal(info.value.completed, [True, True, False])
    partial = info.value.partial
    assert np.all(np.isfinite(partial["rcap"][:2])) and np.isnan(partial["rcap"][2])
    assert np.isnan(partial.curves["rcap"]["probability"][2]).all()
    assert partial.means()["rcap"] == pytest.approx(partial["rcap"][:2].mean())


def _nan_on_black(x):
    """`sum_model`, with NaN outputs for an image holding a black (0) pixel: the metrics' composites do."""
    return sum_model(x) * tf.where(tf.reduce_min(x, axis=[1, 2, 3]) == 0.0, np.nan, 1.0)[:, tf.newaxis]


@pytest.mark.parametrize("metrics", ["rcap", "dauc"])
def test_non_finite_outputs_while_scoring_are_named_not_read_as_undefined_scores(metrics):
    """NaN outputs on the composites are the model's, not a map that sums to 0: a ModelOutputError names the images."""
    with pytest.raises(tf_gag.ModelOutputError, match=r"model: expected finite outputs \(logits or probabilities\), "
                                                      r"got NaN or Inf for the images the metrics composed from "
                                                      r"image\(s\) \[0, 1\]"):
        tf_gag.evaluate(_nan_on_black, IMAGES, MAPS, targets=1, metrics=metrics)


def test_non_finite_outputs_in_a_later_batch_name_the_image_among_all():
    images = np.concatenate([IMAGES, IMAGES])  # image 2 gets its first black pixel later than the others
    images[2] = 3.0

    def nan_on_three_and_black(x):
        hit = (tf.reduce_max(x, axis=[1, 2, 3]) > 2.5) & (tf.reduce_min(x, axis=[1, 2, 3]) == 0.0)
        return sum_model(x) * tf.where(hit, np.nan, 1.0)[:, tf.newaxis]

    maps = np.concatenate([MAPS, MAPS])
    with pytest.raises(tf_gag.PartialResultError, match=r"the batch of images 2..3 failed \(ModelOutputError: model: "
                                                        r"expected finite outputs .* composed from image\(s\) \[2\]"):
        tf_gag.evaluate(nan_on_three_and_black, images, maps, targets=1, metrics="rcap", batch_size=2)


def test_non_finite_outputs_on_the_images_themselves_are_named():
    images = IMAGES.copy()
    images[0, 0, 0, 0] = 0.0
    with pytest.raises(tf_gag.ModelOutputError, match=r"got NaN or Inf for image\(s\) \[0\]"):
        tf_gag.evaluate(_nan_on_black, images, MAPS, metrics="rcap")


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"method_options": [("n_samples", 4)]}, TypeError, r"method_options: expected a dict of the method's options"),
        ({"method_options": {"n_samples": 4}}, ValueError, r"method_options: only a method named by maps_or_method"),
        ({"seed": -1}, ValueError, r"seed: expected an integer in \[0, 2147483647\], got -1"),
        ({"seed": 0.5}, ValueError, r"seed: expected an integer"),
    ],
)
def test_evaluate_refuses_options_it_cannot_use(options, error, match):
    with pytest.raises(error, match=match):
        tf_gag.evaluate(sum_model, IMAGES, MAPS, metrics="rcap", **options)
