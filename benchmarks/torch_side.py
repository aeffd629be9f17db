"""The PyTorch half of the benchmarks, run in the torch environment (requirements-torch.txt).

    python -m benchmarks.torch_side architecture NAME OUT.onnx INPUTS.npz OUT.npz
    python -m benchmarks.torch_side parity INPUTS.npz OUT.npz
    python -m benchmarks.torch_side metrics INPUTS.npz OUT.npz

``architecture`` builds a full-size torchvision architecture (``resnet50``, ``densenet161``,
``efficientnet_b4``) with seeded random weights (no pretrained weights exist
offline), exports it with `converters.torch_to_onnx.export`, and writes what
torch computes on the NCHW images of INPUTS.npz (key ``images``): logits, and
input gradients of each image's top logit in float32 and float64.

``parity`` runs the authors' package, mlxops-xai 0.4.0, on the torch
EfficientNet-Lite0 that tf_gag's zoo model was exported from: GAG, SmoothGrad
and VarGrad maps on the noise in INPUTS.npz (``torch.normal`` is made to
return it), RCAP and Deletion/Insertion AUC of the maps in INPUTS.npz, and the
time of each call (see `benchmarks.parity`). ``metrics`` runs only those
metrics, untimed, for the parity test (tests/test_parity.py).

tf_gag's environment never imports torch for the benchmarks: this script runs
as a child process and the two sides exchange .npz files.
"""
import json
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


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def imagenet_space_lite0():
    """The zoo's torch Lite0 behind mlxops-xai's fixed ImageNet mean/std input space.

    mlxops-xai's RCAP denormalises with the ImageNet mean/std before recovering
    into black, so the model it calls takes ImageNet-normalised images; this
    wrapper maps them to Lite0's own ``(pixels - 127) / 128``.
    """
    import torch

    from converters.zoo import _lite0_module

    net = _lite0_module()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    class ImagenetSpace(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(((x * std + mean) * 255.0 - 127.0) / 128.0)

    return ImagenetSpace().eval()


def timed(fn, repeats):
    """(result, best wall seconds) of ``fn()`` over ``repeats`` runs after one warm-up (tracing, caches)."""
    import time

    result = fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def parity(inputs_path, out_path):
    import torch
    from mlxops_xai import gradient

    torch.manual_seed(0)
    data = np.load(inputs_path)
    model = imagenet_space_lite0()
    images = torch.tensor(data["images"])
    targets = torch.tensor(data["targets"], dtype=torch.long)
    noise = torch.tensor(data["noise"])  # (n, C, H, W): sample k of every image
    repeats = int(data["repeats"])
    original_normal = torch.normal
    calls = {"k": 0}

    def fixed_normal(mean, std, *args, **kwargs):  # the k-th sample's noise, the same for every image
        k = calls["k"] % len(noise)
        calls["k"] += 1
        return mean + std * noise[k].expand_as(mean)

    n = len(noise)
    methods = {
        "guided_absolute_grad": lambda: gradient.guided_absolute_grad(
            model, images, targets, num_samples=n, th=float(data["p"])),
        "smoothgrad": lambda: gradient.smooth_grad(model, images, targets, num_samples=n),
        "vargrad": lambda: gradient.guided_absolute_grad(
            model, images, targets, num_samples=n, ifabs=False, aggregation="variance"),
    }
    out, seconds = {}, {}
    original_gradients = gradient.get_gradients
    recorded = []
    gradient.torch.normal = fixed_normal
    try:
        for name, fn in methods.items():
            maps, seconds[name] = timed(lambda fn=fn: (calls.update(k=0), fn())[1], repeats)
            out[f"maps_{name}"] = maps.detach().numpy()

        def recording(*args, **kwargs):  # torch's own per-sample gradients, for the float32 floor
            recorded.append(original_gradients(*args, **kwargs).detach().numpy())
            return torch.tensor(recorded[-1])

        gradient.get_gradients = recording
        calls.update(k=0)
        methods["smoothgrad"]()
        out["gradients"] = np.stack(recorded)
        # The same aggregation code fed tf_gag's per-sample gradients: method arithmetic alone.
        given = torch.tensor(data["gradients"])
        supplied = {"k": 0}

        def supplying(*args, **kwargs):
            supplied["k"] += 1
            return given[(supplied["k"] - 1) % len(given)]

        gradient.get_gradients = supplying
        for name, fn in methods.items():
            supplied["k"] = 0
            out[f"given_{name}"] = fn().detach().numpy()
    finally:
        gradient.torch.normal = original_normal
        gradient.get_gradients = original_gradients
    _, seconds["integrated_gradients"] = timed(
        lambda: gradient.integrated_gradients(model, images, targets, steps=int(data["ig_steps"]),
                                              trials=int(data["ig_trials"])), repeats)
    results = {}
    for name, call in reference_metric_calls(model, images, targets, torch.tensor(data["maps"])).items():
        results[name], seconds[name] = timed(call, repeats)
    out.update(reference_scores(results))
    with torch.no_grad():
        out["logits"] = model(images).numpy()
    np.savez(out_path, seconds=json.dumps(seconds), threads=torch.get_num_threads(), **out)


def reference_metric_calls(model, images, targets, maps):
    """{"rcap", "auc"}: zero-argument calls of mlxops-xai's RCAP (50/10) and Deletion/Insertion AUC (10 steps)."""
    from mlxops_xai.auc import AUC
    from mlxops_xai.rcap import RCAP

    rcap = RCAP(lower_bound=0.5, recover_interval=0.1)
    auc = AUC(percentages=[round(1 - k / 10, 1) for k in range(10)], sigma=16)
    return {"rcap": lambda: rcap.evaluate(model, (images, targets), maps),
            "auc": lambda: auc.evaluate(model, (images, targets), maps)}


def reference_scores(results):
    """Per-image RCAP, DAUC and IAUC from the results of `reference_metric_calls`."""
    return {"rcap": results["rcap"]["rcap_per_sample"]["RCAP"].numpy(),
            "dauc": results["auc"]["DAUC_per_sample"].numpy(),
            "iauc": results["auc"]["IAUC_per_sample"].numpy()}


def metrics(inputs_path, out_path):
    """The reference metrics alone, untimed, on given (N, C, H, W) images, targets and maps (tests/test_parity.py)."""
    import torch

    data = np.load(inputs_path)
    calls = reference_metric_calls(imagenet_space_lite0(), torch.tensor(data["images"]),
                                   torch.tensor(data["targets"], dtype=torch.long), torch.tensor(data["maps"]))
    np.savez(out_path, **reference_scores({name: call() for name, call in calls.items()}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"architecture": architecture, "parity": parity, "metrics": metrics}[command](*args)
