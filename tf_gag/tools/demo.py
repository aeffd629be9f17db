"""The README's first command: explain real photos with a real ImageNet model and save pictures.

``python -m tf_gag.tools.demo [--out DIR] [--quiet]`` loads EfficientNet-Lite0 with its
real ImageNet weights (the zoo model: exported from PyTorch and converted
through ONNX on first use, then cached), takes the eight real photos that
install offline (scikit-image, scikit-learn, matplotlib), explains each
photo's top class with Guided AbsoluteGrad and the methods it is compared
with, scores every map with RCAP, DAUC and IAUC, and writes to DIR:
``saliency.png`` (photo with its predicted class, then one overlay per
method), ``curves.png`` (RCAP steps, deletion and insertion curves),
``maps.npz`` and ``metrics.csv`` (per photo and method).

TensorFlow's C++ start-up lines are hidden as the ``tf-gag`` command hides
them; its Python warnings (retracing, ...) are shown.
"""
import argparse
import os
import time
import warnings

import numpy as np

METHODS = {
    "guided_absolute_grad": "Guided AbsoluteGrad",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients",
    "guided_backprop": "Guided Backprop",
    "grad_cam": "Grad-CAM",
    "vanilla_gradient": "Vanilla Gradient",
}
MODEL = "efficientnet_lite0"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tf_gag.tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tf_gag_demo_output", help="output folder (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.makedirs(args.out, exist_ok=True)

    from tf_gag.tools.cli import import_tensorflow_quietly

    import_tensorflow_quietly()  # TensorFlow's C++ start-up lines come twice per import (measured): hidden
    from tqdm.auto import tqdm

    import tf_gag
    from tf_gag.model.loading import cache_dir
    from tf_gag.tools import assets, viz

    print(f"loading {MODEL} (first run: export from PyTorch and convert through ONNX, ~15 s; then cached) ...",
          flush=True)
    start = time.perf_counter()
    model = tf_gag.load_model(MODEL)
    print(f"  ready in {time.perf_counter() - start:.1f} s (cache: {cache_dir()})")
    size = model.input_shape[0]
    pixels = assets.photos(assets.ALL_PHOTOS, size=size)
    images = model.preprocessing.to_model(pixels).numpy()
    probabilities = np.asarray(model.probabilities(model.predict_logits(images, 32)))
    top = probabilities.argmax(axis=1)
    labels = [f"{model.classes[c]} ({p:.0%})" for c, p in zip(top, probabilities.max(axis=1))]
    print(f"EfficientNet-Lite0 (ImageNet) on {len(images)} real photos:")
    for name, label in zip(assets.ALL_PHOTOS, labels):
        print(f"  {name:13s} -> {label}")

    maps, seconds = {}, {}
    for method, title in METHODS.items():
        explainer = tf_gag.Explainer(model, method)
        with tqdm(total=len(images) * explainer.passes_per_image, desc=f"{title:22s}", unit="pass",
                  disable=args.quiet, leave=False) as bar:
            start = time.perf_counter()
            maps[method] = explainer.explain(images, top, on_progress=bar.update)
            seconds[method] = time.perf_counter() - start

    results = {}
    with tqdm(total=len(METHODS) * len(images), desc="scoring RCAP/DAUC/IAUC", unit="map", disable=args.quiet,
              leave=False) as bar:
        for method in METHODS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an all-zero map's undefined RCAP is reported in the table instead
                results[method] = tf_gag.evaluate(model, images, maps[method], top, on_progress=bar.update)

    print(f"\n{'method':22s} {'RCAP ↑':>8s} {'DAUC ↓':>8s} {'IAUC ↑':>8s} {'time (s)':>9s}")
    rows = ["image,method,target,class,rcap,dauc,iauc"]
    for method, title in METHODS.items():
        means, undefined = results[method].means(), results[method].undefined()["rcap"]
        note = f"  (RCAP undefined for {undefined} all-zero maps)" if undefined else ""
        scores = f"{means['rcap']:8.4f} {means['dauc']:8.4f} {means['iauc']:8.4f}"
        print(f"{title:22s} {scores} {seconds[method]:9.2f}{note}")
        for i, name in enumerate(assets.ALL_PHOTOS):
            scores = [results[method][m][i] for m in ("rcap", "dauc", "iauc")]
            rows.append(f"{name},{method},{top[i]},\"{model.classes[top[i]]}\"," + ",".join(f"{v:.6f}" for v in scores))
    print("(times include tracing each method's graph once; 2-core CPU: expect about a minute in all)")

    with open(os.path.join(args.out, "metrics.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    np.savez_compressed(os.path.join(args.out, "maps.npz"), **maps)
    photo_labels = [f"{name}: {label}" for name, label in zip(assets.ALL_PHOTOS, labels)]
    viz.grid(pixels, {title: maps[m] for m, title in METHODS.items()}, photo_labels,
             path=os.path.join(args.out, "saliency.png"))
    viz.curves({title: results[m] for m, title in METHODS.items()}, path=os.path.join(args.out, "curves.png"))
    print(f"\nwrote saliency.png, curves.png, maps.npz and metrics.csv to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
