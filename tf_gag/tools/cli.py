"""The ``tf-gag`` command: explain, evaluate, sanity, benchmark, convert, export, methods.

    tf-gag explain photos/ --model efficientnet_lite0 --method gag --out maps/
    tf-gag evaluate photos/ --model model.onnx --method smoothgrad --out scores/
    tf-gag sanity photos/ --model efficientnet_lite0 --methods vg,ig,gb,gag --layers 8 --out sanity/
    tf-gag benchmark /data/ImageNetS919 --model efficientnet_lite0 --out bench/ [--resume]
    tf-gag convert model.onnx
    tf-gag export efficientnet_lite0 serving/1 --method gag
    tf-gag methods
    tf-gag --import my_methods explain photos/ --model efficientnet_lite0 --method my_method

``--import`` imports the user's modules first, so methods they register
(`tf_gag.register_method`) are chosen by name like the built-ins.

TensorFlow's C++ log lines are hidden unless ``--verbose`` (or the caller set
``TF_CPP_MIN_LOG_LEVEL`` itself). Exit status: 0 done, 1 a user error (one line on stderr, no traceback),
2 a usage error (argparse). Images are read with `tf_gag.imageio`
(centre-cropped to the model's aspect ratio, resized, mapped by the model's
preprocessing); unreadable files are skipped and listed (``--on-error skip``,
the default) or stop the run (``--on-error fail``). Results are written file
by file through a temporary name, so an interrupted run never leaves a
half-written file.
"""
import argparse
import importlib
import json
import os
import sys

from ..benchmark.plan import METRICS
from ..io.files import write_atomic, write_bytes
from ..io.types import PRECISIONS

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError,
               ImportError)


class UserError(Exception):
    """A problem with the command's input, reported as one line (exit status 1)."""


def _option(text):
    """``key=value`` with a JSON value (numbers, true/false, strings) for a method option."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _names(text):
    """``--methods`` / ``--metrics``: comma-separated names, empty entries dropped (checked by `_check_flags`)."""
    return [name for name in text.split(",") if name]


def _levels(text):
    """``--noise``: comma-separated numbers (checked as noise levels by `_check_flags`)."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _precision_argument(parser):
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="the type the model computes in (default float32; the README says when bfloat16 is safe "
                             "and faster)")


def _parser():
    parser = argparse.ArgumentParser(prog="tf-gag", description="Gradient saliency maps (Guided AbsoluteGrad, ...) "
                                     "and their RCAP / Deletion / Insertion scores for image classifiers.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default: TF_CPP_MIN_LOG_LEVEL=3)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a Python module first (repeatable): its tf_gag.register_method calls make "
                             "its methods available by name to --method/--methods")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def images_command(name, help_text, one_method=True):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("images", nargs="+", help="image files and folders (a folder's images, not recursed)")
        sub.add_argument("--model", required=True, help="a .onnx/.keras/.h5 file, a SavedModel folder or a zoo name")
        if one_method:
            sub.add_argument("--method", default="guided_absolute_grad", help="see `tf-gag methods` (default: GAG)")
            sub.add_argument("--option", action="append", type=_option, default=[], metavar="KEY=VALUE",
                             help="a method option, e.g. --option n_samples=50 (repeatable)")
            _precision_argument(sub)
        sub.add_argument("--targets", type=int, nargs="+", help="class ids, one per image or one for all "
                         "(default: each image's top class)")
        sub.add_argument("--out", required=True, help="output folder (created if missing)")
        sub.add_argument("--batch-size", type=int, default=32, help="forward+backward passes per call (default 32)")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                         help="unreadable image files: skip and list them (default) or stop")
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
        return sub

    images_command("explain", "Write a saliency map (.npy) and an overlay (.png) per image.")
    evaluate = images_command("evaluate", "Score saliency maps with RCAP, DAUC, IAUC; write metrics.json and .csv.")
    evaluate.add_argument("--metrics", type=_names, default="rcap,dauc,iauc",
                          help="comma-separated (default rcap,dauc,iauc)")
    sanity = images_command("sanity", "Sanity checks: how similar each method's maps stay when the model's weights "
                            "are randomized or perturbed; write sanity.json, sanity.md and sanity.png.",
                            one_method=False)
    sanity.add_argument("--methods", type=_names,
                        default="vanilla_gradient,integrated_gradients,guided_backprop,grad_cam,guided_absolute_grad",
                        help="comma-separated method names (default VG, IG, GB, Grad-CAM, GAG)")
    sanity.add_argument("--check", choices=("cascading", "independent", "perturbation"), default="cascading",
                        help="cascading (default) or independent model randomization, or model perturbation")
    sanity.add_argument("--layers", type=int, default=8,
                        help="randomization: this many weighted layers spread from the top (default 8)")
    sanity.add_argument("--noise", type=_levels, default="0.001,0.002,0.005",
                        help="perturbation: comma-separated relative noise levels (default 0.001,0.002,0.005)")

    benchmark = commands.add_parser(
        "benchmark", help="The paper's Tables 1-3 on a folder of images with masks (ImageNet-S, your own); resumable.",
        description="The paper's Tables 1-3 on a folder of images with masks: every method of the tables explained and "
        "scored batch by batch, each batch's scores written to --out as soon as they exist (--resume skips them), "
        "then tables.md, tables.json and table1-3.png.")
    benchmark.add_argument("data", help="an ImageNet-S subset folder (validation/, validation-segmentation/), or a "
                           "folder of images: images/ (or the images themselves), masks/<stem>.png, labels.json")
    benchmark.add_argument("--model", required=True, help="a .onnx/.keras/.h5 file, a SavedModel folder or a zoo name")
    benchmark.add_argument("--out", required=True, help="the run's folder: new or empty, or the run to --resume")
    benchmark.add_argument("--methods", help="comma-separated methods of Table 2 (default all); the tables keep the "
                           "rows they fill")
    benchmark.add_argument("--metrics", default=",".join(METRICS),
                           help=f"comma-separated (default {','.join(METRICS)}; the first two need masks)")
    benchmark.add_argument("--batch-size", type=int, default=32, help="images per stored batch and forward+backward "
                           "passes per call (default 32)")
    benchmark.add_argument("--seed", type=int, default=0)
    _precision_argument(benchmark)
    benchmark.add_argument("--resume", action="store_true", help="continue the run in --out (same settings): the "
                           "batches it stored are not computed again")
    benchmark.add_argument("--quiet", action="store_true", help="no progress bars")

    convert = commands.add_parser("convert", help="Convert an ONNX file into the cached SavedModel.",
                                  description="Convert an ONNX file (or a zoo model) into the cached SavedModel.")
    convert.add_argument("model", help="a .onnx file or a zoo name")
    convert.add_argument("--feature", help="the tensor to split at for Grad-CAM (default: the last feature map)")
    convert.add_argument("--cache", help="cache folder (default $TF_GAG_CACHE or ~/.cache/tf_gag)")

    export = commands.add_parser("export", help="Write a TF Serving SavedModel with saliency signatures.",
                                 description="Write a TF Serving SavedModel with saliency signatures.")
    export.add_argument("model", help="a .onnx/.keras/.h5 file, a SavedModel folder or a zoo name")
    export.add_argument("path", help="the SavedModel folder to write, e.g. serving/1 (missing folders are created)")
    export.add_argument("--method", default="guided_absolute_grad")
    export.add_argument("--option", action="append", type=_option, default=[], metavar="KEY=VALUE")
    export.add_argument("--seed", type=int, default=0)
    _precision_argument(export)
    export.add_argument("--overwrite", action="store_true", help="replace an existing folder")

    methods = commands.add_parser("methods", help="List the methods, their aliases and options.",
                                  description="List the methods, their aliases and options.")
    methods.add_argument("--json", action="store_true", help="as JSON")
    return parser


def _npy(array):
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _output_folder(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out: cannot create {path} ({error.strerror})") from None
    if not os.path.isdir(path) or not os.access(path, os.W_OK):
        raise UserError(f"--out: {path} is not a writable folder")
    return path


def _load_images(args):
    import tf_gag
    from tf_gag.io import imageio

    model = tf_gag.load_model(args.model)
    height, width, channels = model.input_shape
    if height is None or width is None:
        raise UserError(f"--model: {args.model} does not state its input size; resize the images yourself")
    pixels, names, skipped = imageio.read_images(args.images, height, width, channels or 3, on_error=args.on_error)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if skipped:
        print(f"{len(skipped)} file(s) skipped, {len(names)} image(s) read", file=sys.stderr)
    images = pixels if model.preprocessing is None else model.preprocessing.to_model(pixels).numpy()
    targets = args.targets
    if targets is not None and len(targets) == 1:
        targets = targets[0]
    return model, pixels, images, names, targets


def _stems(names):
    """Output file stems, unique even when two folders hold the same file name."""
    seen, stems = {}, []
    for name in names:
        stem = os.path.splitext(os.path.basename(name))[0]
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def _explain(args):
    from tqdm.auto import tqdm

    import tf_gag
    from tf_gag.tools import viz

    out = _output_folder(args.out)
    model, pixels, images, names, targets = _load_images(args)
    explainer = tf_gag.Explainer(model, args.method, batch_size=args.batch_size, seed=args.seed,
                                 precision=args.precision, **dict(args.option))
    with tqdm(total=len(images) * explainer.passes_per_image, unit="pass", desc=explainer.name,
              disable=args.quiet) as bar:
        maps = explainer.explain(images, targets, on_progress=bar.update)
    for stem, photo, saliency in zip(_stems(names), pixels, maps):
        write_bytes(os.path.join(out, f"{stem}.npy"), _npy(saliency))
        picture = lambda p, ph=photo, s=saliency: viz.save_png(viz.overlay(ph, s), p)
        write_atomic(os.path.join(out, f"{stem}.png"), picture)
    print(f"wrote {len(maps)} maps (.npy) and overlays (.png) to {os.path.abspath(out)}")


def _evaluate(args):
    from tqdm.auto import tqdm

    import tf_gag

    out = _output_folder(args.out)
    model, _, images, names, targets = _load_images(args)
    with tqdm(total=len(images), unit="image", desc="evaluate", disable=args.quiet) as bar:
        result = tf_gag.evaluate(model, images, args.method, targets, metrics=args.metrics,
                                 batch_size=args.batch_size, seed=args.seed, method_options=dict(args.option),
                                 precision=args.precision, on_progress=bar.update)
    print(result.table())
    report = {"model": args.model, "method": args.method, "precision": args.precision, "images": names,
              **result.to_dict()}
    write_bytes(os.path.join(out, "metrics.json"), json.dumps(report, indent=1).encode())
    header = ["image", "target", *result.scores]
    lines = [",".join(header)] + [
        ",".join([f'"{name}"', str(int(result.targets[i]))] + [f"{result.scores[m][i]:.6f}" for m in result.scores])
        for i, name in enumerate(names)
    ]
    write_bytes(os.path.join(out, "metrics.csv"), ("\n".join(lines) + "\n").encode())
    print(f"wrote metrics.json and metrics.csv to {os.path.abspath(out)}")


def _sanity(args):
    import tf_gag
    from tf_gag.tools import viz

    out = _output_folder(args.out)
    model, _, images, names, targets = _load_images(args)
    common = {"targets": targets, "batch_size": args.batch_size, "seed": args.seed}
    if args.check == "perturbation":
        result = tf_gag.sanity.perturbation(model, images, args.methods, noise=args.noise, **common)
    else:
        result = tf_gag.sanity.randomization(model, images, args.methods, cascading=args.check == "cascading",
                                             layers=args.layers, **common)
    tables = [f"## {measure}\n\n{result.to_markdown(measure)}\n" for measure in tf_gag.sanity.SIMILARITIES]
    print(tables[0])
    report = {"model": args.model, "images": names, **result.to_dict()}
    write_bytes(os.path.join(out, "sanity.json"), json.dumps(report, indent=1).encode())
    write_bytes(os.path.join(out, "sanity.md"), "\n".join(tables).encode())
    figure = viz.sanity_figure(result)
    write_atomic(os.path.join(out, "sanity.png"), lambda p: figure.savefig(p, format="png", dpi=120))
    print(f"wrote sanity.json, sanity.md and sanity.png to {os.path.abspath(out)}")


def _benchmark(args):
    import tf_gag
    from tf_gag.benchmark.tables import markdown

    tables = tf_gag.benchmark.run(args.data, args.model, args.out, batch_size=args.batch_size, seed=args.seed,
                                  methods=args.methods, metrics=args.metrics, precision=args.precision,
                                  resume=args.resume, progress=not args.quiet)
    print(markdown(tables))
    print(f"wrote tables.md, tables.json and the tables' plots (.png) to {os.path.abspath(args.out)}")


def _convert(args):
    import tf_gag
    from tf_gag.model.loading import cache_dir

    if not (args.model.endswith(".onnx") or args.model in tf_gag.model.loading.ZOO):
        zoo = list(tf_gag.model.loading.ZOO)
        raise UserError(f"model: expected a .onnx file or a zoo name {zoo}, got {args.model}")
    model = tf_gag.load_model(args.model, feature=args.feature, cache=args.cache)
    print(f"converted {args.model}: input {tuple(model.input_shape)}, Grad-CAM at "
          f"{(model.metadata.get('gradcam') or {}).get('tensor')!r}; cache {cache_dir(args.cache)}")


def _export(args):
    import tf_gag

    path = tf_gag.export_saved_model(args.model, args.path, args.method, overwrite=args.overwrite, seed=args.seed,
                                     precision=args.precision, **dict(args.option))
    print(f"wrote {path} (signatures serving_default, predict_bytes, explain, explain_bytes, explain_class)")


def _methods(args):
    import tf_gag

    methods = tf_gag.list_methods()
    if args.json:
        print(json.dumps(methods, indent=1))
        return
    for name, info in methods.items():
        aliases = f" (also {', '.join(info['aliases'])})" if info["aliases"] else ""
        print(f"{name}{aliases}: {info['summary']}")
        print("    parts: " + " x ".join(f"{slot} {part}" for slot, part in info["parts"].items()))
        print("    options: " + ", ".join(f"{k}={v!r}" for k, v in info["options"].items()))
        if info["variants"]:
            print("    variants: " + ", ".join(info["variants"]))


def _check_flags(args):
    """Refuse the numbers and empty name lists a command cannot use, naming the flag, before any model is loaded.

    The library would refuse them too, naming its argument, but only after
    the model is loaded (or converted) and the images read.
    """
    from ..io.checks import check_int, check_selection
    from ..io.inputs import check_batch_size, check_seed

    if "batch_size" in args:
        check_batch_size(args.batch_size, "--batch-size")
    if "seed" in args:
        check_seed(args.seed, "--seed")
    for target in getattr(args, "targets", None) or ():
        check_int("--targets", target, 0, what="class ids")
    if args.command == "evaluate":
        check_selection("--metrics", args.metrics, "metric names")
    elif args.command == "sanity":
        check_selection("--methods", args.methods, "method names")
        if args.check == "perturbation":
            from ..sanity.checks import check_noise  # imports the library: only for the command that uses it

            check_noise(args.noise, "--noise")
        else:
            check_int("--layers", args.layers, 1)


COMMANDS = {"explain": _explain, "evaluate": _evaluate, "sanity": _sanity, "benchmark": _benchmark,
            "convert": _convert, "export": _export, "methods": _methods}


def import_tensorflow_quietly():
    """Import TensorFlow and start its devices with file descriptor 2 pointed at /dev/null.

    TensorFlow 2.21 writes its start-up lines (oneDNN, CUDA, CPU features)
    from C++ before its logging is configured, whatever ``TF_CPP_MIN_LOG_LEVEL``
    says (measured), so they are hidden here, once, before any command runs;
    importing tf_gag does not import TensorFlow, so none came earlier. An
    import error is raised as usual once stderr is back. The demo uses it too.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv=None):
    args = _parser().parse_args(argv)
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's later C++ lines; inherited by converters
        import_tensorflow_quietly()
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # TensorFlow's Python logger: errors only, unless --verbose
    try:
        _check_flags(args)
        for module in args.imports:
            importlib.import_module(module)
        COMMANDS[args.command](args)
    except (UserError, *USER_ERRORS) as error:
        print(f"tf-gag {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
