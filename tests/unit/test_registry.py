"""Methods composed of parts and the registry: a `Method` works wherever a name does, `register_method` names it,
options never set two parts, and the public names all come from the one list of built-ins."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gag
from tf_gag.methods import modifications, part, presets

SHAPE = (6, 6, 1)


def _quadratic(a):
    """score_c = sum(a_c * x^2): gradient 2 a_c x."""

    def model(x):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        return tf.square(flat) @ tf.constant(a.reshape(a.shape[0], -1).T)

    return model


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(2,) + SHAPE).astype(np.float32)
    images = rng.uniform(0, 1, size=(2,) + SHAPE).astype(np.float32)
    return _quadratic(a), a, images


def _mean_abs_noisy_gradient(a, images, target, n, seed):
    out = []
    for image in images:
        sigma = 0.15 * (image.max() - image.min())
        noisy = [image + sigma * tf.random.stateless_normal(SHAPE, seed=[seed, k]).numpy() for k in range(n)]
        out.append(np.mean([np.abs(2 * a[target] * x) for x in noisy], axis=0))
    return np.stack(out)


def test_a_composed_method_runs_as_its_parts_say(case):
    model, a, images = case
    composed = tf_gag.Method(modification="noise", interpretation="absolute")
    raw = tf_gag.attributions(model, images, composed, 1, n_samples=4, seed=2)
    np.testing.assert_allclose(raw, _mean_abs_noisy_gradient(a, images, 1, 4, 2), rtol=1e-4, atol=1e-7)
    # parts may be classes or configured parts; a configured part's options are fixed
    configured = tf_gag.Method(modification=modifications.GaussianNoise(n_samples=4), interpretation="absolute")
    np.testing.assert_array_equal(tf_gag.attributions(model, images, configured, 1, seed=2), raw)
    with pytest.raises(ValueError, match=r"composed does not take \['n_samples'\]"):
        tf_gag.Explainer(model, configured, n_samples=3)
    by_class = tf_gag.Method(modification=modifications.GaussianNoise, interpretation="absolute")
    np.testing.assert_array_equal(tf_gag.attributions(model, images, by_class, 1, n_samples=4, seed=2), raw)


def test_register_method_names_it_everywhere(case, tmp_path):
    model, a, images = case
    composed = tf_gag.Method(modification="noise", interpretation="absolute", summary="mean |noisy gradient|")
    assert tf_gag.register_method("Mean_Abs_Noise", composed, aliases=["man"]) == "mean_abs_noise"
    listed = tf_gag.list_methods()["mean_abs_noise"]
    assert listed["aliases"] == ["man"] and listed["parts"]["interpretation"] == "absolute"
    assert listed["options"]["n_samples"] == 20
    expected = _mean_abs_noisy_gradient(a, images, 0, 3, 0)
    maps = tf_gag.explain(model, images, "man", 0, n_samples=3)
    np.testing.assert_allclose(maps, tf_gag.explain(model, images, composed, 0, n_samples=3), atol=0)
    reduced = expected.sum(axis=-1)
    low, high = reduced.min(axis=(1, 2), keepdims=True), reduced.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(maps, (reduced - low) / (high - low), atol=1e-5)
    explainer = tf_gag.Explainer(model, "mean-abs-noise", n_samples=3)
    assert explainer.name == "mean_abs_noise" and "Explainer(mean_abs_noise:" in repr(explainer)
    result = tf_gag.evaluate(model, images, "man", 0, metrics=["rcap"], method_options={"n_samples": 3})
    direct = tf_gag.evaluate(model, images, maps, 0, metrics=["rcap"])
    np.testing.assert_array_equal(result.scores["rcap"], direct.scores["rcap"])
    with pytest.raises(ValueError, match="already name a method"):
        tf_gag.register_method("man", composed)
    with pytest.raises(ValueError, match="already name a method"):
        tf_gag.register_method("other_name", composed, aliases=["gag"])


def test_sanity_checks_take_composed_methods():
    inputs = keras.Input((6, 6, 1))
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    images = np.random.default_rng(0).normal(size=(2, 6, 6, 1)).astype(np.float32)
    composed = tf_gag.Method(modification="noise", interpretation="absolute")
    result = tf_gag.sanity.randomization(model, images, ["vg", (composed, {"n_samples": 2})], layers=2, targets=0)
    assert set(result.methods) == {"vg", "composed 1"}


class _Steps(part.Part):
    """A post-fold stage that declares ``steps``, as IG's path does."""

    name = "steps_stage"
    options = {"steps": 3}
    in_graph = True

    def __init__(self, steps=3):
        self.steps = steps

    def __call__(self, attributions, images):
        return tf.reduce_sum(attributions, axis=-1)


def test_two_parts_never_share_an_option(case):
    model, _, _ = case
    clash = tf_gag.Method(modification="straight", post=_Steps)
    with pytest.raises(ValueError, match=r"post: option 'steps' of _Steps is also an option of StraightPath"):
        tf_gag.Explainer(model, clash)
    with pytest.raises(ValueError, match="option 'steps'"):
        tf_gag.register_method("clashing", clash)
    assert "clashing" not in tf_gag.list_methods()
    # configured, the stage claims no option: the method runs
    tf_gag.Explainer(model, tf_gag.Method(modification="straight", post=_Steps(steps=2)))


@pytest.mark.parametrize("bad, match", [
    (tf_gag.Method(fold="median"), "fold: expected one of"),
    (tf_gag.Method(rule=3), "rule: expected a part name"),
    (tf_gag.Method(defaults={"n_samples": 3}), r"defaults: \['n_samples'\] are not options"),
])
def test_bad_compositions_are_named(case, bad, match):
    with pytest.raises(ValueError, match=match):
        tf_gag.Explainer(case[0], bad)


def test_public_names_come_from_the_one_list():
    for builtin in presets.BUILTIN:
        cls = getattr(tf_gag, builtin.class_name)
        assert builtin.class_name in tf_gag.__all__ and issubclass(cls, tf_gag.Explainer)
        assert cls.method == builtin.name
    assert [b.name for b in presets.BUILTIN] == list(tf_gag.list_methods())[:len(presets.BUILTIN)]
    assert {"Method", "register_method"} <= set(tf_gag.__all__)


def test_every_listed_variant_builds_with_its_defaults():
    """The registry is the matrix: each method's listed variants run as listed, with no option to add."""
    inputs = keras.Input(SHAPE)
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    image = np.random.default_rng(1).normal(size=(1,) + SHAPE).astype(np.float32)
    for name, info in tf_gag.list_methods().items():
        for variant in info["variants"]:
            explainer = tf_gag.Explainer(model, name, variant=variant)
            assert explainer.parts.modification.n_jobs >= explainer.parts.fold.min_samples, (name, variant)
            assert np.isfinite(explainer.attributions(image, 0)).all()


def test_the_command_line_imports_modules_that_register_methods(tmp_path, monkeypatch, capsys):
    import json

    from tf_gag.tools import cli

    (tmp_path / "my_registered_methods.py").write_text(
        "import tf_gag\n"
        "tf_gag.register_method('cli_abs_noise', tf_gag.Method(modification='noise', interpretation='absolute'))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["--import", "my_registered_methods", "methods", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cli_abs_noise"]["parts"]["modification"] == "noise"
    assert cli.main(["--import", "no_such_module_here", "methods"]) == 1
    assert "No module named 'no_such_module_here'" in capsys.readouterr().err
