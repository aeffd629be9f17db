"""AttnLRP and CP-LRP on a vision transformer imported through ONNX (torch's nn.MultiheadAttention, nn.LayerNorm
and nn.GELU, as torchvision's ViT uses them), against LXT 2.1 on the torch net itself.

The converter's flat graph has no layers: attention is found by its ops (softmax, the two bilinear matmuls, the
projections around them), LayerNorm by its reciprocal square root and GELU by its erf. Bound as in
tests/integration/test_attnlrp.py (LXT in float64; measured <= 5e-7 of the largest relevance here).
"""
import numpy as np
import pytest
import torch
from vit_reference import SIZE, lxt_relevance, small_torch_vit

import tf_gag
from converters.torch_to_onnx import export
from tf_gag import assets

pytestmark = pytest.mark.kernels  # float32 against float64 LXT: tests/other_kernels.sh
pytest.importorskip("lxt")


@pytest.fixture(scope="module")
def imported(tmp_path_factory, cache):
    net = small_torch_vit()
    path = str(tmp_path_factory.mktemp("vit_onnx") / "vit.onnx")
    export(net, path, input_size=(SIZE, SIZE))
    return net, tf_gag.load_model(path, cache=cache)


@pytest.mark.parametrize("method, variant", [("attn_lrp", "attnlrp"), ("cp_lrp", "cp")])
def test_imported_vit_relevance_equals_lxt(imported, method, variant):
    net, model = imported
    images = (assets.photos(("chelsea", "coffee", "astronaut"), size=SIZE) / 127.5 - 1).astype(np.float32)
    with torch.no_grad():
        targets = net(torch.tensor(images.transpose(0, 3, 1, 2))).numpy().argmin(axis=1)
    expected = lxt_relevance(net, images, targets, variant)
    got = tf_gag.attributions(model, images, method, targets)
    assert np.abs(got - expected).max() < 1e-5 * np.abs(expected).max()
