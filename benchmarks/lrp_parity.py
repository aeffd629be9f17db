"""LRP parity: tf_gag's composites against zennit 0.5.1 on the same torch weights, imported through ONNX.

    .venv/bin/python -m benchmarks.lrp_parity [--photos 4] [--models efficientnet_lite0,resnet50]

Needs zennit in tf_gag's environment (``pip install --no-deps zennit==0.5.1``; the README's test command
installs it; torchvision stays out: `benchmarks.torchvision_stand_in`). Two models, each on both sides from
one set of torch weights: EfficientNet-Lite0 with its real ImageNet weights (tf_gag's zoo model; torch: the
module it was exported from) and a ResNet50 with seeded weights (`benchmarks.resnets`, exported with
`converters.torch_to_onnx.export` and converted by ``tf_gag.load_model``). Real photos at 224 px, each
photo's top class as target, relevance starting from its logit.

zennit runs with SequentialMergeBatchNorm (the conversion folds BatchNorm into the convolutions, so both
sides explain the same linear units; Lite0's module is folded beforehand, `_merged_batch_norms`), in float32
by default (``--dtype float64``: an oracle without float32's rounding, several times slower; on ResNet50 it
needs about 8 GB).

Residual sums: tf_gag's composites split relevance at every residual Add by the norm rule; zennit does that
only for its own Sum module (its ResNet canonizer puts one in torchvision's blocks), so on the torch side
each residual sum goes through one (`_summed`: Lite0's MBConv blocks, the ResNet's ``residual`` modules).
Reported per composite (worst photo): max |difference| / max |relevance|, Pearson correlation, and tf_gag's
conservation error |sum R - logit| / |logit|; and the time of one call per side for all photos (tf_gag's
first call, which traces its graph, and the next, which reuses it).

Writes ``results/lrp_parity.{json,md}``.
"""
import argparse
import os
import sys
import tempfile
import time
import types

import numpy as np

from benchmarks import report
from benchmarks.resnets import resnet
from benchmarks.same_weights import explained_photos
from benchmarks.torchvision_stand_in import stand_in

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower", "grace_hopper")
#: tf_gag method -> zennit composite class name (and its first-layer bounds, for EpsilonGammaBox).
COMPOSITES = {
    "lrp_epsilon_plus": "EpsilonPlus",
    "lrp_epsilon_plus_flat": "EpsilonPlusFlat",
    "lrp_epsilon_gamma_box": "EpsilonGammaBox",
    "lrp_epsilon_alpha2_beta1": "EpsilonAlpha2Beta1",
}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def _zennit():
    with stand_in():
        from zennit import attribution, canonizers, composites, layer
    return attribution, canonizers, composites, layer


def _summed(net, Sum):
    """``net`` with every residual sum through a zennit ``Sum`` module (in place; the same weights)."""
    import torch

    def summed_mbconv(self, inputs, drop_connect_rate=None):  # MBConvBlock.forward with its skip through Sum
        x = inputs
        if self._block_args.expand_ratio != 1:
            x = self._swish(self._bn0(self._expand_conv(inputs)))
        x = self._swish(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        args = self._block_args
        if self.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
            x = self._sum(torch.stack([x, inputs], dim=-1))
        return x

    class SummedAdd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sum = Sum()

        def forward(self, a, b):
            return self.sum(torch.stack([a, b], dim=-1))

    for module in list(net.modules()):
        if type(module).__name__ == "MBConvBlock":
            module._sum = Sum()
            module.forward = types.MethodType(summed_mbconv, module)
        for name, child in list(module.named_children()):
            if type(child).__name__ == "Add":
                setattr(module, name, SummedAdd())
    return net


def _merged_batch_norms(net):
    """Lite0's torch module with each BatchNorm folded into the convolution before it (in place).

    zennit's SequentialMergeBatchNorm pairs leaf modules, and Lite0's convolutions are not leaves (each holds
    its padding module), so it would leave every BatchNorm alone; the conversion folds them. The fold is
    zennit's: kernel * s, (bias - mean) * s + beta with s = gamma / sqrt(var + eps).
    """
    import torch

    def fold(owner, conv_name, bn_name):
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
        conv.weight.data = conv.weight.detach() * scale.view(-1, 1, 1, 1)
        conv.bias = torch.nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach())
        setattr(owner, bn_name, torch.nn.Identity())

    fold(net.net, "_conv_stem", "_bn0")
    fold(net.net, "_conv_head", "_bn1")
    for block in net.net._blocks:
        if hasattr(block, "_expand_conv"):
            fold(block, "_expand_conv", "_bn0")
        fold(block, "_depthwise_conv", "_bn1")
        fold(block, "_project_conv", "_bn2")
    return net


def lite0(cache, work):
    """(tf_gag model, torch module, pixels -> NHWC model inputs, z^B bounds (low, high) in model space)."""
    import tf_gag
    from converters.zoo import _lite0_module

    model = tf_gag.load_model("efficientnet_lite0", cache=cache)
    prep = model.preprocessing
    mean, std = np.asarray(prep.mean, np.float64), np.asarray(prep.std, np.float64)
    net = _merged_batch_norms(_lite0_module())
    return model, net, lambda pixels: prep.to_model(pixels).numpy(), ((0 - mean) / std, (255 - mean) / std)


def resnet50(cache, work):
    import tf_gag
    from converters.torch_to_onnx import export

    net = resnet(50)
    model = tf_gag.load_model(export(net, os.path.join(work, "resnet50.onnx"), input_size=(224, 224)), cache=cache)
    low, high = (0 - IMAGENET_MEAN) / IMAGENET_STD, (255 - IMAGENET_MEAN) / IMAGENET_STD
    return model, net, lambda pixels: ((pixels - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32), (low, high)


MODELS = {"efficientnet_lite0": lite0, "resnet50": resnet50}


def zennit_relevance(net, nchw, targets, composite, dtype):
    """zennit's relevance (N, H, W, C) in ``dtype``, starting from each target's logit."""
    import torch

    attribution, _, _, _ = _zennit()
    net = net.to(dtype)
    x = torch.tensor(nchw, dtype=dtype, requires_grad=True)
    with attribution.Gradient(model=net, composite=composite) as attributor:
        out = net(x)
        start = torch.zeros_like(out)
        start[range(len(targets)), targets] = 1.0
        _, relevance = attributor(x, start * out)
    net.float()
    return relevance.detach().numpy().transpose(0, 2, 3, 1)


def _composite(class_name, box, dtype):
    """zennit's composite ``class_name`` with BatchNorm merged (EpsilonGammaBox: ``box``'s bounds in ``dtype``)."""
    import torch

    _, canonizers, composites, _ = _zennit()
    extra = {}
    if class_name == "EpsilonGammaBox":
        extra = {key: torch.tensor(box[key], dtype=dtype).view(1, 3, 1, 1) for key in ("low", "high")}
    return getattr(composites, class_name)(canonizers=[canonizers.SequentialMergeBatchNorm()], **extra)


def measure(name, photos, cache, work, dtype):

    import tf_gag

    layer = _zennit()[3]
    model, net, to_model, (low, high) = MODELS[name](cache, work)
    net = _summed(net, layer.Sum)
    nhwc, nchw, targets, agreement = explained_photos(model, net, to_model, photos)
    ours_logits = model.predict_logits(nhwc, len(nhwc))
    row = {"model": name, "photos": list(photos), "dtype": str(dtype).split(".")[-1], **agreement, "composites": {}}
    box = {"low": np.broadcast_to(low, (3,)).tolist(), "high": np.broadcast_to(high, (3,)).tolist()}
    for method, class_name in COMPOSITES.items():
        options = box if method == "lrp_epsilon_gamma_box" else {}
        start = time.perf_counter()
        ours = tf_gag.attributions(model, nhwc, method, targets, **options)
        first_s = time.perf_counter() - start
        start = time.perf_counter()  # again: the explainer is reused, its graph already traced
        tf_gag.attributions(model, nhwc, method, targets, **options)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = zennit_relevance(net, nchw, targets, _composite(class_name, box, dtype), dtype)
        theirs_s = time.perf_counter() - start
        per_photo = []
        for o, t, target, logit in zip(ours, theirs, targets, ours_logits):
            per_photo.append({"rel_max": float(np.abs(o - t).max() / np.abs(t).max()),
                              "pearson": float(np.corrcoef(o.ravel(), t.ravel())[0, 1]),
                              "conservation": float(abs(o.sum() - logit[target]) / abs(logit[target]))})
        row["composites"][method] = {
            "rel_max": max(p["rel_max"] for p in per_photo), "pearson_min": min(p["pearson"] for p in per_photo),
            "conservation_max": max(p["conservation"] for p in per_photo), "per_photo": per_photo,
            "tf_gag_first_s": first_s, "tf_gag_s": ours_s, "zennit_s": theirs_s}
        entry = row["composites"][method]
        print(f"{name} {method}: rel max {entry['rel_max']:.1e}, tf_gag {first_s:.1f} s then {ours_s:.2f} s, "
              f"zennit {theirs_s:.2f} s",
              file=sys.stderr, flush=True)
    return row


def write(rows, photos):
    table = report.markdown_table(
        ["model", "composite", "max |d| / max |R|", "Pearson (min)", "conservation error (max)",
         "tf_gag first call (s)", "tf_gag (s)", "zennit (s)", "zennit / tf_gag"],
        [[r["model"], m, f"{e['rel_max']:.1e}", f"{e['pearson_min']:.7f}", f"{e['conservation_max']:.1e}",
          f"{e['tf_gag_first_s']:.1f}", f"{e['tf_gag_s']:.2f}", f"{e['zennit_s']:.2f}",
          f"{e['zennit_s'] / e['tf_gag_s']:.2f}×"]
         for r in rows for m, e in r["composites"].items()])
    markdown = (
        "# LRP parity: tf_gag against zennit 0.5.1 on the same torch weights (through ONNX)\n\n"
        f"Photos at 224 px: {', '.join(photos)}; each photo's top class as target, relevance from its logit. "
        f"zennit in {rows[0]['dtype']} with SequentialMergeBatchNorm and its Sum at every residual sum; worst photo. "
        "Conservation: |sum of tf_gag's relevance - logit| / |logit| (biases absorb some). Times: one call per "
        "side for all photos; tf_gag's first call traces its graph, the next reuses it.\n\n" + table + "\n")
    return report.write("lrp_parity", {"rows": rows, "photos": list(photos)}, markdown,
                        extra_versions=report.versions(("zennit",)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lrp_parity", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4, help="how many of the offline photos (1-8)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated; default all")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="zennit's precision (float64 is an oracle without float32 rounding, several times slower)")
    args = parser.parse_args(argv)
    import torch

    photos = PHOTOS[:args.photos]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        cache = os.environ.get("TF_GAG_CACHE") or os.path.join(work, "cache")
        for name in args.models.split(","):
            rows.append(measure(name, photos, cache, work, getattr(torch, args.dtype)))
            paths = write(rows, photos)
    print("\n".join(paths))


if __name__ == "__main__":
    main()
