"""Geometrically Guided IG: the selection fold against numpy, closed forms, the ascent guide, batch independence."""
import numpy as np
import pytest
import tensorflow as tf

import tf_gag
from tf_gag.methods import folds, interpretations


@pytest.mark.parametrize("selection", ["magnitude", "max"])
def test_select_fold_over_random_chunks_matches_numpy(rng, selection):
    values = rng.normal(size=(3, 9, 4, 4, 2)).astype(np.float32)  # (images, contributions, ...)
    fold = folds.Select(selection)
    state = fold.empty(3, values.shape[2:])
    jobs = [(g, k) for k in range(9) for g in range(3)]
    jobs = [jobs[i] for i in rng.permutation(len(jobs))]
    for start in range(0, len(jobs), 5):
        chunk = jobs[start : start + 5]
        state = fold.update(state, tf.constant(np.stack([values[g, k] for g, k in chunk])),
                            interpretations.Signed(), tf.constant([g for g, _ in chunk], tf.int32))
    if selection == "max":
        expected = values.max(axis=1)
    else:
        index = np.abs(values).argmax(axis=1)
        expected = np.take_along_axis(values, index[:, None], axis=1)[:, 0]
    np.testing.assert_array_equal(fold.finalize(state).numpy(), expected)


def linear(w):
    return lambda x: tf.reshape(x, [tf.shape(x)[0], -1]) @ tf.constant(w.reshape(-1, w.shape[-1]))


@pytest.mark.parametrize("options", [{}, {"selection": "max"}, {"ascent_steps": 3, "ascent_step_size": 0.5},
                                     {"points": 1}])
def test_linear_model_gives_w_times_x_minus_baseline_for_any_rule(rng, options):
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    x = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
    baseline = rng.normal(size=(3, 3, 2)).astype(np.float32)
    got = tf_gag.attributions(linear(w), x, "ggig", 1, baseline=baseline, **options)
    np.testing.assert_allclose(got, w[..., 1] * (x - baseline), rtol=1e-5, atol=1e-6)
    plain = tf_gag.attributions(linear(w), x, "ggig", 1, times_delta=False, **options)
    np.testing.assert_allclose(plain, np.broadcast_to(w[..., 1], x.shape), rtol=1e-6)


def cubic(a):
    """score = sum(a * x^3): gradient 3 a x^2, largest in magnitude at the largest scale."""
    return lambda x: tf.reshape(tf.reduce_sum(tf.constant(a) * x**3, axis=[1, 2, 3]), [-1, 1])


def test_selection_picks_what_the_docs_say_on_a_cubic(rng):
    a = np.where(rng.uniform(size=(4, 4, 1)) > 0.5, 1.0, -1.0).astype(np.float32)
    x = rng.uniform(0.5, 1.5, size=(1, 4, 4, 1)).astype(np.float32)
    points = 5
    # Gradient at alpha x is 3 a alpha^2 x^2; times (x - 0). Magnitude: alpha = 1 wins, sign kept.
    magnitude = tf_gag.attributions(cubic(a), x, "ggig", 0, points=points)
    np.testing.assert_allclose(magnitude, 3 * a * x**3, rtol=1e-5)
    # Largest value: alpha = 1 where a > 0, the smallest scale alpha = 1 / points where a < 0.
    largest = tf_gag.attributions(cubic(a), x, "ggig", 0, points=points, selection="max")
    alpha = np.where(a > 0, 1.0, 1.0 / points)
    np.testing.assert_allclose(largest, 3 * a * alpha**2 * x**3, rtol=1e-5)


def test_ascent_guide_climbs_each_point_and_zero_steps_is_the_plain_scaled_path(rng):
    a = rng.uniform(0.1, 0.4, size=(4, 4, 1)).astype(np.float32)

    def quadratic(x):  # score = sum(a x^2): gradient 2 a x, ascent x <- x (1 + 2 a eta)
        return tf.reshape(tf.reduce_sum(tf.constant(a) * x**2, axis=[1, 2, 3]), [-1, 1])

    x = rng.uniform(0.5, 1.0, size=(2, 4, 4, 1)).astype(np.float32)
    points, steps, eta = 4, 3, 0.2
    plain = tf_gag.attributions(quadratic, x, "ggig", 0, points=points)
    alphas = (np.arange(points) + 1.0) / points
    grads = np.stack([2 * a * alpha * x for alpha in alphas])  # (points, N, ...)
    np.testing.assert_allclose(plain, np.abs(grads).max(axis=0) * x, rtol=1e-5)
    zero = tf_gag.attributions(quadratic, x, "ggig", 0, points=points, ascent_steps=0, ascent_step_size=eta)
    np.testing.assert_array_equal(zero, plain)
    climbed = tf_gag.attributions(quadratic, x, "ggig", 0, points=points, ascent_steps=steps, ascent_step_size=eta)
    ascended = np.stack([2 * a * alpha * x * (1 + 2 * a * eta) ** steps for alpha in alphas])
    np.testing.assert_allclose(climbed, np.abs(ascended).max(axis=0) * x, rtol=1e-4)


@pytest.mark.parametrize("ascent_steps", [0, 2])
def test_batch_independent_and_deterministic(rng, ascent_steps):
    a = rng.normal(size=(4, 4, 1)).astype(np.float32)
    x = rng.normal(size=(3, 4, 4, 1)).astype(np.float32)
    together = tf_gag.attributions(cubic(a), x, "ggig", 0, ascent_steps=ascent_steps, batch_size=4, seed=1)
    again = tf_gag.attributions(cubic(a), x, "ggig", 0, ascent_steps=ascent_steps, batch_size=4, seed=2)
    np.testing.assert_array_equal(together, again)  # no randomness: the seed plays no part
    for i in range(3):
        alone = tf_gag.attributions(cubic(a), x[i : i + 1], "ggig", 0, ascent_steps=ascent_steps, batch_size=1)
        np.testing.assert_allclose(together[i : i + 1], alone, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("options, match", [
    ({"points": 0}, "points: expected an integer >= 1"),
    ({"ascent_steps": -1}, "ascent_steps: expected an integer >= 0"),
    ({"ascent_step_size": float("nan")}, "ascent_step_size: expected a finite number >= 0"),
    ({"selection": "median"}, r"selection: expected one of \['magnitude', 'max'\]"),
    ({"times_delta": 1}, "times_delta: expected True or False"),
    ({"baseline": "uniform"}, "baseline: Geometrically Guided IG takes"),
])
def test_bad_options_are_named(options, match):
    with pytest.raises(ValueError, match=match):
        tf_gag.Explainer(lambda x: tf.reshape(x, [tf.shape(x)[0], -1]), "ggig", **options)


def test_listed_with_its_parts_and_in_graph_only_without_ascent():
    info = tf_gag.list_methods()["geometrically_guided_ig"]
    assert info["parts"] == {"source": "input", "rule": "plain", "modification": "scaled_path",
                             "interpretation": "signed", "fold": "select", "post": "abs_sum"}
    assert info["options"]["points"] == 20 and info["options"]["ascent_steps"] == 0
    model = lambda x: tf.reshape(x, [tf.shape(x)[0], -1])  # noqa: E731
    assert tf_gag.Explainer(model, "ggig").runs_in_graph
    assert not tf_gag.Explainer(model, "ggig", ascent_steps=2).runs_in_graph
    # progress counts passes: each of 4 points climbs 2 steps, then takes its gradient
    assert tf_gag.Explainer(model, "ggig", points=4, ascent_steps=2).passes_per_image == 12
