"""CAM parity: tf_gag's six CAMs against pytorch-grad-cam 1.5.7 on the same torch weights, and Score-CAM's speed.

    .venv/bin/python -m benchmarks.cam_parity [--photos 4] [--models efficientnet_lite0,resnet18]

Needs pytorch-grad-cam in tf_gag's environment (`INSTALL`; torchvision stays
out, see `import_grad_cam`). Two models, each on both sides from one set of
torch weights: EfficientNet-Lite0 with its real ImageNet weights (tf_gag's zoo
model, imported through ONNX at the head's 7 x 7 x 1280 ReLU6; torch: the
module it was exported from, target layer ``features``), and a ResNet18 with
seeded weights (torchvision's architecture written out in `benchmarks.resnets`, since
torchvision is not installed here; exported with `converters.torch_to_onnx.export`
at ``layer4`` and converted with ``tf_gag.load_model(path, feature="features")``).
On real photos with each photo's top class as target, for Grad-CAM,
Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM and Score-CAM (library convention):

* the final maps, both re-normalised to [0, 1]: max and mean |difference|,
  Pearson and Spearman correlation per photo (worst photo reported);
* the coarse maps: tf_gag's raw upsampled heat (`tf_gag.attributions`)
  against pytorch-grad-cam's rectified coarse map upsampled with the same
  bilinear operator, as max |difference| relative to the map's max (this sees
  the scale the normalisation hides);
* Score-CAM's time on the same photos, one call per side in the same process,
  one after the other: tf_gag's `tf_gag.attributions` (``mask_batch`` 32; its
  first call, tracing included; `explain` returns these maps min-max
  normalised, so the parity numbers use them) against pytorch-grad-cam's
  ``ScoreCAM`` (its default batch of 16 masks per forward pass, per photo;
  ``--library-batch`` changes it).

Writes ``results/cam_parity.{json,md}``.
"""
import argparse
import functools
import importlib
import importlib.util
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

#: The pip command that installs the reference without torchvision (its only dependencies tf_gag lacks).
INSTALL = ".venv/bin/pip install --no-deps grad-cam==1.5.7 ttach==0.0.3 opencv-python-headless"

#: tf_gag's method name -> pytorch-grad-cam's class.
METHODS = {
    "grad_cam": "GradCAM",
    "grad_cam_plus_plus": "GradCAMPlusPlus",
    "xgrad_cam": "XGradCAM",
    "hires_cam": "HiResCAM",
    "layer_cam": "LayerCAM",
    "score_cam": "ScoreCAM",
}
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower", "grace_hopper")


def missing_packages():
    """The packages pytorch-grad-cam needs here that are not installed (`INSTALL` installs them)."""
    return [name for name in ("pytorch_grad_cam", "ttach", "cv2") if importlib.util.find_spec(name) is None]


def import_grad_cam():
    """({tf_gag method: pytorch-grad-cam class}, ClassifierOutputTarget); ImportError names `INSTALL`."""
    if missing_packages():
        raise ImportError(f"{', '.join(missing_packages())} not installed; pytorch-grad-cam without torchvision: "
                          f"{INSTALL}")
    with stand_in():
        library = importlib.import_module("pytorch_grad_cam")
        targets = importlib.import_module("pytorch_grad_cam.utils.model_targets")
    score_cam = importlib.import_module("pytorch_grad_cam.score_cam")
    if not isinstance(score_cam.tqdm, types.SimpleNamespace):  # its progress bar, one per photo: silenced
        score_cam.tqdm = types.SimpleNamespace(tqdm=functools.partial(score_cam.tqdm.tqdm, disable=True))
    return {method: getattr(library, name) for method, name in METHODS.items()}, targets.ClassifierOutputTarget


def normalise(maps):
    """Each (H, W) map min-max normalised to [0, 1] in float64 (a constant map: zeros)."""
    maps = np.asarray(maps, np.float64)
    low, high = maps.min((1, 2), keepdims=True), maps.max((1, 2), keepdims=True)
    return np.where(high > low, (maps - low) / np.where(high > low, high - low, 1.0), 0.0)


def library_cams(cam_class, target_class, net, layer, nchw, targets, batch_size=None):
    """pytorch-grad-cam's (final maps (N, H, W), rectified coarse maps (N, h, w)) for NCHW float32 images.

    The coarse map is what its ``get_cam_image`` returns, rectified as its
    ``compute_cam_per_layer`` does before it normalises and resizes.
    ``batch_size``: Score-CAM's masks per forward pass (its default: 16).
    """
    import torch

    coarse = []
    with cam_class(model=net, target_layers=[layer]) as cam:
        if batch_size is not None:
            cam.batch_size = batch_size
        original = cam.get_cam_image
        cam.get_cam_image = lambda *args, **kwargs: coarse.append(original(*args, **kwargs)) or coarse[-1]
        maps = cam(input_tensor=torch.tensor(nchw), targets=[target_class(int(t)) for t in targets])
    return maps, np.maximum(coarse[0], 0)


def upsample(coarse, size):
    """(N, h, w) maps upsampled bilinearly (half-pixel centres) as tf_gag does: ``tf.image.resize``."""
    import tensorflow as tf

    return tf.image.resize(np.asarray(coarse, np.float32)[..., None], size, method="bilinear").numpy()[..., 0]


def _ranks(x):
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    sorted_x = x[order]  # ties share their mean rank
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for start, end in zip(starts, ends):
        if end - start > 1:
            ranks[order[start:end]] = (start + end - 1) / 2
    return ranks


def _correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float(np.array_equal(a, b))


def compare(ours, theirs):
    """Per photo: max and mean |difference| of the re-normalised maps, Pearson and Spearman correlation."""
    ours, theirs = normalise(ours), normalise(theirs)
    rows = []
    for a, b in zip(ours, theirs):
        a, b = a.ravel(), b.ravel()
        rows.append({"max_abs": float(np.abs(a - b).max()), "mean_abs": float(np.abs(a - b).mean()),
                     "pearson": _correlation(a, b), "spearman": _correlation(_ranks(a), _ranks(b))})
    return rows


def coarse_error(raw, coarse):
    """Per photo: max |tf_gag's raw upsampled heat - the library's coarse map upsampled| / max of the latter."""
    reference = upsample(coarse, raw.shape[1:3])
    return [float(np.abs(r - c).max() / max(np.abs(c).max(), 1e-30)) for r, c in zip(raw, reference)]


# ----- the benchmark --------------------------------------------------------------------------------------------


def lite0(cache, work):
    """(tf_gag model, torch module, its target layer, images in the model's input space (pixels -> NHWC))."""
    import tf_gag
    from converters.zoo import _lite0_module

    model = tf_gag.load_model("efficientnet_lite0", cache=cache)
    net = _lite0_module()
    return model, net, net.features, lambda pixels: model.preprocessing.to_model(pixels).numpy()


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def seeded_resnet18(cache, work):
    """The seeded ResNet18 exported at ``layer4`` and converted, split at that tensor (ONNX name ``features``)."""
    import tf_gag
    from converters.torch_to_onnx import export

    net = resnet(18)
    path = export(net, os.path.join(work, "resnet18.onnx"), input_size=(224, 224), feature="layer4")
    model = tf_gag.load_model(path, feature="features", cache=cache)
    return model, net, net.layer4, lambda pixels: ((pixels - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


MODELS = {"efficientnet_lite0": lite0, "resnet18": seeded_resnet18}


def timed(function, *args, **kwargs):
    """(function(*args, **kwargs), its wall time in seconds)."""
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


def measure(name, photos, cache, work, library_batch=None):
    """One model's row: per method the parity numbers (worst photo), and Score-CAM's times."""

    import tf_gag

    classes, target_class = import_grad_cam()
    model, net, layer, to_model = MODELS[name](cache, work)
    nhwc, nchw, targets, agreement = explained_photos(model, net, to_model, photos)
    row = {"model": name, "photos": list(photos), **agreement, "feature": model.metadata["gradcam"]["shape"],
           "methods": {}}
    for method, cam_class in classes.items():
        entry = {}
        library = (cam_class, target_class, net, layer, nchw, targets)
        if method == "score_cam":  # one run per side: tf_gag's explain is these raw maps min-max normalised
            raw, entry["tf_gag_s"] = timed(tf_gag.attributions, model, nhwc, method, targets)
            raw = raw[..., 0]
            ours = raw
            print(f"{name} score_cam: tf_gag {entry['tf_gag_s']:.1f} s", file=sys.stderr, flush=True)
            (theirs, coarse), entry["library_s"] = timed(library_cams, *library, batch_size=library_batch)
            entry["library_batch"] = library_batch or 16
        else:
            ours = tf_gag.explain(model, nhwc, method, targets)
            theirs, coarse = library_cams(*library)
            raw = tf_gag.attributions(model, nhwc, method, targets)[..., 0]
        per_photo = compare(ours, theirs)
        entry["per_photo"] = per_photo
        entry["max_abs"] = max(p["max_abs"] for p in per_photo)
        entry["mean_abs"] = float(np.mean([p["mean_abs"] for p in per_photo]))
        entry["pearson_min"] = min(p["pearson"] for p in per_photo)
        entry["spearman_min"] = min(p["spearman"] for p in per_photo)
        entry["coarse_rel_max"] = max(coarse_error(raw, coarse))
        row["methods"][method] = entry
        print(f"{name} {method}: max |d| {entry['max_abs']:.1e}, coarse rel {entry['coarse_rel_max']:.1e}",
              file=sys.stderr, flush=True)
    return row


def tables(rows):
    parity = report.markdown_table(
        ["model", "method", "max abs diff", "mean abs diff", "Pearson (min)", "Spearman (min)", "coarse rel. max"],
        [[r["model"], m, f"{e['max_abs']:.1e}", f"{e['mean_abs']:.1e}", f"{e['pearson_min']:.7f}",
          f"{e['spearman_min']:.7f}", f"{e['coarse_rel_max']:.1e}"]
         for r in rows for m, e in r["methods"].items()],
    )
    speed = report.markdown_table(
        ["model", "photos", "feature map", "tf_gag (s)", "pytorch-grad-cam (s)", "its batch", "ratio"],
        [[r["model"], len(r["photos"]), "×".join(str(d) for d in r["feature"]), f"{s['tf_gag_s']:.1f}",
          f"{s['library_s']:.1f}", s["library_batch"], f"{s['library_s'] / s['tf_gag_s']:.2f}×"]
         for r in rows for s in [r["methods"]["score_cam"]]],
    )
    return parity, speed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cam_parity", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4, help="how many of the offline photos (1-8)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated; default all")
    parser.add_argument("--library-batch", type=int, default=None,
                        help="pytorch-grad-cam ScoreCAM's masks per forward pass (default: its own, 16)")
    args = parser.parse_args(argv)
    try:
        import_grad_cam()
    except ImportError as error:
        parser.error(str(error))
    photos = PHOTOS[:args.photos]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        cache = os.path.join(work, "cache")
        for name in args.models.split(","):  # the results so far are written after each model
            rows.append(measure(name, photos, cache, work, args.library_batch))
            paths = write(rows, photos)
    print("\n".join(paths))


def write(rows, photos):
    """``results/cam_parity.{json,md}`` of ``rows``; returns their paths."""
    import torch

    parity, speed = tables(rows)
    markdown = (
        "# CAM parity: tf_gag against pytorch-grad-cam 1.5.7 on the same torch weights\n\n"
        f"Photos at 224 px: {', '.join(photos)}; each photo's top class (torch's logits) as target. Maps: both "
        "re-normalised to [0, 1], worst photo. Coarse: tf_gag's raw upsampled heat against pytorch-grad-cam's "
        "rectified coarse map upsampled by the same bilinear operator, max |difference| / max.\n\n"
        + parity + "\n\n## Score-CAM time (same process, one side after the other)\n\n"
        f"torch threads: {torch.get_num_threads()}. tf_gag: `attributions(..., 'score_cam')` (mask_batch 32, "
        "first call, tracing included); pytorch-grad-cam: `ScoreCAM` (masks per forward pass as in the table). "
        "Ratio: pytorch-grad-cam's time / tf_gag's.\n\n" + speed
    )
    return report.write("cam_parity", {"rows": rows}, markdown,
                        extra_versions=report.versions(("grad-cam", "opencv-python-headless", "ttach")))

if __name__ == "__main__":
    main()
