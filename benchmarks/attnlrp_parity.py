"""AttnLRP parity: tf_gag's attn_lrp and cp_lrp against LXT 2.1 on one ViT-B/16, imported through ONNX.

    .venv/bin/python -m benchmarks.attnlrp_parity [--photos 4] [--torchvision DIR]

Needs LXT and zennit in tf_gag's environment (``pip install --no-deps lxt==2.1 zennit==0.5.1``; the README's
test command installs both). The model: torchvision's ViT-B/16 layout (`benchmarks.vit_lxt.torch_vit`: 224 px,
16 px patches, 768 wide, 12 heads, 12 blocks, MLP 3072, LayerNorm epsilon 1e-6, 1000 classes) with seeded
weights, exported with `converters.torch_to_onnx.export` and converted by ``tf_gag.load_model``. With
``--torchvision DIR`` it is the conversion matrix's own ViT-B/16 instead (`benchmarks.torch_side.build`:
torchvision's module, seed 0): torchvision's wheels here are CUDA builds whose compiled operators do not load
with the CPU torch, so its Python sources are read from DIR (``pip install --no-deps --target DIR
torchvision==0.28.0``, torch 2.13's match) without its extension, which ViT never calls. LXT runs on
the torch module itself (its vision transformer recipe, zennit's gamma rule with gamma 0.25 on the patch
convolution and 0.1 on Linear layers, as tf_gag's defaults). Real photos at 224 px in ImageNet's
normalisation, each photo's torch top class as target, relevance from its logit.

Reported per method (worst photo): max |difference| / max |relevance| and Pearson correlation against LXT in
float64 (the oracle) and in float32, the conservation error |sum R - logit| / |logit| of both sides, and the
time of one call for all photos (tf_gag's first call, which traces its graph, and the next; LXT float32).
Writes ``results/attnlrp_parity.{json,md}`` (with ``--torchvision``: ``attnlrp_parity_torchvision``).
"""
import argparse
import importlib
import importlib.util
import os
import sys
import tempfile
import time

import numpy as np

from benchmarks import report
from benchmarks.lrp_parity import IMAGENET_MEAN, IMAGENET_STD, PHOTOS
from benchmarks.same_weights import explained_photos
from benchmarks.vit_lxt import lxt_relevance, torch_vit

METHODS = {"attn_lrp": "attnlrp", "cp_lrp": "cp"}


def _compare(ours, theirs):
    return (max(float(np.abs(o - t).max() / np.abs(t).max()) for o, t in zip(ours, theirs)),
            min(float(np.corrcoef(o.ravel(), t.ravel())[0, 1]) for o, t in zip(ours, theirs)))


def _conservation(relevance, logits, targets):
    chosen = logits[np.arange(len(targets)), targets]
    return float(np.max(np.abs(relevance.sum(axis=(1, 2, 3)) - chosen) / np.abs(chosen)))


def vit_b_16(torchvision):
    """(ViT-B/16 torch module, its description): the conversion matrix's torchvision module with the sources at
    ``torchvision``, or torchvision's layout built by `torch_vit` when None."""
    if torchvision is None:
        return torch_vit(224, 16, 768, 12, 12, 1000, mlp=3072, epsilon=1e-6), "vit_b_16 layout (seeded)"
    from benchmarks.torch_side import build

    folder = os.path.join(torchvision, "torchvision")  # its sources; its __init__ (the extension) never runs
    spec = importlib.util.spec_from_file_location("torchvision", os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    sys.modules.setdefault("torchvision", importlib.util.module_from_spec(spec))
    importlib.import_module("torchvision.models")  # build() reads it as an attribute of the package
    return build("vit_b_16"), "torchvision vit_b_16 (seeded, the conversion matrix's)"


def measure(photos, cache, work, torchvision=None):
    import tf_gag
    from converters.torch_to_onnx import export

    net, described = vit_b_16(torchvision)
    start = time.perf_counter()
    model = tf_gag.load_model(export(net, os.path.join(work, "vit_b_16.onnx"), input_size=(224, 224)), cache=cache)
    convert_s = time.perf_counter() - start
    nhwc, _, targets, agreement = explained_photos(
        model, net, lambda pixels: ((pixels - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32), photos)
    logits = model.predict_logits(nhwc, len(nhwc))
    row = {"model": described, "photos": list(photos), "convert_s": convert_s, **agreement, "methods": {}}
    for method, variant in METHODS.items():
        start = time.perf_counter()
        ours = tf_gag.attributions(model, nhwc, method, targets)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        tf_gag.attributions(model, nhwc, method, targets)
        ours_s = time.perf_counter() - start
        oracle = lxt_relevance(net, nhwc, targets, variant, dtype="float64")
        start = time.perf_counter()
        theirs = lxt_relevance(net, nhwc, targets, variant, dtype="float32")
        theirs_s = time.perf_counter() - start
        rel64, pearson64 = _compare(ours, oracle)
        rel32, pearson32 = _compare(ours, theirs)
        lxt32_vs_64, _ = _compare(theirs, oracle)
        row["methods"][method] = {
            "rel_max_fp64": rel64, "pearson_min_fp64": pearson64, "rel_max_fp32": rel32, "pearson_min_fp32": pearson32,
            "lxt_fp32_vs_fp64": lxt32_vs_64, "conservation_tf_gag": _conservation(ours, logits, targets),
            "conservation_lxt": _conservation(oracle, logits, targets),
            "tf_gag_first_s": first_s, "tf_gag_s": ours_s, "lxt_s": theirs_s}
        print(f"{method}: rel max {rel64:.1e} (fp64), {rel32:.1e} (fp32); tf_gag {first_s:.1f} s then "
              f"{ours_s:.2f} s, LXT {theirs_s:.2f} s", file=sys.stderr, flush=True)
    return row


def write(row, name):
    table = report.markdown_table(
        ["method", "max \\|d\\| / max \\|R\\| vs LXT fp64", "Pearson (min)", "vs LXT fp32", "LXT fp32 vs fp64",
         "conservation tf_gag / LXT", "tf_gag first call (s)", "tf_gag (s)", "LXT fp32 (s)", "LXT / tf_gag"],
        [[m, f"{e['rel_max_fp64']:.1e}", f"{e['pearson_min_fp64']:.7f}", f"{e['rel_max_fp32']:.1e}",
          f"{e['lxt_fp32_vs_fp64']:.1e}", f"{e['conservation_tf_gag']:.2f} / {e['conservation_lxt']:.2f}",
          f"{e['tf_gag_first_s']:.1f}", f"{e['tf_gag_s']:.2f}", f"{e['lxt_s']:.2f}",
          f"{e['lxt_s'] / e['tf_gag_s']:.2f}×"] for m, e in row["methods"].items()])
    markdown = (
        "# AttnLRP parity: tf_gag against LXT 2.1 on ViT-B/16 (the same torch weights, through ONNX)\n\n"
        f"Model: {row['model']}. Photos at 224 px: {', '.join(row['photos'])}; each photo's torch top class as "
        "target (tf_gag's logits "
        f"within {row['logits_rel_max']:.1e} of torch's, same top-1: {row['same_top1']}), relevance from its logit. "
        "Worst photo. Conservation: \\|sum R - logit\\| / \\|logit\\| (biases, LayerNorm offsets, the class token "
        "and the position embedding keep shares; AttnLRP's softmax rule does not conserve). Times: one call for all "
        "photos; tf_gag's first call traces its graph, the next reuses it.\n\n" + table + "\n")
    return report.write(name, row, markdown, extra_versions=report.versions(("zennit", "lxt")))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attnlrp_parity", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4, help="how many of the offline photos (1-8)")
    parser.add_argument("--torchvision", help="folder with torchvision's wheel unpacked: explain its vit_b_16")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        cache = os.environ.get("TF_GAG_CACHE") or os.path.join(work, "cache")
        row = measure(PHOTOS[:args.photos], cache, work, args.torchvision)
        paths = write(row, "attnlrp_parity_torchvision" if args.torchvision else "attnlrp_parity")
    print("\n".join(paths))


if __name__ == "__main__":
    main()
