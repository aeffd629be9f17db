"""The CAM family against pytorch-grad-cam 1.5.7 on the same torch weights, through ONNX.

Two small seeded torch nets are exported to ONNX and imported with
``tf_gag.load_model(path, feature=<ONNX tensor>)``; pytorch-grad-cam runs on
the torch module whose output is that tensor. A VGG-like net flattens its
feature map into a linear head, so the gradient varies over the map and
every CAM differs from every other; a ResNet-like net (BN, residual add,
global average pooling) has a gradient constant over the map, where
HiResCAM and XGrad-CAM equal Grad-CAM (REFERENCE §10). Real photos, each
with its top class and its runner-up as targets.

Tolerances. Both sides compute the same float32 algebra on features and
gradients that differ by float32 rounding (the converted graph runs its ops
in another order: logits agree to ~1e-7 relative). pytorch-grad-cam
normalises the coarse map, then resizes it (cv2 INTER_LINEAR, half-pixel
centres) and normalises again; tf_gag resizes (``tf.image.resize``, the same
bilinear weights) and normalises once. Bilinear weights are non-negative and
sum to 1, so resizing commutes with the affine min-max step: after
re-normalising both, the order leaves no difference beyond the epsilons
(1e-7 of the range). What remains is rounding, amplified where a map is a
difference of large terms (HiResCAM's signed sum) and by the normalisation
(divided by the map's range): measured at most 1.3e-6 on these nets
(2026-12 run), asserted at 1e-4, both for the coarse maps (tf_gag's raw
upsampled heat against the library's rectified coarse map upsampled by the
same operator, relative to its max: this sees the scale too) and for the
final maps. Distinct methods differ by 0.05 to 1 (max |difference|), so
asserting a difference above 1e-2 discriminates with room.
"""
import importlib.util
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("onnx2tf") is None:  # never import it here: it changes TensorFlow's global state
    pytest.skip("the ONNX converter stack is not installed", allow_module_level=True)

from benchmarks.cam_parity import (  # noqa: E402
    INSTALL,
    METHODS,
    coarse_error,
    import_grad_cam,
    library_cams,
    missing_packages,
    normalise,
)

if missing_packages():
    pytest.skip(f"pytorch-grad-cam is not installed ({', '.join(missing_packages())} missing): {INSTALL}",
                allow_module_level=True)

from reference import seeded  # noqa: E402

import tf_gag  # noqa: E402
from converters.torch_to_onnx import export  # noqa: E402
from tf_gag import assets  # noqa: E402

nn = torch.nn
SIZE = 64
TOLERANCE = 1e-4


class VGGLike(nn.Module):
    """Conv/ReLU/max-pool stages, then the 8 x 8 x 16 feature map flattened into a linear head."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(8, 16, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 16, 3, 1, 1))
        self.features = nn.ReLU()
        self.fc = nn.Linear(16 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(self.body(x)), 1))


class ResNetLike(nn.Module):
    """Stem with BN and max pool, a downsampling residual block (BN, add, ReLU), global average pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        self.shortcut = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.features = nn.ReLU()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x)
        return self.fc(self.features(self.body(x) + self.shortcut(x)).mean((2, 3)))


def onnx_tensor(path, node):
    """The output tensor of the ONNX node named ``.../<node>`` (the exporter names nodes after module paths, under
    its wrapper's ``/inner``)."""
    import onnx

    (name,) = [n.output[0] for n in onnx.load(path).graph.node if n.name.endswith("/" + node)]
    return name


@pytest.fixture(scope="module")
def library():
    return import_grad_cam()


@pytest.fixture(scope="module")
def photos_nchw():
    pixels = assets.photos(("chelsea", "coffee", "astronaut"), size=SIZE)
    return ((pixels - 127.5) / 127.5).transpose(0, 3, 1, 2).astype(np.float32)


@pytest.fixture(scope="module", params=["vgg", "resnet"])
def case(request, tmp_path_factory, cache, photos_nchw, library):
    """(name, torch net, tf_gag model, NCHW images, targets, {method: (ours, theirs, raw, coarse)})."""
    net = seeded(VGGLike if request.param == "vgg" else ResNetLike)
    path = str(tmp_path_factory.mktemp("cam_onnx") / f"{request.param}.onnx")
    export(net, path, input_size=(SIZE, SIZE))  # no named feature output: split at an inner tensor
    feature = onnx_tensor(path, "features/Relu")
    model = tf_gag.load_model(path, feature=feature, cache=cache)
    assert model.metadata["gradcam"]["tensor"] == feature
    with torch.no_grad():
        logits = net(torch.tensor(photos_nchw)).numpy()
    ranked = np.argsort(-logits, axis=1)
    nchw = np.concatenate([photos_nchw, photos_nchw])  # each photo with its top class, then its runner-up
    targets = np.concatenate([ranked[:, 0], ranked[:, 1]])
    nhwc = nchw.transpose(0, 2, 3, 1)
    classes, target_class = library
    maps = {}
    for method in METHODS:
        ours = tf_gag.explain(model, nhwc, method, targets)
        raw = tf_gag.attributions(model, nhwc, method, targets)[..., 0]
        theirs, coarse = library_cams(classes[method], target_class, net, net.features, nchw, targets)
        maps[method] = ours, theirs, raw, coarse
    return request.param, net, model, nhwc, targets, maps


def test_logits_match(case):
    _, net, model, nhwc, _, _ = case
    with torch.no_grad():
        expected = net(torch.tensor(nhwc.transpose(0, 3, 1, 2))).numpy()
    assert np.abs(model.predict_logits(nhwc, 8) - expected).max() < 1e-5 * np.abs(expected).max()


@pytest.mark.parametrize("method", list(METHODS))
def test_maps_match_pytorch_grad_cam(case, method):
    _, _, _, _, _, maps = case
    ours, theirs, raw, coarse = maps[method]
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (6, SIZE, SIZE)
    assert ours.min() >= 0 and ours.max() <= 1
    assert (coarse.reshape(6, -1).max(1) > 0).sum() >= 4, "most maps must be non-degenerate"
    errors = coarse_error(raw, coarse)
    assert max(errors) < TOLERANCE, errors
    difference = np.abs(normalise(ours) - normalise(theirs)).max((1, 2))
    assert difference.max() < TOLERANCE, difference


def _distance(maps, a, b):
    return np.abs(normalise(maps[a][0]) - normalise(maps[b][0])).max()


def test_the_methods_differ(case):
    """Each pair of maps differs by far more than the tolerance, except where the math makes them equal: behind
    global average pooling the gradient is constant over the map and HiResCAM = XGrad-CAM = Grad-CAM."""
    name, _, _, _, _, maps = case
    same = {("grad_cam", "hires_cam"), ("grad_cam", "xgrad_cam"), ("xgrad_cam", "hires_cam")} if name == "resnet" \
        else set()
    for a, b in itertools.combinations(METHODS, 2):
        distance = _distance(maps, a, b)
        if (a, b) in same:
            assert distance < TOLERANCE, (a, b, distance)
        else:
            assert distance > 1e-2, (a, b, distance)
        theirs = np.abs(normalise(maps[a][1]) - normalise(maps[b][1])).max()
        assert (theirs < TOLERANCE) == ((a, b) in same), (a, b, theirs)
