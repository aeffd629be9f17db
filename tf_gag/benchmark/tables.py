"""Tables 1-3 from a run's stored batch files, and as Markdown.

Each unit's dataset values are what `tf_gag.evaluate` reports for all its
images (`EvaluationResult.means`: DAUC/IAUC from the dataset-mean curve,
undefined scores left out), computed from the stored per-image scores and
curves alone; the mask metrics cover the images that have a mask. Table 3
divides each variant's value by its family's Table 2 value and averages the
ratios over the families. Nothing here imports TensorFlow until `build` runs.
"""
import numpy as np

from .plan import FAMILIES, LABELS, SHORT

#: The Markdown intro lists every image and its target up to this many images.
LISTED_IMAGES = 20


def markdown_table(header, rows):
    """A Markdown table from a header and rows of cells (numbers formatted by the caller)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _means(parts, metrics, targets, masked):
    """{metric: dataset value} and {metric: undefined count} of one unit's stored batches."""
    from ..evaluation import EvaluationResult

    means, undefined = {}, {}
    for needs_masks in (False, True):
        group = {m.name: m for m in metrics if m.needs_masks == needs_masks}
        if not group:
            continue
        scores = {name: np.concatenate([p[name] for p in parts]) for name in group}
        curves = {}
        for name, metric in group.items():
            keys = [k.split(":", 1)[1] for k in parts[0] if k.startswith(name + ":")]
            curves[name] = {key: np.concatenate([p[f"{name}:{key}"] for p in parts]) if key in metric.curve_keys
                            else parts[0][f"{name}:{key}"] for key in keys}  # the curve's axis: one per unit
        ids = targets[masked] if needs_masks else targets
        result = EvaluationResult(scores, {k: v for k, v in curves.items() if v}, ids, np.ones(len(ids), bool), group)
        means.update(result.means())
        undefined.update({k: v for k, v in result.undefined().items() if v})
    return {m.name: means[m.name] for m in metrics}, undefined


def build(store, units, metrics, batches, settings, classes=None):
    """The tables of ``units`` (their stored ``batches`` each) as JSON-ready values.

    Every batch is read through `Store.load`, which checks its file's SHA-256:
    a missing or broken file raises a ValueError naming it, never a table.

    Returns {"settings", "images", "targets", "target_names", "masked",
    "better", "mask_metrics", "table1" {p: row}, "table2" {method: row},
    "table3" {variant: row}, "undefined" {unit key: {metric: count}}}, a
    row being {metric: dataset value}.
    """
    rows, undefined, images = {}, {}, None
    for unit in units:
        parts = [store.load(unit, index) for index in range(batches)]
        names = [str(n) for p in parts for n in p["names"]]
        if images is None:
            images, first = names, unit
            targets = np.concatenate([p["targets"] for p in parts])
            masked = np.concatenate([p["masked"] for p in parts])
        elif names != images:
            raise ValueError(f"data: the images changed during the run ({unit.key} scored other images than "
                             f"{first.key}); run the benchmark again into a new out folder")
        rows[unit], missing = _means(parts, metrics, targets, masked)
        if missing:
            undefined[unit.key] = missing
    table2, table3 = rows_of(rows, 2), {}
    for variant in dict.fromkeys(u.row for u in units if u.table == 3):
        family_rows = {u.method: row for u, row in rows.items() if u.table == 3 and u.row == variant}
        table3[variant] = {m.name: float(np.mean([family_rows[f][m.name] / table2[SHORT[f]][m.name]
                                                  for f in FAMILIES if f in family_rows])) for m in metrics}
    return {
        "settings": settings,
        "images": images,
        "targets": targets.tolist(),
        "target_names": None if classes is None else [classes[t] for t in targets],
        "masked": masked.tolist(),
        "better": {m.name: m.better for m in metrics},
        "mask_metrics": [m.name for m in metrics if m.needs_masks],
        "table1": rows_of(rows, 1),
        "table2": table2,
        "table3": table3,
        "undefined": undefined,
    }


def rows_of(rows, table):
    """{row label: row} of one table's units."""
    return {unit.row: row for unit, row in rows.items() if unit.table == table}


def markdown(tables):
    """Tables 1-3 (those the run's methods fill) as Markdown, values to 4 decimals."""
    metrics = tables["settings"]["metrics"]
    masks = [m for m in metrics if m in tables["mask_metrics"]]
    curves = [m for m in metrics if m not in masks]
    images, masked = len(tables["images"]), sum(tables["masked"])

    def header(names, arrows=True):
        arrow = {"higher": " ↑", "lower": " ↓"}
        return [LABELS[m] + (arrow[tables["better"][m]] if arrows else "") for m in names]

    def cells(row, names):
        return [f"{row[m]:.4f}" for m in names]

    if images <= LISTED_IMAGES:
        targets = tables["target_names"] or tables["targets"]
        parts = [f"Images: {', '.join(f'{n} → {t}' for n, t in zip(tables['images'], targets))}."]
    else:
        parts = [f"Images: {images}, {masked} with a mask."]
    if tables["table1"] and curves:
        parts += [f"## Table 1: GAG by p ({images} images)",
                  markdown_table(["p", *header(curves)], [[p, *cells(r, curves)] for p, r in tables["table1"].items()])]
    scope = f"{images} images"
    if masks and curves and masked < images:
        scope = (f"{' and '.join(LABELS[m] for m in masks)} on the {masked} masked images; "
                 f"{', '.join(LABELS[m] for m in curves)} on all {images}")
    parts += [f"## Table 2: methods ({scope})",
              markdown_table(["method", *header(metrics)],
                             [[m, *cells(r, metrics)] for m, r in tables["table2"].items()])]
    if tables["table3"]:
        families = ", ".join(SHORT[f] for f in FAMILIES if f in tables["settings"]["methods"])
        parts += [f"## Table 3: gradient-processing variants, metric(variant) / metric(original), mean of {families}",
                  markdown_table(["variant", *header(metrics, arrows=False)],
                                 [[v, *cells(r, metrics)] for v, r in tables["table3"].items()])]
    return "\n\n".join(parts)
