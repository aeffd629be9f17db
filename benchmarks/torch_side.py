"""The PyTorch half of the benchmarks, run in the torch environment (requirements-torch.txt).

    python -m benchmarks.torch_side architecture NAME OUT.onnx INPUTS.npz OUT.npz

builds a full-size torchvision architecture (``resnet50``, ``densenet161``,
``efficientnet_b4``) with seeded random weights (no pretrained weights exist
offline), exports it with `converters.torch_to_onnx.export`, and writes what
torch computes on the NCHW images of INPUTS.npz (key ``images``): logits, and
input gradients of each image's top logit in float32 and float64.

tf_gag's environment never imports torch for the benchmarks: this script runs
as a child process and the two sides exchange .npz files.
"""
import sys

import numpy as np

#: name -> (input size, Grad-CAM layer: the last convolutional block)
ARCHITECTURES = {
    "resnet50": (224, "layer4"),
    "densenet161": (224, "features"),
    "efficientnet_b4": (380, "features"),
}


def build(name):
    """The torchvision architecture ``name`` with seeded weights and non-trivial BatchNorm statistics."""
    import torch
    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.8, 1.2)
    return net.eval()


def input_gradients(net, images, targets, dtype):
    """d logit[target] / d image for each image, in ``dtype``, as NCHW float64."""
    import torch

    net = net.to(dtype)
    x = torch.tensor(images, dtype=dtype, requires_grad=True)
    net(x)[np.arange(len(images)), targets].sum().backward()
    return x.grad.numpy().astype(np.float64)


def architecture(name, onnx_path, inputs_path, out_path):
    import torch

    from converters.torch_to_onnx import export

    size, feature = ARCHITECTURES[name]
    net = build(name)
    export(net, onnx_path, input_size=(size, size), feature=feature)
    images = np.load(inputs_path)["images"]
    with torch.no_grad():
        logits = net(torch.tensor(images)).numpy()
    targets = logits.argmax(axis=1)
    np.savez(
        out_path,
        logits=logits,
        targets=targets,
        gradients32=input_gradients(net, images, targets, torch.float32),
        gradients64=input_gradients(net, images, targets, torch.float64),
    )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"architecture": architecture}[command](*args)
