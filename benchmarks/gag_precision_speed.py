"""GAG's speed against mlxops-xai 0.4.0 at float32 and at bfloat16, on the same Lite0 weights, in one run.

    .venv/bin/python -m benchmarks.gag_precision_speed [--repeats 1] [--precisions float32,bfloat16]
        [--torch-python .venv-torch/bin/python]

The setting of `benchmarks.parity` (the real EfficientNet-Lite0, the eight offline photos at 224 px in ImageNet
space, each photo's top class, GAG with the reference options: n = 20, p = 0.85), timed at each precision: tf_gag
with ``precision=`` (a bfloat16 copy of the imported model), mlxops-xai under ``torch.autocast("cpu",
dtype=torch.bfloat16)`` (its convolutions and matrix products in bfloat16) in the torch environment. Each figure
is the best of ``--repeats`` calls after a warm-up. Writes ``results/gag_precision_speed.{json,md}``.
"""
import argparse
import functools
import json
import os
import sys
import tempfile
import warnings

import numpy as np

from benchmarks import report, torch_env
from benchmarks.parity import METHODS, SAMPLES, P, imagenet_space_model
from benchmarks.torch_side import IMAGENET_MEAN, IMAGENET_STD, timed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gag_precision_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per measurement (default 1)")
    parser.add_argument("--precisions", default="float32,bfloat16")
    torch_env.add_argument(parser)
    args = parser.parse_args(argv)
    torch_env.check(parser, args.torch_python)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")  # the emulated-precision warning
    import tf_gag
    from tf_gag import assets

    pixels = assets.photos(assets.ALL_PHOTOS, size=224)
    images = ((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
    precisions = args.precisions.split(",")
    targets = imagenet_space_model().predict_logits(images, 8).argmax(axis=1).astype(np.int32)
    seconds = {}
    for precision in precisions:
        explainer = tf_gag.Explainer(imagenet_space_model(precision), "guided_absolute_grad", batch_size=32,
                                     **METHODS["guided_absolute_grad"])
        _, seconds[precision] = timed(functools.partial(explainer.explain, images, targets), args.repeats)
    with tempfile.TemporaryDirectory() as work:
        inputs, out = os.path.join(work, "in.npz"), os.path.join(work, "out.npz")
        np.savez(inputs, images=images.transpose(0, 3, 1, 2), targets=targets, p=P, samples=SAMPLES,
                 repeats=args.repeats, precisions=",".join(precisions))
        print("running mlxops-xai in the torch environment ...", flush=True)
        torch_env.run(args.torch_python, "gag_speed", inputs, out)
        theirs = dict(np.load(out))
    torch_seconds = json.loads(str(theirs["seconds"]))
    count = len(images)
    rows = [[p, f"{seconds[p] / count * 1000:.0f}", f"{torch_seconds[p] / count * 1000:.0f}",
             f"{torch_seconds[p] / seconds[p]:.2f}"] for p in precisions]
    markdown = "\n\n".join([
        f"## GAG per image ({count} photos, 224 px, n = {SAMPLES}; best of {args.repeats} after a warm-up; torch "
        f"threads: {int(theirs['threads'])})",
        report.markdown_table(["precision", "tf_gag (ms)", "mlxops-xai (ms)", "tf_gag speed-up"], rows),
    ])
    paths = report.write("gag_precision_speed", {"seconds_tf_gag": seconds, "seconds_mlxops_xai": torch_seconds},
                         markdown, torch_env.versions(args.torch_python, ("torch", "mlxops-xai")))
    print(markdown)
    print("wrote", *paths)


if __name__ == "__main__":
    sys.exit(main())
