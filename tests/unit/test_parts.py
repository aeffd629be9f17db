"""Each part of a method alone, against numpy: folds over random chunkings, modifications' inputs and
contributions, interpretations, the variance guide, and a new method as one part + one preset line."""
import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from reference import user_gradients

import tf_gag
from tf_gag.methods import folds, interpretations, modifications
from tf_gag.methods.jobs import Gradients, Jobs


def _run_fold(fold, contributions, interpretation, rng, order):
    """Feed (G, n, ...) contributions to ``fold`` in random chunks, in ``order`` ("sample" or "random")."""
    groups, n = contributions.shape[:2]
    jobs = [(g, k) for k in range(n) for g in range(groups)]
    if order == "random":
        jobs = [jobs[i] for i in rng.permutation(len(jobs))]
    state = fold.empty(groups, contributions.shape[2:])
    start = 0
    while start < len(jobs):
        size = int(rng.integers(1, 2 * groups + 2))
        chunk = jobs[start : start + size]
        index = np.array([g for g, _ in chunk], np.int32)
        values = np.stack([contributions[g, k] for g, k in chunk]).astype(np.float32)
        state = fold.update(state, tf.constant(values), interpretation, tf.constant(index))
        start += size
    return fold.finalize(state).numpy()


@pytest.mark.parametrize("order", ["sample", "random"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folds_over_random_chunkings_match_numpy(order, seed):
    rng = np.random.default_rng(seed)
    contributions = rng.normal(size=(3, 17, 4, 5, 2)).astype(np.float32)
    absolute = interpretations.Absolute()
    mean = _run_fold(folds.Mean(), contributions, absolute, rng, order)
    np.testing.assert_allclose(mean, np.abs(contributions).mean(axis=1), rtol=1e-5, atol=1e-6)
    variance = _run_fold(folds.Variance(), contributions, interpretations.Signed(), rng, order)
    np.testing.assert_allclose(variance, np.var(contributions, axis=1, ddof=1), rtol=1e-4, atol=1e-6)
    guided = _run_fold(folds.VarianceGuided(p=0.7), contributions, absolute, rng, order)
    v = np.var(contributions.astype(np.float64), axis=1, ddof=1)
    q = np.quantile(v.reshape(3, -1), 0.7, axis=1).reshape(3, 1, 1, 1)
    expected = np.abs(contributions).mean(axis=1) * np.where(v >= q, 1.0, v / q)
    np.testing.assert_allclose(guided, expected, rtol=1e-4, atol=1e-6)


def test_fold_state_has_named_fields_and_a_constant_stream_has_zero_variance():
    fold = folds.VarianceGuided()
    state = fold.empty(2, (3, 3, 1))
    assert state._fields == ("count", "total", "mean", "m2")
    same = np.full((2, 3, 3, 1), 0.1, np.float32)
    for _ in range(7):
        state = fold.update(state, tf.constant(same), interpretations.Signed(), tf.constant([0, 1]))
    np.testing.assert_array_equal(state.count.numpy(), [7, 7])
    assert np.all(folds.sample_variance(state.count, state.mean, state.m2).numpy() == 0.0)


@pytest.mark.parametrize("name", ["signed", "positive", "negative", "absolute", "square"])
def test_interpretations_match_numpy(name):
    values = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]], np.float32)
    expected = {
        "signed": values,
        "positive": np.maximum(values, 0),
        "negative": np.minimum(values, 0),
        "absolute": np.abs(values),
        "square": values**2,
    }[name]
    np.testing.assert_array_equal(interpretations.INTERPRETATIONS[name]()(tf.constant(values)).numpy(), expected)


def _jobs(modification, images, sample_index, seed=3):
    """(inputs, contributions of unit gradients) of jobs (image 0, each sample index)."""
    count = len(sample_index)
    jobs = Jobs(tf.constant(images), modification.params(images), tf.zeros(count, tf.int32),
                tf.constant(sample_index, tf.int32), tf.constant(seed, tf.int32), tf.zeros(count, tf.int32))
    jobs = jobs._replace(inputs=modification.inputs(jobs))
    unit = Gradients(tf.ones_like(jobs.inputs), jobs.inputs, *([tf.zeros(count)] * 3))
    return jobs.inputs.numpy(), modification.contributions(jobs, unit).numpy()


def _noise(seed, k, shape):
    return tf.random.stateless_normal(shape, seed=[seed, k]).numpy()


def test_gaussian_noise_inputs_scale_each_images_own_draw(rng):
    images = rng.uniform(-1, 3, size=(1, 4, 4, 2)).astype(np.float32)
    noise = modifications.GaussianNoise(n_samples=3, noise_level=0.2)
    inputs, contributions = _jobs(noise, images, [0, 2])
    sigma = 0.2 * (images.max() - images.min())
    for row, k in enumerate([0, 2]):
        np.testing.assert_allclose(inputs[row], images[0] + sigma * _noise(3, k, images.shape[1:]), rtol=1e-6)
    np.testing.assert_array_equal(contributions, 1.0)


@pytest.mark.parametrize("path_points", ["midpoint", "linspace"])
def test_straight_path_inputs_and_contributions(rng, path_points):
    images = rng.normal(size=(1, 3, 3, 1)).astype(np.float32)
    baseline = rng.normal(size=(3, 3, 1)).astype(np.float32)
    path = modifications.StraightPath(steps=4, baseline=baseline, path_points=path_points)
    inputs, contributions = _jobs(path, images, [0, 1, 3])
    alphas = (np.array([0, 1, 3]) + 0.5) / 4 if path_points == "midpoint" else np.array([0, 1, 3]) / 3
    for row, alpha in enumerate(alphas):
        np.testing.assert_allclose(inputs[row], baseline + alpha * (images[0] - baseline), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(contributions[row], images[0] - baseline, rtol=1e-6)


def test_blur_path_inputs_match_scipy_and_contributions_are_the_finite_difference(rng):
    images = rng.uniform(size=(1, 24, 24, 1)).astype(np.float32)
    blur = modifications.BlurPath(steps=4, max_sigma=4.0, grad_step=0.01)
    inputs, contributions = _jobs(blur, images, [1, 3])
    for row, k in enumerate([1, 3]):
        sigma = k * 4.0 / 4
        expected = scipy.ndimage.gaussian_filter(images[0, ..., 0], sigma, mode="reflect", truncate=3 * 4.01 / sigma)
        np.testing.assert_allclose(inputs[row, ..., 0], expected, atol=2e-5)
        further = scipy.ndimage.gaussian_filter(images[0, ..., 0], sigma + 0.01, mode="reflect",
                                                truncate=3 * 4.01 / (sigma + 0.01))
        np.testing.assert_allclose(contributions[row, ..., 0], -4.0 * (further - expected) / 0.01, atol=3e-2)
    assert blur.radius((24, 24)) == 13 and blur.radius((8, 8)) == 7  # computed where used, never stored


def test_noised_straight_path_runs_the_path_to_each_noisy_copy(rng):
    images = rng.uniform(0, 1, size=(1, 3, 3, 1)).astype(np.float32)
    noised = modifications.Noised(modifications.StraightPath(steps=2), noise_samples=3, noise_level=0.1)
    assert noised.n_jobs == 6
    inputs, contributions = _jobs(noised, images, [0, 1, 4, 5])
    sigma = 0.1 * (images.max() - images.min())
    for row, j in enumerate([0, 1, 4, 5]):
        noisy = images[0] + sigma * _noise(3, 2_000_003 + j // 2, images.shape[1:])
        np.testing.assert_allclose(inputs[row], ((j % 2) + 0.5) / 2 * noisy, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(contributions[row], noisy, rtol=1e-5, atol=1e-6)


def _quadratic_model(a):
    """score_c = sum(a_c * x^2): gradient 2 a_c x, in closed form."""

    def model(x):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        return tf.square(flat) @ tf.constant(a.reshape(a.shape[0], -1).T)

    return model


def test_smoothgrad_squared_is_the_mean_squared_gradient(rng):
    a = rng.normal(size=(2, 4, 4, 1)).astype(np.float32)
    images = rng.uniform(0, 1, size=(2, 4, 4, 1)).astype(np.float32)
    raw = tf_gag.attributions(_quadratic_model(a), images, "smoothgrad_squared", [1, 0], n_samples=5, seed=7)
    for i, target in enumerate([1, 0]):
        sigma = 0.15 * (images[i].max() - images[i].min())
        noisy = [images[i] + sigma * _noise(7, k, images.shape[1:]) for k in range(5)]
        expected = np.mean([(2 * a[target] * x) ** 2 for x in noisy], axis=0)
        np.testing.assert_allclose(raw[i], expected, rtol=1e-4, atol=1e-7)


def test_smooth_ig_is_ig_averaged_over_noisy_copies(rng):
    a = rng.normal(size=(2, 4, 4, 1)).astype(np.float32)
    images = rng.uniform(0, 1, size=(2, 4, 4, 1)).astype(np.float32)
    raw = tf_gag.attributions(_quadratic_model(a), images, "smooth_ig", 1, noise_samples=3, steps=4, seed=5)
    alphas = (np.arange(4) + 0.5) / 4
    for i in range(2):
        sigma = 0.15 * (images[i].max() - images[i].min())
        per_copy = []
        for k in range(3):
            x = images[i] + sigma * _noise(5, 2_000_003 + k, images.shape[1:])
            per_copy.append(np.mean([2 * a[1] * (alpha * x) * x for alpha in alphas], axis=0))
        np.testing.assert_allclose(raw[i], np.mean(per_copy, axis=0), rtol=1e-4, atol=1e-7)


@pytest.mark.kernels
def test_noise_composes_with_any_method_and_is_batch_independent(rng):
    a = rng.normal(size=(2, 8, 8, 1)).astype(np.float32)
    images = rng.uniform(0, 1, size=(3, 8, 8, 1)).astype(np.float32)
    model = _quadratic_model(a)
    for method in ("blur_ig", "guided_ig", "vg"):
        both = tf_gag.attributions(model, images, method, 0, noise_samples=2, batch_size=5)
        alone = tf_gag.attributions(model, images[1:2], method, 0, noise_samples=2, batch_size=2)
        plain = tf_gag.attributions(model, images[1:2], method, 0)
        # Other batch sizes, other chunks, other float32 rounding (kernels differ with the batch size). BlurIG
        # divides the difference of two blurs by grad_step = 0.01 and multiplies it by max_sigma = 50 and the
        # gradient; each blur, a weighted mean of pixels with |x| <= 1.6 (noise 0.15 on [0, 1]), may round one ulp
        # the other way: 2 eps |x| on the difference. Measured: 1.1e-4 against this bound's 1.2e-2; a leak from a
        # batch-mate would be of the size of the images' differences (0.2 and more).
        if method == "blur_ig":
            gradient = 2 * np.abs(a[0]).max() * 1.6  # |d score / dx| = |2 a x|
            scale = 50 * gradient * 2 * np.finfo(np.float32).eps * 1.6 / 0.01
            assert scale < np.abs(both[0] - both[1]).max() / 10
        else:
            scale = np.abs(alone).max() * 1e-5
        np.testing.assert_allclose(both[1:2], alone, atol=scale, err_msg=method)
        assert not np.allclose(alone, plain)
    with pytest.raises(ValueError, match=r"smoothgrad does not take \['noise_samples'\]"):
        tf_gag.attributions(model, images, "smoothgrad", 0, noise_samples=2)
    with pytest.raises(ValueError, match="noise_samples: expected an integer >= 0"):  # 0: no noise
        tf_gag.attributions(model, images, "ig", 0, noise_samples=-1)


def test_list_methods_reports_each_methods_parts_and_options():
    methods = tf_gag.list_methods()
    assert methods["guided_absolute_grad"]["parts"] == {
        "source": "input", "rule": "plain", "modification": "noise", "interpretation": "absolute", "fold": "guided",
        "post": "abs_sum",
    }
    assert methods["score_cam"]["parts"]["cam"] == "score_cam" and "cam" not in methods["smoothgrad"]["parts"]
    assert methods["guided_backprop"]["parts"]["rule"] == "guided"
    assert methods["grad_cam"]["parts"]["source"] == "layer" and methods["grad_cam"]["options"]["layer"] is None
    assert methods["smooth_ig"]["options"]["noise_samples"] == 10
    assert "noise_samples" not in methods["smoothgrad"]["options"]
    assert methods["guided_absolute_grad"]["options"]["p"] == 0.85


def test_guided_rule_leaves_every_other_gradient_plain():
    inputs = keras.Input((2, 2, 1))
    hidden = keras.layers.Dense(3, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    x = tf.random.stateless_normal((1, 2, 2, 1), seed=[1, 2])
    relu, relu6 = tf.nn.relu, tf.nn.relu6
    tf_gag.attributions(model, x.numpy(), "gb", 0)

    eager, traced = user_gradients(model, x)
    np.testing.assert_array_equal(traced, eager)
    assert tf.nn.relu is relu and tf.nn.relu6 is relu6
    assert not any("call" in vars(layer) for layer in model.layers)
