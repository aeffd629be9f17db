"""Sanity checks on models with closed-form answers; the similarity measures against scipy and scikit-image."""
import keras
import numpy as np
import pytest
import scipy.stats
from skimage.metrics import structural_similarity

import tf_gag
from tf_gag.sanity import similarity

SIDE = 32
PIXELS = SIDE * SIDE


# ---------------------------------------------------------------- the measures, independently


def test_spearman_equals_scipy_with_ties(rng):
    a = rng.normal(size=(3, 12, 12)).astype(np.float32)
    b = a + rng.normal(scale=0.7, size=a.shape).astype(np.float32)
    a[0, :6] = 0.0  # ties (a zero patch, as Guided Backprop and RectGrad maps have)
    b[1] = np.round(b[1])
    got = similarity.spearman(a, b).numpy()
    want = [scipy.stats.spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_spearman_of_a_constant_map_is_zero_not_nan(rng):
    a = rng.normal(size=(2, 8, 8)).astype(np.float32)
    b = a.copy()
    b[0] = 0.0
    got = similarity.spearman(a, b).numpy()
    assert got[0] == 0.0 and got[1] == pytest.approx(1.0)
    assert similarity.constant_maps(b).numpy().tolist() == [True, False]


def test_ssim_equals_scikit_image_on_normalised_maps(rng):
    a = rng.random((2, 40, 40)).astype(np.float32) * 5
    b = a + rng.normal(scale=1.0, size=a.shape).astype(np.float32)
    got = similarity.ssim(a, b).numpy()

    def unit(m):
        return (m - m.min()) / (m.max() - m.min())

    want = [
        structural_similarity(unit(x), unit(y), data_range=1.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for x, y in zip(a, b)
    ]
    np.testing.assert_allclose(got, want, atol=2e-3)  # border handling differs (TF: valid; skimage: cropped)


# ---------------------------------------------------------------- closed forms on a linear model


@pytest.fixture(scope="module")
def linear():
    """logits = flatten(x) @ W: Vanilla Gradient's map for class t is W[:, t] itself (one channel)."""
    rng = np.random.default_rng(3)
    inputs = keras.Input((SIDE, SIDE, 1))
    dense = keras.layers.Dense(4, use_bias=False, name="dense")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    weights = rng.normal(size=(PIXELS, 4)).astype(np.float32)
    dense.set_weights([weights])
    # images along class 0's weights: a margin no small weight noise can overturn
    images = (10 * weights[:, 0] + rng.normal(size=(3, PIXELS))).reshape(3, SIDE, SIDE, 1).astype(np.float32)
    return model, weights, images


def test_perturbation_matches_the_gaussian_closed_form(linear):
    """w' = w + s·std(W)·e: corr(w, w') = 1/sqrt(1 + s²) (w's column has W's spread), Spearman (6/π)·asin(ρ/2)."""
    model, weights, images = linear
    levels = [0.25, 0.5, 1.0]
    result = tf_gag.sanity.perturbation(model, images, ["vanilla_gradient"], noise=levels)
    assert result.targets.tolist() == [0, 0, 0]
    for k, level in enumerate(levels):
        pearson = 1 / np.sqrt(1 + level**2 * weights.var() / weights[:, 0].var())
        want = 6 / np.pi * np.arcsin(pearson / 2)
        np.testing.assert_allclose(result.scores["spearman"]["vanilla_gradient"][k], want, atol=0.035)
    assert np.all(np.diff(result.means("spearman")["vanilla_gradient"]) < 0)
    assert result.prediction_change[0] < 1e-3  # the class-0 probability stays ~1


def test_randomization_of_a_linear_model_leaves_no_rank_correlation(linear):
    """A re-drawn W is independent of the trained one: Spearman ~ N(0, 1/P) for VG's W[:, t] and IG's signed
    W[:, t] ⊙ x; IG's |W ⊙ x| keeps the input's part |x| (Adebayo et al.'s observation about × input)."""
    model, weights, images = linear
    before = model.get_weights()[0].copy()
    result = tf_gag.sanity.randomization(model, images, ["vanilla_gradient", ("integrated_gradients", {"steps": 4})])
    assert result.steps == ["dense"]
    bound = 4 / np.sqrt(PIXELS)
    assert np.all(np.abs(result.scores["spearman"]["vanilla_gradient"]) < bound)
    assert np.all(np.abs(result.scores["spearman_abs"]["vanilla_gradient"]) < bound)
    assert np.all(np.abs(result.scores["spearman"]["integrated_gradients"]) < bound)
    assert np.all(result.scores["spearman_abs"]["integrated_gradients"] > 0.2)
    np.testing.assert_array_equal(model.get_weights()[0], before)  # the user's model is never modified


@pytest.fixture(scope="module")
def stacked():
    """Three linear Dense layers (no activations): VG's map is W1 W2 W3[:, t]."""
    rng = np.random.default_rng(5)
    inputs = keras.Input((SIDE, SIDE, 1))
    x = keras.layers.Flatten()(inputs)
    for name, units in (("first", 16), ("second", 8), ("third", 3)):
        x = keras.layers.Dense(units, name=name)(x)
    model = keras.Model(inputs, x)
    images = rng.normal(size=(2, SIDE, SIDE, 1)).astype(np.float32)
    return model, images


def test_cascading_and_independent_agree_where_they_randomize_the_same_layers(stacked):
    model, images = stacked
    cascading = tf_gag.sanity.randomization(model, images, ["vg"])
    independent = tf_gag.sanity.randomization(model, images, ["vg"], cascading=False)
    assert cascading.steps == independent.steps == ["third", "second", "first"]
    same = cascading.scores["spearman"]["vg"]
    np.testing.assert_allclose(same[0], independent.scores["spearman"]["vg"][0])  # both: only the top layer
    # a layer is re-drawn the same whichever steps are chosen (seeded by seed and layer)
    only_second = tf_gag.sanity.randomization(model, images, ["vg"], cascading=False, layers=["second"])
    np.testing.assert_allclose(only_second.scores["spearman"]["vg"][0], independent.scores["spearman"]["vg"][1])
    assert not np.allclose(same[2], independent.scores["spearman"]["vg"][2])  # all three vs only the first


def test_layers_as_a_count_spread_from_the_top(stacked):
    model, images = stacked
    assert tf_gag.sanity.randomization(model, images, ["vg"], layers=2).steps == ["third", "first"]


# ---------------------------------------------------------------- bad input


def test_bad_input_gets_clear_errors(stacked, linear):
    model, images = stacked
    with pytest.raises(ValueError, match="layers: no weighted layer named 'nope'"):
        tf_gag.sanity.randomization(model, images, ["vg"], layers=["nope"])
    with pytest.raises(ValueError, match="layers: expected between 1 and 3"):
        tf_gag.sanity.randomization(model, images, ["vg"], layers=7)
    with pytest.raises(ValueError, match="methods: expected"):
        tf_gag.sanity.randomization(model, images, "vg")
    with pytest.raises(ValueError, match="noise: expected a finite relative noise level > 0"):
        tf_gag.sanity.perturbation(model, images, ["vg"], noise=[0.01, -1])
    linear_model, _, linear_images = linear
    with pytest.raises(ValueError, match=r"noise: level 300.0 changes the predicted class of image\(s\) \["):
        tf_gag.sanity.perturbation(linear_model, linear_images, ["vg"], noise=[0.01, 300.0])


@pytest.mark.parametrize(
    "check, options, match",
    [
        ("randomization", {"layers": []}, r"layers: expected a list of layer names or paths, got none"),
        ("randomization", {"methods": []}, r"methods: expected a list of method names .*, got none"),
        ("randomization", {"cascading": "no"}, r"cascading: expected True or False, got 'no'"),
        ("perturbation", {"methods": ()}, r"methods: expected a list of method names .*, got none"),
        ("perturbation", {"noise": []}, r"noise: expected a list of relative noise levels, got none"),
        ("perturbation", {"noise": [0.01, np.inf]}, r"noise: expected a finite relative noise level > 0, got inf"),
        ("perturbation", {"noise": float("nan")}, r"noise: expected a finite relative noise level > 0, got nan"),
        ("perturbation", {"noise": [True]}, r"noise: expected a finite relative noise level > 0, got True"),
        ("perturbation", {"noise": "0.01"}, r"noise: expected a list of relative noise levels, got '0.01'"),
    ],
)
def test_empty_selections_and_unusable_levels_are_refused_by_name(stacked, check, options, match):
    model, images = stacked
    with pytest.raises(ValueError, match=match):
        getattr(tf_gag.sanity, check)(model, images, **{"methods": ["vg"], **options})


def test_a_figure_of_no_measures_is_refused(stacked):
    model, images = stacked
    result = tf_gag.sanity.randomization(model, images, ["vg"], layers=1)
    with pytest.raises(ValueError, match=r"measures: expected a list of measures from \['spearman_abs', 'spearman', "
                                         r"'ssim'\], got none"):
        result.plot(measures=())
    assert len(result.plot(measures="ssim").axes) == 1  # one measure by name is one panel


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(self.flatten(x))


def test_models_whose_weights_cannot_be_copied(rng):
    images = rng.normal(size=(2, 8, 8, 1)).astype(np.float32)
    subclassed = _Subclassed()
    subclassed(images)
    with pytest.raises(ValueError, match="model: its weights cannot be copied"):
        tf_gag.sanity.randomization(subclassed, images, ["vg"])
    with pytest.raises(ValueError, match="model: the weights of a callable model cannot be copied"):
        tf_gag.sanity.perturbation(lambda x: x[:, 0, 0, :] * 2.0, images, ["vg"])


def test_an_image_whose_original_map_is_constant_is_left_out_with_a_warning():
    """Image 0 is black and every ReLU starts at -10: its gradient, so its map, is 0 whatever the weights."""
    inputs = keras.Input((SIDE, SIDE, 1))
    hidden = keras.layers.Dense(4, activation="relu", bias_initializer=keras.initializers.Constant(-10.0),
                                kernel_initializer=keras.initializers.RandomUniform(0.005, 0.015, seed=0))
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden(keras.layers.Flatten()(inputs))))
    images = np.stack([np.zeros((SIDE, SIDE, 1)), np.full((SIDE, SIDE, 1), 5.0)]).astype(np.float32)
    images[1, :4] = 9.0  # not a constant input, so the live image's map has ranks
    with pytest.warns(UserWarning, match=r"original model's map is constant .* vg on image\(s\) \[0\]"):
        result = tf_gag.sanity.perturbation(model, images, ["vg"], noise=[0.01], targets=0)
    for measure in tf_gag.sanity.SIMILARITIES:
        assert np.isnan(result.scores[measure]["vg"][0, 0]) and np.isfinite(result.scores[measure]["vg"][0, 1])
        assert result.means(measure)["vg"][0] == result.scores[measure]["vg"][0, 1]
