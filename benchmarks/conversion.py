"""Full-size PyTorch architectures through ONNX: conversion time, load time and parity with torch.

    .venv/bin/python -m benchmarks.conversion [--models resnet50,densenet161,efficientnet_b4]
        [--torch-python .venv-torch/bin/python]

For the paper's three architectures (torchvision ResNet50, DenseNet161,
EfficientNet-B4; seeded random weights, since no pretrained weights install
offline) and the embedded EfficientNet-Lite0 (real weights): export from torch
(in the torch environment, `benchmarks.torch_side`), convert with
`tf_gag.load_model` into a fresh cache (cold), load again (cached), and compare
logits and input gradients on real photos with torch. Gradients are compared
with torch in float64, the exact answer, and torch's own float32 error is
reported beside ours. Writes ``results/conversion.{json,md}``.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

from benchmarks import report, torch_env
from benchmarks.torch_side import ARCHITECTURES

PHOTOS = ("chelsea", "coffee")
# ImageNet normalisation of torchvision's classifiers.
MEAN, STD = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255


def relative_max(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def relative_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def measure(name, python, work, cache):
    import tf_gag
    from tf_gag import assets

    size, feature = ARCHITECTURES[name]
    pixels = assets.photos(PHOTOS, size=size)
    nhwc = ((pixels - MEAN) / STD).astype(np.float32)
    inputs, reference, onnx_path = (os.path.join(work, f"{name}{s}") for s in ("_in.npz", "_torch.npz", ".onnx"))
    np.savez(inputs, images=nhwc.transpose(0, 3, 1, 2))
    torch_env.run(python, "architecture", name, onnx_path, inputs, reference)
    torch_out = np.load(reference)

    start = time.perf_counter()
    tf_gag.load_model(onnx_path, cache=cache)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    model = tf_gag.load_model(onnx_path, cache=cache)
    cached = time.perf_counter() - start

    logits = model.predict_logits(nhwc, 8)
    targets = torch_out["targets"]
    ours = tf_gag.attributions(model, nhwc, "vg", targets).transpose(0, 3, 1, 2)
    exact, torch32 = torch_out["gradients64"], torch_out["gradients32"]
    return {
        "model": name,
        "input": size,
        "gradcam_layer": feature,
        "onnx_mb": round(os.path.getsize(onnx_path) / 2**20, 1),
        "convert_s": round(cold, 2),
        "cached_load_s": round(cached, 2),
        "logits_rel_max": relative_max(logits, torch_out["logits"]),
        "same_top1": bool((logits.argmax(1) == targets).all()),
        "gradient_rel_l2_tf_vs_fp64": [relative_l2(ours[i], exact[i]) for i in range(len(PHOTOS))],
        "gradient_rel_l2_torch_fp32_vs_fp64": [relative_l2(torch32[i], exact[i]) for i in range(len(PHOTOS))],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conversion", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ARCHITECTURES), help="comma-separated; default all three")
    torch_env.add_argument(parser)
    args = parser.parse_args(argv)
    names = args.models.split(",")
    unknown = sorted(set(names) - set(ARCHITECTURES))
    if unknown:
        parser.error(f"--models: unknown {unknown}; expected some of {sorted(ARCHITECTURES)}")
    torch_env.check(parser, args.torch_python)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            print(f"{name}: exporting, converting, comparing ...", flush=True)
            rows.append(measure(name, args.torch_python, work, os.path.join(work, "cache")))
            print("  ", rows[-1], flush=True)
    table = report.markdown_table(
        ["model", "input", "ONNX MB", "convert (s)", "cached load (s)", "logits rel. max vs torch", "same top-1",
         "input grad rel. L2, TF vs torch fp64", "torch fp32 vs fp64"],
        [[r["model"], r["input"], r["onnx_mb"], r["convert_s"], r["cached_load_s"], f"{r['logits_rel_max']:.1e}",
          r["same_top1"], " / ".join(f"{e:.1e}" for e in r["gradient_rel_l2_tf_vs_fp64"]),
          " / ".join(f"{e:.1e}" for e in r["gradient_rel_l2_torch_fp32_vs_fp64"])] for r in rows],
    )
    paths = report.write(
        "conversion",
        {"photos": list(PHOTOS), "rows": rows},
        "## Full-size architectures through ONNX (random weights; photos: " + ", ".join(PHOTOS) + ")\n\n" + table,
        torch_env.versions(args.torch_python),
    )
    print(table)
    print("wrote", *paths)


if __name__ == "__main__":
    sys.exit(main())
