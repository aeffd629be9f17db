"""AttnLRP and CP-LRP on a Keras vision transformer (MultiHeadAttention, LayerNormalization, GELU), against LXT 2.1.

LXT runs the torch twin of the same weights (nn.MultiheadAttention, nn.LayerNorm, nn.GELU: its vision
transformer recipe, zennit's gamma rule on convolutions and Linear layers) in float64; tf_gag runs float32. Both
work in gradient x input form and divide by each gamma unit's stabilised output and input, which amplifies
float32 rounding where those are near 0: the bound, 1e-5 of the largest relevance, is 20 times the worst measured
error (4.8e-7) and holds under the other CPU kernels (tests/other_kernels.sh).
"""
import keras
import numpy as np
import pytest
from reference import assert_threads_see_plain_layers
from vit_reference import SIZE, keras_twin, lxt_relevance, small_torch_vit, vision_transformer

import tf_gag
from tf_gag import assets
from tf_gag.methods.composites import Composite
from tf_gag.methods.lrp import Gamma

torch = pytest.importorskip("torch")
pytest.importorskip("lxt")

BOUND = 1e-5


@pytest.fixture(scope="module")
def images():
    return (assets.photos(("chelsea", "coffee", "astronaut"), size=SIZE) / 127.5 - 1).astype(np.float32)


@pytest.fixture(scope="module")
def twins():
    net = small_torch_vit()
    return net, keras_twin(net)


def _targets(net, images):
    with torch.no_grad():
        return net(torch.tensor(images.transpose(0, 3, 1, 2))).numpy().argmin(axis=1)  # not the easy class


def _relative(got, expected):
    return np.abs(got - expected).max() / np.abs(expected).max()


@pytest.mark.kernels
@pytest.mark.parametrize("method, variant", [("attn_lrp", "attnlrp"), ("cp_lrp", "cp")])
def test_keras_vit_relevance_equals_lxt_on_the_same_weights(twins, images, method, variant):
    net, model = twins
    targets = _targets(net, images)
    expected = lxt_relevance(net, images, targets, variant)
    got = tf_gag.attributions(model, images, method, targets)
    assert _relative(got, expected) < BOUND
    assert np.abs(expected).max() > 0 and np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.99999


@pytest.mark.kernels
def test_dense_layers_without_a_rule_get_lrp0_and_gelu_the_identity_rule(twins, images):
    """Only the patch convolution has a rule: the Dense layers take gradient x input (LRP-0) and their GELU
    (tf.nn.gelu's erfc) the identity rule, as LXT's with no rule on its Linear layers."""
    net, model = twins
    targets = _targets(net, images)
    expected = lxt_relevance(net, images, targets, "attnlrp", dense_gamma=None)
    method = tf_gag.Method(rule=Composite([("conv", Gamma(0.25))], attention="attnlrp"), modification="relevance")
    got = tf_gag.attributions(model, images, method, targets)
    assert _relative(got, expected) < BOUND


def test_cp_lrp_conserves_the_logit_on_a_bias_free_vit(images):
    """Without biases, LayerNorm offsets, class token or position embedding, every CP-LRP rule passes on all the
    relevance it receives (gamma up to its 1e-6 stabiliser): the map sums to the explained logit. AttnLRP's
    softmax rule does not conserve (its bias term keeps a share, Achtibat et al. Prop. 3.1)."""
    model = vision_transformer(bias=False)
    targets = [0, 2, 4]
    logits = model(images).numpy()[np.arange(3), targets]
    cp = tf_gag.attributions(model, images, "cp_lrp", targets).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(cp, logits, rtol=1e-4)
    attn = tf_gag.attributions(model, images, "attn_lrp", targets).sum(axis=(1, 2, 3))
    assert np.abs(attn - logits).max() > 1e-3 * np.abs(logits).max()


def test_threads_see_plain_layers_while_another_explains_a_vit_by_attnlrp(twins, images):
    assert_threads_see_plain_layers(twins[1], images, [0, 1, 2], "attn_lrp")


def test_an_unknown_attention_variant_is_refused():
    with pytest.raises(ValueError, match=r"attention: expected one of \['attnlrp', 'cp'\], got 'softmax'"):
        Composite([("dense", "epsilon")], attention="softmax")


def test_a_relevance_composite_without_attention_rules_names_what_it_skips(images):
    model = vision_transformer()
    with pytest.warns(UserWarning, match=r"no rule for \[.*'LayerNormalization', 'MultiHeadAttention'\].*"
                                         r"attention='attnlrp' or 'cp'"):
        tf_gag.attributions(model, images[:1], "lrp_epsilon", [0])
    keras.backend.clear_session()


def test_a_serving_export_returns_the_hosts_relevance_bit_for_bit(twins, images, tmp_path):
    import tensorflow as tf

    path = str(tmp_path / "vit" / "1")
    tf_gag.export_saved_model(twins[1], path, "attn_lrp")
    served = tf.saved_model.load(path).signatures["explain"](images=tf.constant(images))["saliency"].numpy()
    np.testing.assert_array_equal(served, tf_gag.explain(twins[1], images, "attn_lrp"))
