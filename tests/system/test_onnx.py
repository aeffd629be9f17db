"""PyTorch -> ONNX -> TensorFlow: logits, input gradients, Grad-CAM and Guided Backprop match torch.

Small torch nets cover the op families of the paper's ResNet50, DenseNet161 and
EfficientNet (BN, residual add, concat, max/avg pooling, depthwise conv, SiLU,
squeeze-excite, ReLU6), of MobileNetV3 (hardswish, hardsigmoid) and ConvNeXt
(channels-last LayerNorm, GELU, layer scale), and of a ViT; EfficientNet-Lite0
has real ImageNet weights. The full-size architectures are in
benchmarks/conversion.py (results/conversion.md).
"""
import importlib.util
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("onnx2tf") is None:  # never import it here: it changes TensorFlow's global state
    pytest.skip("the ONNX converter stack is not installed", allow_module_level=True)

from reference import seeded  # noqa: E402

import tf_gag  # noqa: E402
from converters.torch_to_onnx import export  # noqa: E402
from tf_gag import assets  # noqa: E402

nn = torch.nn
SIZE = 64


class ResNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8))
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = self.relu(x + self.body(x))
        return self.fc(x.mean((2, 3)))


class DenseNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.grow = nn.Sequential(nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3, 1, 1))
        self.transition = nn.Sequential(nn.BatchNorm2d(12), nn.ReLU(), nn.Conv2d(12, 12, 1), nn.AvgPool2d(2))
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = self.stem(x)
        x = self.transition(torch.cat([x, self.grow(x)], 1))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class EfficientNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.depthwise = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.squeeze = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 2, 1), nn.SiLU(), nn.Conv2d(2, 8, 1),
                                     nn.Sigmoid())
        self.project = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.depthwise(self.stem(x))
        x = self.project(x * self.squeeze(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class MobileNetV3Like(nn.Module):
    """Hardswish, an inverted residual with a squeeze-excite of ReLU and Hardsigmoid, as MobileNetV3's blocks."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.expand = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.depthwise = nn.Sequential(nn.Conv2d(32, 32, 5, 1, 2, groups=32, bias=False), nn.BatchNorm2d(32),
                                       nn.Hardswish())
        self.squeeze = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(32, 8, 1), nn.ReLU(), nn.Conv2d(8, 32, 1),
                                     nn.Hardsigmoid())
        self.project = nn.Sequential(nn.Conv2d(32, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Sequential(nn.Conv2d(16, 48, 1, bias=False), nn.BatchNorm2d(48), nn.Hardswish())
        self.fc = nn.Sequential(nn.Linear(48, 24), nn.Hardswish(), nn.Linear(24, 5))

    def forward(self, x):
        x = self.stem(x)
        y = self.depthwise(self.expand(x))
        x = self.head(x + self.project(y * self.squeeze(y)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class ConvNeXtLike(nn.Module):
    """Patchify stem, channels-last LayerNorm (permutes), a 7 x 7 depthwise conv, GELU MLP and layer scale.

    24 channels: with c = h = w (16 at the stem) onnx2tf's LayerNorm axis guess is ambiguous (measured:
    features 1.2 off; the check against onnxruntime refuses such a model).
    """

    def __init__(self, dim=24):
        super().__init__()
        self.stem, self.stem_norm = nn.Conv2d(3, dim, 4, 4), nn.LayerNorm(dim)
        self.downsample = nn.Conv2d(dim, dim, 2, 2)
        self.depthwise, self.norm = nn.Conv2d(dim, dim, 7, padding=3, groups=dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.scale = nn.Parameter(torch.full((dim,), 0.5))
        self.block = nn.Identity()  # the block's output: what Grad-CAM reads
        self.fc = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.downsample(self.stem_norm(self.stem(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        y = self.mlp(self.norm(self.depthwise(x).permute(0, 2, 3, 1))) * self.scale
        return self.fc(self.block(x + y.permute(0, 3, 1, 2)).mean((2, 3)))


NETS = {
    "resnet": (ResNetLike, "relu"),
    "densenet": (DenseNetLike, "transition"),
    "efficientnet": (EfficientNetLike, "project"),
    "mobilenetv3": (MobileNetV3Like, "head"),
    "convnext": (ConvNeXtLike, "block"),  # no ReLU: Guided Backprop is the plain gradient, as torch's hooks give
}


@pytest.fixture(scope="module")
def photos_nchw():
    pixels = assets.photos(("chelsea", "coffee", "astronaut"), size=SIZE)
    return ((pixels - 127.5) / 127.5).transpose(0, 3, 1, 2).astype(np.float32)


@pytest.fixture(scope="module", params=sorted(NETS))
def converted(request, tmp_path_factory, cache):
    cls, feature = NETS[request.param]
    net = seeded(cls)
    path = str(tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")
    export(net, path, input_size=(SIZE, SIZE), feature=feature)
    return net, dict(net.named_modules())[feature], tf_gag.load_model(path, cache=cache)


def torch_gradients(net, x, target, guided=False):
    x = torch.tensor(x, requires_grad=True)
    hooks = []
    if guided:  # Guided Backprop: only positive gradients flow back through ReLU/ReLU6
        for module in net.modules():
            if isinstance(module, (nn.ReLU, nn.ReLU6)):
                hooks.append(module.register_full_backward_hook(lambda m, gi, go: (torch.clamp(gi[0], min=0),)))
    net(x)[np.arange(len(x)), target].sum().backward()
    for hook in hooks:
        hook.remove()
    return x.grad.numpy().transpose(0, 2, 3, 1)


def torch_rectified_gradients(net, x, target, percentile):
    """d logit / d x through Rectified Gradients' rule at every ReLU/ReLU6, with torch hooks (REFERENCE.md §8).

    At each ReLU(6) the incoming gradient g (times ReLU6's zero derivative above 6) passes where a * g exceeds the
    per-example nearest-rank percentile of a * g over the layer; no padding trick. A module called several times in
    the forward pass (a shared activation) is met in reverse order by the backward pass: a stack per module.
    """
    x = torch.tensor(x, requires_grad=True)
    hooks, seen = [], {}

    def remember(module, inputs, output):
        seen.setdefault(module, []).append((inputs[0].detach(), output.detach()))

    def rectify(module, grad_input, grad_output):
        inputs, a = seen[module].pop()
        g = grad_output[0] * (inputs < 6).to(grad_output[0].dtype) if isinstance(module, nn.ReLU6) else grad_output[0]
        importance = (a * g).reshape(len(a), -1)
        k = min(max(round((importance.shape[1] - 1) * (1 - percentile / 100)), 0), importance.shape[1] - 1)
        tau = torch.sort(importance, dim=1, descending=True).values[:, k].reshape((-1,) + (1,) * (a.dim() - 1))
        return (g * (a * g > tau).to(g.dtype),)

    for module in net.modules():
        if isinstance(module, (nn.ReLU, nn.ReLU6)):
            hooks.append(module.register_forward_hook(remember))
            hooks.append(module.register_full_backward_hook(rectify))
    net(x)[np.arange(len(x)), target].sum().backward()
    for hook in hooks:
        hook.remove()
    return x.grad.numpy().transpose(0, 2, 3, 1)


def torch_gradcam(net, layer, x, target, tokens=None):
    """Grad-CAM at ``layer``'s output with torch hooks; ``tokens`` = (k, h, w): the output is (N, k + h*w, c)
    tokens, read as an (N, c, h, w) map without the k leading tokens."""
    store = {}
    hook = layer.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    logits = net(torch.tensor(x))
    hook.remove()
    a = store["a"]
    grads = torch.autograd.grad(logits[np.arange(len(x)), target].sum(), a)[0]
    if tokens is not None:
        prefix, h, w = tokens
        a, grads = (t[:, prefix:].reshape(len(x), h, w, -1).permute(0, 3, 1, 2) for t in (a, grads))
    heat = torch.relu((grads.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    heat = nn.functional.interpolate(heat, size=x.shape[2:], mode="bilinear", align_corners=False)
    heat = heat[:, 0].detach().numpy()
    low, high = heat.min((1, 2), keepdims=True), heat.max((1, 2), keepdims=True)
    return np.where(high > low, (heat - low) / np.where(high > low, high - low, 1), 0)


def rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def rel_l2(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_logits_and_gradients_match_torch(converted, photos_nchw):
    net, layer, model = converted
    nhwc = photos_nchw.transpose(0, 2, 3, 1)
    with torch.no_grad():
        expected = net(torch.tensor(photos_nchw)).numpy()
    assert rel(model.predict_logits(nhwc, 8), expected) < 1e-5
    target = expected.argmax(axis=1)
    vg = tf_gag.attributions(model, nhwc, "vg", target)
    assert rel(np.abs(vg), np.abs(torch_gradients(net, photos_nchw, target))) < 1e-4
    gb = tf_gag.attributions(model, nhwc, "gb", target)
    assert rel(gb, torch_gradients(net, photos_nchw, target, guided=True)) < 1e-4
    cam = tf_gag.explain(model, nhwc, "grad_cam", target)
    np.testing.assert_allclose(cam, torch_gradcam(net, layer, photos_nchw, target), atol=1e-4)


def test_efficientnet_lite0_real_weights(lite0, cache):
    import onnxruntime

    from converters.zoo import _lite0_module

    names = ("chelsea", "coffee", "astronaut", "rocket")
    pixels = assets.photos(names, size=224)
    images = lite0.preprocessing.to_model(pixels).numpy()
    logits = lite0.predict_logits(images, 8)
    assert [lite0.classes[i] for i in logits.argmax(axis=1)][:2] == ["Egyptian Mau", "espresso"]
    nchw = images.transpose(0, 3, 1, 2)
    net = _lite0_module()
    with torch.no_grad():
        expected = net(torch.tensor(nchw)).numpy()
    assert rel(logits, expected) < 1e-5
    onnx_path = os.path.join(cache, "zoo", "efficientnet_lite0", "efficientnet_lite0.onnx")
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    assert rel(logits, session.run(["logits"], {"input": nchw})[0]) < 1e-5
    target = expected.argmax(axis=1)
    cam = tf_gag.explain(lite0, images, "grad_cam", target)
    np.testing.assert_allclose(cam, torch_gradcam(net, net.features, nchw, target), atol=2e-3)
    # Input gradients against torch in float64, the exact answer. At 224 px a pre-activation of one of
    # the 33 ReLU6 layers can sit within float32 rounding of 0 or 6 on some photo, and its switch then
    # moves the whole map by ~5e-3 (relative L2): measured, torch float32 itself is 6.9e-3 off float64
    # on coffee where TF is 7.5e-7 off, and TF is 4.7e-3 off on chelsea where torch float32 is 7e-7.
    # So: every photo within 1e-2, and most photos exact to float32 precision.
    net64 = _lite0_module().double()
    for method, guided in (("vg", False), ("gb", True)):
        ours = tf_gag.attributions(lite0, images, method, target)
        exact = torch_gradients(net64, nchw.astype(np.float64), target, guided=guided)
        errors = [rel_l2(ours[i], exact[i]) for i in range(len(names))]
        assert max(errors) < 1e-2, (method, errors)
        assert sum(e < 1e-5 for e in errors) >= len(names) // 2, (method, errors)


def test_lite0_rectified_gradients_match_the_rule_on_the_torch_module(lite0):
    """RectGrad on the imported Lite0 (the flat graph under a call-time percentile) against torch backward hooks."""
    from converters.zoo import _lite0_module

    pixels = assets.photos(("chelsea", "coffee"), size=224)
    images = lite0.preprocessing.to_model(pixels).numpy()
    nchw = images.transpose(0, 3, 1, 2)
    net64 = _lite0_module().double()
    target = lite0.predict_logits(images, 2).argmax(axis=1)
    for percentile in (90.0, 98.0):
        exact = torch_rectified_gradients(net64, nchw.astype(np.float64), target, percentile)
        nobias = tf_gag.attributions(lite0, images, "rectgrad_nobias", target, percentile=percentile,
                                     padding_trick=False)
        rectgrad = tf_gag.attributions(lite0, images, "rectgrad", target, percentile=percentile, padding_trick=False)
        for i in range(len(images)):  # measured: relative L2 2.1-2.4e-7 (float32 against torch float64)
            assert np.abs(exact[i]).max() > 0
            assert rel_l2(nobias[i], exact[i]) < 1e-4, (percentile, i, rel_l2(nobias[i], exact[i]))
            assert rel_l2(rectgrad[i], images[i] * exact[i]) < 1e-4
    # The padding trick is a call-time option too: it changes the map without converting again.
    trick = tf_gag.attributions(lite0, images[:1], "rectgrad_nobias", target[:1])
    assert rel_l2(trick[0], nobias[0]) > 1e-3


def test_runtime_never_imports_onnx2tf_or_tf_keras(lite0, cache):
    assert "onnx2tf" not in sys.modules and "tf_keras" not in sys.modules  # this test process neither
    code = (
        "import sys, numpy as np, tf_gag;"
        f"m = tf_gag.load_model('efficientnet_lite0', cache={cache!r});"
        "tf_gag.explain(m, np.zeros((1, 224, 224, 3), np.float32), 'vg');"
        "print(sorted(k for k in ('onnx2tf', 'tf_keras', 'onnx', 'torch') if k in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env = {**env, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def hand_built_onnx(path, op="Relu", attributes=None, opset=17):
    """input -> 3x3 Conv (4 filters) -> ``op`` -> global average pool -> flatten, built with onnx.helper.

    No torch and no named feature output: the converter must find the 4-D map itself.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(1).normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node(op, ["conv"], ["act"], **(attributes or {})),
        helper.make_node("GlobalAveragePool", ["act"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "hand_built",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.save(model, path)
    return weights


def test_hand_built_graph_closed_form(tmp_path):
    path = str(tmp_path / "hand.onnx")
    weights = hand_built_onnx(path)
    model = tf_gag.load_model(path, cache=str(tmp_path / "c"))
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 3)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    windows = np.stack([padded[:, i:i + 8, j:j + 8] for i in range(3) for j in range(3)], axis=-1)  # N,8,8,C,9
    conv = np.einsum("nhwck,fck->nhwf", windows, weights.reshape(4, 3, 9))
    np.testing.assert_allclose(model.predict_logits(x, 4), np.maximum(conv, 0).mean((1, 2)), rtol=1e-5, atol=1e-6)
    # d logit_f / d input = (active positions' windows) * w_f / 64, summed: compare with the same numpy algebra
    target = np.array([0, 1, 3])
    active = (conv > 0)[np.arange(3), :, :, target]  # N,8,8
    expected = np.zeros_like(padded)
    for i in range(3):
        for j in range(3):
            expected[:, i:i + 8, j:j + 8] += active[..., None] * weights[target, :, i, j][:, None, None, :] / 64
    np.testing.assert_allclose(tf_gag.attributions(model, x, "vg", target), expected[:, 1:-1, 1:-1], atol=1e-6)


# ----- bad input ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    """ResNetLike exported once for the tests below, which read the file and never change it."""
    path = str(tmp_path_factory.mktemp("small") / "small.onnx")
    export(seeded(ResNetLike), path, input_size=(SIZE, SIZE), feature="relu")
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model: .*nothing.onnx does not exist"):
        tf_gag.load_model(str(tmp_path / "nothing.onnx"), cache=str(tmp_path / "c"))


@pytest.mark.parametrize("kind", ["text", "truncated"])
def test_not_onnx_or_truncated(kind, tmp_path, small_onnx):
    path = str(tmp_path / "bad.onnx")
    data = b"hello, not a model" if kind == "text" else open(small_onnx, "rb").read()[:5000]
    open(path, "wb").write(data)
    cache = str(tmp_path / "c")
    with pytest.raises(ValueError, match=r"bad.onnx: not a valid ONNX model"):
        tf_gag.load_model(path, cache=cache)
    assert not os.path.exists(os.path.join(cache, "onnx"))  # refused before the converter starts: no entry


@pytest.mark.parametrize("kind", ["zip", "pickle"])
def test_pytorch_checkpoint_is_refused_without_unpickling(kind, tmp_path):
    path = str(tmp_path / "weights.onnx")
    if kind == "zip":
        torch.save({"w": torch.zeros(2)}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"w": [0.0]}, f)
    with pytest.raises(ValueError, match=r"looks like a PyTorch checkpoint .* does not unpickle"):
        tf_gag.load_model(path, cache=str(tmp_path / "c"))


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return (x * y).mean((2, 3))


def test_several_inputs_and_channels_last(tmp_path):
    two = str(tmp_path / "two.onnx")
    torch.onnx.export(TwoInputs(), (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)), two, dynamo=False,
                      input_names=["x", "y"])
    with pytest.raises(ValueError, match=r"two.onnx: the model has 2 inputs"):
        tf_gag.load_model(two, cache=str(tmp_path / "c"))
    nhwc = str(tmp_path / "nhwc.onnx")
    torch.onnx.export(nn.Flatten(), torch.zeros(1, 32, 32, 3), nhwc, dynamo=False)
    with pytest.raises(ValueError, match=r"nhwc.onnx: .* looks channels-last \(NHWC\)"):
        tf_gag.load_model(nhwc, cache=str(tmp_path / "c"))


def test_corrupted_cache_entry_is_rebuilt(tmp_path, small_onnx):
    cache = str(tmp_path / "c")
    first = tf_gag.load_model(small_onnx, cache=cache)
    (entry,) = os.listdir(os.path.join(cache, "onnx"))
    with open(os.path.join(cache, "onnx", entry, "saved_model", "saved_model.pb"), "r+b") as f:
        f.truncate(100)
    with pytest.warns(UserWarning, match="corrupted; converting again"):
        again = tf_gag.load_model(small_onnx, cache=cache)
    x = np.zeros((1, SIZE, SIZE, 3), np.float32)
    np.testing.assert_allclose(again.predict_logits(x, 1), first.predict_logits(x, 1), rtol=1e-6)


def test_op_onnx2tf_cannot_convert(tmp_path):
    path = str(tmp_path / "swish.onnx")
    hand_built_onnx(path, op="Swish", attributes={"alpha": 1.0}, opset=24)  # onnxruntime runs it, onnx2tf has no Swish
    cache = str(tmp_path / "c")
    with pytest.raises(ValueError, match=r"swish.onnx: onnx2tf cannot convert the op\(s\) \['Swish'\]"):
        tf_gag.load_model(path, cache=cache)
    assert os.listdir(os.path.join(cache, "onnx")) == []


def test_lite0_sanity_checks_randomize_a_copy_of_the_flat_graph(lite0):
    """The imported copy has torch's layers (one per Conv2d/Linear, BN folded); re-drawing its classifier gives
    torch's logits and gradients with the same classifier weights; the loaded model stays as it was."""
    from converters.zoo import _lite0_module
    from tf_gag.model.copies import weight_copy

    pixels = assets.photos(("chelsea", "coffee"), size=224)
    images = lite0.preprocessing.to_model(pixels).numpy()
    nchw = images.transpose(0, 3, 1, 2)
    before = lite0.predict_logits(images, 2)
    net = _lite0_module()
    copy, layers = weight_copy(lite0)
    assert len(layers) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules()) == 50
    kernel, bias = layers[-1].variables
    assert tuple(kernel.shape) == (1280, 1000) and tuple(bias.shape) == (1000,)
    rng = np.random.default_rng(0)
    weight = rng.normal(scale=0.05, size=(1000, 1280)).astype(np.float32)
    offset = rng.normal(size=1000).astype(np.float32)
    kernel.assign(weight.T)
    bias.assign(offset)
    with torch.no_grad():
        net.net._fc.weight.copy_(torch.tensor(weight))
        net.net._fc.bias.copy_(torch.tensor(offset))
        expected = net(torch.tensor(nchw)).numpy()
    assert rel(copy.predict_logits(images, 2, warn=False), expected) < 1e-5
    target = expected.argmax(axis=1)
    ours = tf_gag.attributions(copy, images, "vg", target)
    exact = torch_gradients(net, nchw, target)
    assert max(rel_l2(ours[i], exact[i]) for i in range(2)) < 1e-2
    np.testing.assert_array_equal(lite0.predict_logits(images, 2), before)

    result = tf_gag.sanity.randomization(lite0, images, ["vg", "gb", "grad_cam"], layers=3)
    assert result.steps[0] == "tf.linalg.matmul/MatMul"
    means = result.means("spearman_abs")
    assert means["gb"][0] > 0.9 and means["gb"][0] > means["vg"][0] + 0.3
    np.testing.assert_array_equal(lite0.predict_logits(images, 2), before)


class FlattensTheBatch(nn.Module):
    """A CNN whose head flattens with PyTorch's most common idioms, which export sizes from x.size(0).

    ``x.reshape(x.size(0), -1)`` exports the same graph as ``x.view(x.size(0), -1)``; view itself fails in
    the guided torch reference (its backward hooks hand it non-contiguous tensors).
    """

    def __init__(self, idiom):
        super().__init__()
        self.idiom = idiom
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 12, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(12 * (SIZE // 4) ** 2, 5)

    def forward(self, x):
        x = self.conv(x)
        return self.fc(x.reshape(x.size(0), -1) if self.idiom == "size" else x.flatten(1))


@pytest.mark.parametrize("idiom", ["size", "flatten"])
def test_heads_that_flatten_with_the_batch_size_convert(idiom, tmp_path, cache, photos_nchw):
    """x.view(x.size(0), -1) used to bake batch 1 into the Reshape (onnxruntime: 'GEMM: Dimension mismatch');
    x.flatten(1) came out in NHWC order. Both now match torch at batch 3 and at batch 1."""
    net = seeded(lambda: FlattensTheBatch(idiom))
    path = str(tmp_path / f"{idiom}.onnx")
    export(net, path, input_size=(SIZE, SIZE))
    model = tf_gag.load_model(path, cache=cache)
    assert model.metadata["gradcam"]["shape"] == [SIZE // 4, SIZE // 4, 12]  # the last ReLU of the convolutions
    assert_matches_torch_at_two_batches(net, model, photos_nchw, net.conv, guided=True)


def assert_matches_torch_at_two_batches(net, model, photos, cam_layer, guided, tokens=None):
    """Logits, VG, (GB) and Grad-CAM at ``cam_layer`` (``tokens``: see `torch_gradcam`) equal torch's at batch 3
    and at batch 1."""
    for batch in (photos, photos[:1]):
        nhwc = batch.transpose(0, 2, 3, 1)
        with torch.no_grad():
            expected = net(torch.tensor(batch)).numpy()
        assert rel(model.predict_logits(nhwc, 8), expected) < 1e-5
        target = expected.argmax(axis=1)
        assert rel(tf_gag.attributions(model, nhwc, "vg", target), torch_gradients(net, batch, target)) < 1e-4
        if guided:
            expected_gb = torch_gradients(net, batch, target, guided=True)
            assert rel(tf_gag.attributions(model, nhwc, "gb", target), expected_gb) < 1e-4
        cam = tf_gag.explain(model, nhwc, "grad_cam", target)
        np.testing.assert_allclose(cam, torch_gradcam(net, cam_layer, batch, target, tokens), atol=1e-4)


def test_a_model_without_a_convolutional_feature_map_loads_without_grad_cam(tmp_path, cache, photos_nchw):
    net = seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 16), nn.ReLU(), nn.Linear(16, 5)))
    path = str(tmp_path / "mlp.onnx")
    export(net, path, input_size=(SIZE, SIZE))
    model = tf_gag.load_model(path, cache=cache)
    assert model.metadata["gradcam"] is None
    nhwc = photos_nchw.transpose(0, 2, 3, 1)
    with torch.no_grad():
        target = net(torch.tensor(photos_nchw)).numpy().argmax(axis=1)
    assert rel(tf_gag.attributions(model, nhwc, "vg", target), torch_gradients(net, photos_nchw, target)) < 1e-4
    guided = torch_gradients(net, photos_nchw, target, guided=True)
    assert rel(tf_gag.attributions(model, nhwc, "gb", target), guided) < 1e-4
    with pytest.raises(ValueError, match="the CAM methods need a convolutional feature map and this imported model"):
        tf_gag.explain(model, nhwc, "grad_cam", target)


def test_grad_cam_split_skips_4d_tensors_that_convolutions_did_not_make(tmp_path, cache):
    """Conv -> ReLU -> a 4-D transpose (as attention reshapes tokens): the split is the ReLU, not the transpose."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["act"]),
        helper.make_node("Transpose", ["act"], ["tokens"], perm=[0, 2, 3, 1]),
        helper.make_node("Relu", ["tokens"], ["mixed"]),
        helper.make_node("ReduceMean", ["mixed"], ["logits"], axes=[1, 2], keepdims=0),
    ]
    weights = np.random.default_rng(1).normal(size=(4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        nodes, "tokens",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(tmp_path / "tokens.onnx"))
    loaded = tf_gag.load_model(str(tmp_path / "tokens.onnx"), cache=cache)
    assert loaded.metadata["gradcam"]["tensor"] == "act"


class _Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.qkv, self.out = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attention = (q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5).softmax(dim=-1)
        return self.out((attention @ v).transpose(1, 2).reshape(n, t, d))


class _TorchAttention(nn.Module):
    """torch's nn.MultiheadAttention, as torchvision's ViT uses it: it exports (T, N x heads, d) reshapes."""

    def __init__(self, dim, heads):
        super().__init__()
        self.inner = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x):
        return self.inner(x, x, x, need_weights=False)[0]


class _Block(nn.Module):
    def __init__(self, dim, heads, attention=_Attention):
        super().__init__()
        self.norm1, self.attention, self.norm2 = nn.LayerNorm(dim), attention(dim, heads), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding, class token (expanded with x.shape[0]), attention, LayerNorm, GELU: a small ViT."""

    def __init__(self, dim=32, patch=16, classes=5, depth=2, attention=_Attention):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 1 + (SIZE // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*(_Block(dim, 4, attention) for _ in range(depth)))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


@pytest.mark.parametrize("attention", [_Attention, _TorchAttention], ids=["own attention", "nn.MultiheadAttention"])
def test_a_small_vision_transformer_converts_and_explains(attention, tmp_path, cache, photos_nchw):
    """It used to fail to load (the Grad-CAM split picked an attention transpose); now: logits and gradients equal
    torch's at batch 3 and 1, and Grad-CAM reads the tokens entering the last block (its output reaches the logits
    only through the class token) as the 4 x 4 patch grid, class token dropped, as torch hooks compute it.
    nn.MultiheadAttention exports reshapes with the batch inside (T, N x heads, d): they follow the batch too."""
    net = seeded(lambda: TinyViT(attention=attention))
    path = str(tmp_path / "vit.onnx")
    export(net, path, input_size=(SIZE, SIZE))
    model = tf_gag.load_model(path, cache=cache)
    split = model.metadata["gradcam"]
    assert (split["layout"], split["shape"], split["prefix"], split["grid"]) == ("tokens", [17, 32], 1, [4, 4])
    assert_matches_torch_at_two_batches(net, model, photos_nchw, net.blocks[0], guided=False,  # GELU: no ReLU
                                        tokens=(1, 4, 4))
    cam = tf_gag.explain(model, photos_nchw.transpose(0, 2, 3, 1), "grad_cam")
    assert (cam.max(axis=(1, 2)) == 1).all()  # not an all-zero map (the last block's patch tokens would give one)


def test_vision_transformer_grad_cam_on_tokens_chosen_by_name(tmp_path, cache, photos_nchw):
    """feature= names a token tensor: here the first of three blocks' output (exported as the 'features' output;
    the automatic choice would be the second's)."""
    net = seeded(lambda: TinyViT(depth=3))
    path = str(tmp_path / "vit_block0.onnx")
    export(net, path, input_size=(SIZE, SIZE), feature="blocks.0")
    model = tf_gag.load_model(path, cache=cache, feature="features")
    assert (model.metadata["gradcam"]["tensor"], model.metadata["gradcam"]["grid"]) == ("features", [4, 4])
    with torch.no_grad():
        target = net(torch.tensor(photos_nchw)).numpy().argmax(axis=1)
    cam = tf_gag.explain(model, photos_nchw.transpose(0, 2, 3, 1), "grad_cam", target)
    expected = torch_gradcam(net, net.blocks[0], photos_nchw, target, tokens=(1, 4, 4))
    np.testing.assert_allclose(cam, expected, atol=1e-4)
    assert np.abs(expected - torch_gradcam(net, net.blocks[1], photos_nchw, target, tokens=(1, 4, 4))).max() > 0.05
