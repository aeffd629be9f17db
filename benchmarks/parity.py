"""Parity and speed against the authors' PyTorch package, mlxops-xai 0.4.0, on the same weights.

    .venv/bin/python -m benchmarks.parity [--repeats 2] [--torch-python .venv-torch/bin/python]

Both sides run the real EfficientNet-Lite0 on the eight offline photos (224 px,
each photo's top class as target): tf_gag the zoo model imported through
ONNX, mlxops-xai the torch module it was exported from (`benchmarks.torch_side
parity`, in the torch environment). mlxops-xai's RCAP recovers into black
through the ImageNet mean/std, so both sides take ImageNet-normalised images
and map them to Lite0's own input space inside the model.

* Maps on identical noise: tf_gag draws sample k's noise with its stateless
  seed; the torch side is handed the same tensors in place of ``torch.normal``.
  GAG, SmoothGrad and VarGrad run with the reference conventions (batch noise
  range; GAG: per-channel quantile, strict test, raw guide, p = 0.85).
* Metrics on identical maps (tf_gag's GAG maps): RCAP (lower bound 50,
  interval 10) and Deletion/Insertion AUC (10 steps), the metric objects
  built with ``convention="reference"``.
* Speed: the best of ``--repeats`` timed calls after one warm-up, per side,
  for GAG, SmoothGrad, IG (reference settings: uniform baselines, 5 points,
  2 trials) and RCAP, on the same CPU threads.

Writes ``results/parity.{json,md}``.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

from benchmarks import report, torch_env
from benchmarks.torch_side import IMAGENET_MEAN, IMAGENET_STD, timed

SAMPLES, P, IG_STEPS, IG_TRIALS = 20, 0.85, 5, 2
REFERENCE_NOISE = {"n_samples": SAMPLES, "noise_range": "batch"}
METHODS = {
    "guided_absolute_grad": {**REFERENCE_NOISE, "p": P, "quantile_over": "channel", "strict": True, "guide": "raw"},
    "smoothgrad": REFERENCE_NOISE,
    "vargrad": REFERENCE_NOISE,
    "integrated_gradients": {"baseline": "uniform", "path_points": "linspace", "steps": IG_STEPS,
                             "trials": IG_TRIALS, "objective": "neg_log_softmax"},
}


def imagenet_space_model(precision="float32"):
    """tf_gag's Lite0 (zoo, through ONNX) taking ImageNet-normalised images, as the torch side's wrapper does,
    computing in ``precision``."""
    import tensorflow as tf

    import tf_gag

    lite0 = tf_gag.load_model("efficientnet_lite0").in_precision(precision)
    mean, std = tf.constant(IMAGENET_MEAN), tf.constant(IMAGENET_STD)
    return tf_gag.ModelAdapter(
        lambda x: lite0.forward(((x * std + mean) * 255.0 - 127.0) / 128.0),
        preprocessing=tf_gag.Preprocessing(mean=(IMAGENET_MEAN * 255).tolist(), std=(IMAGENET_STD * 255).tolist()),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parity", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per measurement (default 2)")
    torch_env.add_argument(parser)
    args = parser.parse_args(argv)
    torch_env.check(parser, args.torch_python)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    import tf_gag
    from tf_gag import assets

    model = imagenet_space_model()
    pixels = assets.photos(assets.ALL_PHOTOS, size=224)
    images = ((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
    logits = model.predict_logits(images, 8)
    targets = logits.argmax(axis=1).astype(np.int32)
    noise = np.stack([tf.random.stateless_normal(images.shape[1:], seed=[0, k]).numpy() for k in range(SAMPLES)])

    # tf_gag's per-sample gradients on the same noisy inputs (sigma over the batch, as the reference draws it).
    from tf_gag.methods.kernel import compile_gradients

    gradients = compile_gradients(model, images.shape[1:])
    sigma = 0.15 * (images.max() - images.min())
    per_sample = np.stack([gradients(images + sigma * noise[k], targets, ())[0].numpy() for k in range(SAMPLES)])

    ours, seconds = {}, {}
    for method, options in METHODS.items():
        explainer = tf_gag.Explainer(model, method, batch_size=32, **options)
        ours[method], seconds[method] = timed(lambda e=explainer: e.explain(images, targets), args.repeats)
    maps = ours["guided_absolute_grad"]
    rcap = tf_gag.RCAP(convention="reference")
    aucs = (tf_gag.Deletion(convention="reference"), tf_gag.Insertion(convention="reference"))
    scores, seconds["rcap"] = timed(lambda: tf_gag.evaluate(model, images, maps, targets, metrics=[rcap],
                                                            batch_size=40), args.repeats)
    auc_scores, seconds["auc"] = timed(lambda: tf_gag.evaluate(model, images, maps, targets, metrics=aucs,
                                                               batch_size=40), args.repeats)

    with tempfile.TemporaryDirectory() as work:
        inputs, out = os.path.join(work, "in.npz"), os.path.join(work, "out.npz")
        np.savez(inputs, images=images.transpose(0, 3, 1, 2), targets=targets, noise=noise.transpose(0, 3, 1, 2),
                 maps=maps, gradients=per_sample.transpose(0, 1, 4, 2, 3), p=P, repeats=args.repeats,
                 ig_steps=IG_STEPS, ig_trials=IG_TRIALS)
        print("running mlxops-xai in the torch environment ...", flush=True)
        torch_env.run(args.torch_python, "parity", inputs, out)
        theirs = dict(np.load(out))
    torch_seconds = json.loads(str(theirs["seconds"]))

    maps_rows = []
    for method in ("guided_absolute_grad", "smoothgrad", "vargrad"):
        difference = np.abs(ours[method] - theirs[f"maps_{method}"])
        given = np.abs(ours[method] - theirs[f"given_{method}"])
        flips = int(np.sum(given > 1e-3))
        maps_rows.append([method, f"{difference.max():.1e}", f"{difference.mean():.1e}", f"{given.max():.1e}",
                          f"{given.mean():.1e}", flips])
    theirs_gradients = theirs["gradients"].transpose(0, 1, 3, 4, 2)
    gradient_error = np.linalg.norm((per_sample - theirs_gradients).reshape(SAMPLES * len(images), -1), axis=1) / \
        np.linalg.norm(theirs_gradients.reshape(SAMPLES * len(images), -1), axis=1)
    metric_rows = [
        [name, f"{np.abs(mine - theirs[name]).max():.1e}", f"{mine.mean():.4f}", f"{theirs[name].mean():.4f}"]
        for name, mine in (("rcap", scores["rcap"]), ("dauc", auc_scores["dauc"]), ("iauc", auc_scores["iauc"]))
    ]
    count = len(images)
    speed_rows = [
        [name, f"{seconds[name] / count * 1000:.0f}", f"{torch_seconds[name] / count * 1000:.0f}",
         f"{torch_seconds[name] / seconds[name]:.2f}"]
        for name in ("guided_absolute_grad", "smoothgrad", "integrated_gradients", "rcap", "auc")
    ]
    markdown = "\n\n".join([
        f"## Maps on identical noise (n = {SAMPLES}, {count} photos, 224 px)",
        report.markdown_table(["method", "max abs diff", "mean abs diff", "max abs diff, same gradients",
                               "mean abs diff, same gradients", "pixels > 1e-3 apart, same gradients"], maps_rows),
        f"Per-sample input gradients, tf_gag vs torch (float32, the same noisy inputs): relative L2 median "
        f"{np.median(gradient_error):.1e}, max {gradient_error.max():.1e} over {gradient_error.size} passes; "
        f"{int(np.sum(gradient_error > 1e-4))} passes above 1e-4.",
        "## Metrics on identical maps (tf_gag's GAG maps; convention=\"reference\")",
        report.markdown_table(["metric", "max abs difference per image", "tf_gag mean", "mlxops-xai mean"],
                              metric_rows),
        f"## Speed per image (best of {args.repeats} after a warm-up; torch threads: {int(theirs['threads'])})",
        report.markdown_table(["work", "tf_gag (ms)", "mlxops-xai (ms)", "tf_gag speed-up"], speed_rows),
    ])
    data = {
        "photos": list(assets.ALL_PHOTOS), "targets": targets.tolist(),
        "logits_max_abs_difference": float(np.abs(logits - theirs["logits"]).max()),
        "maps": {r[0]: {"max": float(r[1]), "mean": float(r[2]), "max_same_gradients": float(r[3]),
                        "mean_same_gradients": float(r[4]), "pixels_apart_same_gradients": r[5]}
                 for r in maps_rows},
        "gradient_rel_l2": {"median": float(np.median(gradient_error)), "max": float(gradient_error.max()),
                            "above_1e-4": int(np.sum(gradient_error > 1e-4))},
        "metrics": {r[0]: float(r[1]) for r in metric_rows},
        "seconds_tf_gag": seconds, "seconds_mlxops_xai": torch_seconds,
    }
    paths = report.write("parity", data, markdown, torch_env.versions(
        args.torch_python, ("torch", "torchvision", "mlxops-xai")))
    print(markdown)
    print("wrote", *paths)


if __name__ == "__main__":
    sys.exit(main())
