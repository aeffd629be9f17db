"""Relevance propagation on models imported through ONNX: the same torch weights as zennit 0.5.1's, through the
converter's flat graph (BatchNorm folded into the convolutions by the conversion, so zennit merges it too).

Bounds as in tests/unit/test_lrp.py (zennit in float64; measured <= 1e-5 of the largest relevance here).
"""
import numpy as np
import pytest
import torch
from lrp_reference import COMPOSITES, SIDE, TARGETS, PlainAdd, torch_nets, z_canonizers, z_composites, zennit_relevance

import tf_gag
from converters.torch_to_onnx import export

pytestmark = pytest.mark.kernels  # float32 against float64 zennit: tests/other_kernels.sh


@pytest.fixture(scope="module")
def imported(tmp_path_factory, cache):
    """{net: (torch net, its import through ONNX)}: the VGG-like net and the ResNet-like one (its sum as ``+``)."""
    folder = tmp_path_factory.mktemp("lrp_onnx")
    out = {}
    for name, (net, _) in torch_nets().items():
        path = str(folder / f"{name}.onnx")
        export(PlainAdd(net) if name == "resnet" else net, path, input_size=(SIDE, SIDE))
        out[name] = (net, tf_gag.load_model(path, cache=cache))
    return out


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(3, SIDE, SIDE, 3)).astype(np.float32)


@pytest.mark.parametrize("net", ["vgg", "resnet"])
def test_composites_on_imported_models_match_zennit(imported, images, net):
    torch_net, model = imported[net]
    x = torch.tensor(images.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(model.predict_logits(images, 3), torch_net(x).detach().numpy(), atol=1e-5)
    for method, composite in COMPOSITES.items():
        expected = zennit_relevance(torch_net, images, composite([z_canonizers.SequentialMergeBatchNorm()]))
        options = {"low": -3.0, "high": 3.0} if "box" in method else {}
        got = tf_gag.attributions(model, images, method, TARGETS, **options)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), (method, net)
    expected = zennit_relevance(torch_net, images, z_composites.DeconvNet(), relevance=False)
    got = tf_gag.attributions(model, images, "deconvnet", TARGETS)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_imported_units_are_chosen_by_kind_name_and_position(imported, images):
    """The flat graph's units: a name selector reaches one convolution (its op's name, the first here) as the
    first-layer map does, and changes the relevance from the kind's rule."""
    from tf_gag.methods.composites import Composite

    _, model = imported["vgg"]
    base = [("activation", "pass"), ("avg_pool", "norm"), ("dense", "epsilon")]

    def relevance(layer_map, first_map=()):
        method = tf_gag.Method(rule=Composite(base + layer_map, first_map), modification="relevance")
        return tf_gag.attributions(model, images, method, TARGETS)

    by_kind = relevance([("conv", "zplus")])
    by_name = relevance([("name:*/tf.nn.convolution/convolution", "flat"), ("conv", "zplus")])
    by_position = relevance([("conv", "zplus")], first_map=[("conv", "flat")])
    np.testing.assert_array_equal(by_name, by_position)
    assert not np.allclose(by_name, by_kind)


def test_a_weight_copy_gets_the_same_relevance(imported, images):
    """The sanity checks' copy holds its weights in variables: its units are found as the original's, so before any
    weight is re-drawn its relevance is the original's. Equal up to float32 reordering (oneDNN runs a convolution
    with a constant filter and one with a variable filter through different kernels: 1.8e-7 of the largest
    relevance measured there, 0 under Eigen); with the copy's units missed the difference was 2-5 times the
    largest relevance."""
    from tf_gag.model.copies import weight_copy

    _, model = imported["resnet"]
    copy, _ = weight_copy(model)
    for method in ("lrp_epsilon_plus", "lrp_epsilon_gamma_box"):
        ours, original = (tf_gag.attributions(m, images, method, TARGETS) for m in (copy, model))
        assert np.abs(ours - original).max() <= 1e-4 * np.abs(original).max(), method


def test_first_layer_rules_see_the_zero_padding_of_a_strided_convolution(tmp_path, cache, images):
    """A stride-2 convolution with torch's padding 1 converts to a Pad op and a VALID convolution: the flat and z^B
    rules replace the input by ones or bounds, which must stay zero in the padding (as in torch's convolution),
    so the Pad belongs to the first unit."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5)).eval()
    model = tf_gag.load_model(export(net, str(tmp_path / "strided.onnx"), input_size=(SIDE, SIDE)), cache=cache)
    for method, composite in COMPOSITES.items():
        expected = zennit_relevance(net, images, composite(None))
        options = {"low": -3.0, "high": 3.0} if "box" in method else {}
        got = tf_gag.attributions(model, images, method, TARGETS, **options)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), method
