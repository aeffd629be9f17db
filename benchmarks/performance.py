"""How close tf_gag runs to the physical limit of its methods and metrics, and its memory with n.

    .venv/bin/python -m benchmarks.performance [--repeats 3]

On the real EfficientNet-Lite0 (zoo, through ONNX) and 16 real photos at
224 px (the eight offline photos and their mirror images), each measured as
the best of ``--repeats`` calls after a warm-up, in one run:

* GAG (n = 20, batch_size 16) against the 20 raw batched forward+backward
  passes it needs (one compiled ``tf.GradientTape`` call per batch of 16 noisy
  images, noise made beforehand): the method's overhead over its gradients.
* RCAP on 16 maps (batch_size 16) against its j = 5 batched forward passes,
  and Deletion + Insertion AUC against their 2 x 10 batched forward passes
  (the composite images made beforehand).
* Peak resident memory of a fresh process explaining 4 photos with GAG at
  n = 20 and at n = 200 (batch_size 16): memory must follow batch_size, not n.

Writes ``results/performance.{json,md}``.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

from benchmarks import report
from benchmarks.torch_side import timed

BATCH, SAMPLES = 16, 20
MEMORY_SCRIPT = """
import os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tf_gag
from tf_gag import assets
model = tf_gag.load_model("efficientnet_lite0")
images = model.preprocessing.to_model(assets.photos(assets.ALL_PHOTOS[:4], size=224)).numpy()
tf_gag.explain(model, images, "gag", batch_size=16, n_samples=int(sys.argv[1]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def best_of(fn, repeats):
    """Best wall seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    return timed(fn, repeats)[1]


def peak_rss_mb(samples):
    """Peak RSS (MB) of a fresh process explaining 4 photos with GAG at ``samples``."""
    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(samples)], capture_output=True, text=True,
                          check=True)
    return int(done.stdout.split()[-1]) / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.performance", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (default 3)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    import tf_gag
    from tf_gag import assets
    from tf_gag.metrics import auc
    from tf_gag.metrics.rcap import check_steps
    from tf_gag.metrics.reveal import revealed, step_thresholds

    model = tf_gag.load_model("efficientnet_lite0")
    pixels = assets.photos(assets.ALL_PHOTOS, size=224)
    pixels = np.concatenate([pixels, pixels[:, :, ::-1]])
    images = model.preprocessing.to_model(pixels).numpy()
    targets = model.predict_logits(images, BATCH).argmax(axis=1).astype(np.int32)
    rows, data = [], {}

    # GAG against its raw gradient passes: a plain tape over the model's forward, nothing of tf_gag's engine.
    @tf.function(input_signature=[tf.TensorSpec((None,) + images.shape[1:], tf.float32),
                                  tf.TensorSpec((None,), tf.int32)])
    def gradients(x, target):
        with tf.GradientTape() as tape:
            tape.watch(x)
            scores = tf.gather(model.forward(x), target, axis=1, batch_dims=1)
        return tape.gradient(scores, x)

    sigma = 0.15 * (images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3)))
    noisy = [tf.constant(images + sigma[:, None, None, None] * np.random.default_rng(k).standard_normal(
        images.shape).astype(np.float32)) for k in range(SAMPLES)]
    target_tensor = tf.constant(targets)
    raw = best_of(lambda: [gradients(x, target_tensor) for x in noisy], args.repeats)  # results stay in TF, as in GAG
    explainer = tf_gag.Explainer(model, "gag", batch_size=BATCH)
    gag = best_of(lambda: explainer.explain(images, targets), args.repeats)
    rows.append(["GAG n = 20, 16 photos", f"{gag:.2f}", f"{raw:.2f}", "20 forward+backward of 16",
                 f"{gag / raw:.3f}", "1.10"])
    maps = explainer.explain(images, targets)

    # Metrics against their forward passes, composites made beforehand.
    forward = tf.function(lambda x: model.probabilities(model.forward(x)),
                          input_signature=[tf.TensorSpec((None,) + images.shape[1:], tf.float32)])
    black = model.preprocessing.to_model(0.0).numpy()
    masks = revealed(maps, step_thresholds(maps, check_steps(50, 10), "paper"), "paper").numpy()
    recovered = [tf.constant(np.where(masks[:, k, :, :, None], images, black)) for k in range(masks.shape[1])]
    raw_rcap = best_of(lambda: [forward(x).numpy() for x in recovered], args.repeats)
    rcap = best_of(lambda: tf_gag.evaluate(model, images, maps, targets, metrics="rcap", batch_size=BATCH),
                   args.repeats)
    rows.append(["RCAP, 16 maps", f"{rcap:.2f}", f"{raw_rcap:.2f}", "5 forward of 16", f"{rcap / raw_rcap:.3f}",
                 "1.2"])
    fractions = auc.fractions("percentile", 10, None, 224, 224)
    steps = revealed(maps, step_thresholds(maps, fractions, "paper"), "paper").numpy()
    background = auc.blurred(images, 16.0, 33)
    composites = [tf.constant(np.where(steps[:, k, :, :, None], 0.0, images).astype(np.float32))
                  for k in range(len(fractions))]
    composites += [tf.constant(np.where(steps[:, k, :, :, None], images, background).astype(np.float32))
                   for k in range(len(fractions))]
    raw_auc = best_of(lambda: [forward(x).numpy() for x in composites], args.repeats)
    aucs = best_of(lambda: tf_gag.evaluate(model, images, maps, targets, metrics=("dauc", "iauc"),
                                           batch_size=BATCH), args.repeats)
    rows.append(["DAUC + IAUC, 16 maps", f"{aucs:.2f}", f"{raw_auc:.2f}", "20 forward of 16",
                 f"{aucs / raw_auc:.3f}", "1.2"])

    memory = {n: peak_rss_mb(n) for n in (20, 200)}
    rows.append(["peak RSS, GAG on 4 photos, n = 200 vs n = 20", f"{memory[200]:.0f} MB", f"{memory[20]:.0f} MB",
                 "the same at n = 20", f"{memory[200] / memory[20]:.3f}", "1.2"])
    data = {"rows": [dict(zip(["work", "tf_gag", "limit", "limit is", "ratio", "target"], r)) for r in rows],
            "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                        "cpus": os.cpu_count()}}
    markdown = "## tf_gag against the work it cannot avoid (EfficientNet-Lite0, 224 px, seconds)\n\n"
    markdown += report.markdown_table(["work", "tf_gag", "limit", "limit is", "ratio", "target ≤"], rows)
    paths = report.write("performance", data, markdown)
    print(markdown)
    print(json.dumps(data["threads"]))
    print("wrote", *paths)


if __name__ == "__main__":
    sys.exit(main())
