"""`run`: every unit of the plan over every batch of the data, stored batch by batch, then the tables."""
import os
import warnings

import numpy as np

from ..api import Explainer
from ..evaluation import evaluate
from ..io.inputs import check_batch_size, check_seed
from ..metrics import named
from ..model import load_model
from ..model.loading import fingerprint
from ..model.precision import check_device, check_precision
from . import plan as planning
from . import tables as tabulate
from .data import batch_count, open_data
from .figures import benchmark_figures
from .store import Store

#: The layout of the stored files; part of the settings, so a run stored in another layout is not resumed.
#: 2: the settings hold the model's content hash (``model_sha256``); 3: each batch file has a SHA-256 sidecar;
#: 4: the settings hold the precision the model computes in.
FORMAT = 4


def run(data, model, out, *, batch_size=32, seed=0, methods=None, metrics=planning.METRICS, precision="float32",
        resume=False, progress=True):
    """Tables 1-3 of the paper for ``model`` on the images of ``data``, written to ``out``; returns the tables.

    Args:
      data: an ImageNet-S subset folder, or a folder of images with optional
        ``masks/`` and ``labels.json`` (see `tf_gag.benchmark.data`).
      model: a .onnx/.keras/.h5 file, a SavedModel folder or a zoo name (for
        `tf_gag.load_model`); recorded in the settings.
      out: the run's folder: new or empty, or with ``resume`` a run begun
        there with the same settings.
      batch_size: images per stored batch, and the most forward+backward
        passes in one call (as for `tf_gag.evaluate`).
      seed: the methods' seed.
      methods: Table 2's methods to run (names or aliases, or a
        comma-separated string; default all); the tables keep the rows they fill.
      metrics: named metrics, the tables' columns (default the paper's five;
        the mask metrics need masks in ``data``).
      precision: the type the model computes in for the maps and the metrics
        (``"float32"``, ``"bfloat16"``, ``"float16"``; see `tf_gag.Explainer`).
      resume: continue the run in ``out``: batches already stored are not
        computed again.
      progress: a progress bar per unit (tqdm).

    Every batch's per-image scores and curves are written atomically to
    ``out/scores/`` before the next starts, and the tables are computed from
    those files alone, so a run killed and resumed gives an uninterrupted
    run's tables. Each file's SHA-256 is recorded beside it and checked
    before the file is used: on resuming, a file that fails is computed again
    with a warning naming it and why; the tables refuse one (a ValueError
    naming it) rather than use it (see `tf_gag.benchmark.store`). Writes
    ``tables.json``, ``tables.md`` and ``table1.png`` ... in ``out``; the
    returned dict is tables.json's content (see `tf_gag.benchmark.tables.build`).
    """
    chosen = planning.resolve_methods(methods)
    metrics = named.resolve(planning.resolve_metrics(metrics))
    batch_size, seed = check_batch_size(batch_size), check_seed(seed)
    if not isinstance(model, str):
        raise TypeError(f"model: expected a path or zoo name (recorded for resuming), got {type(model).__name__}")
    store = Store(out, resume)  # a non-empty out folder is refused before anything slow
    check_device(check_precision(precision))
    adapter = load_model(model).in_precision(precision)
    source = open_data(data, adapter)
    mask_metrics = [m.name for m in metrics if m.needs_masks]
    if mask_metrics and not source.has_masks:
        others = [m.name for m in metrics if not m.needs_masks]
        raise ValueError(f"data: {os.fspath(data)} has no masks, which metrics {mask_metrics} need; add masks/ or "
                         f"leave them out (metrics={others}; CLI: --metrics {','.join(others)})")
    settings = {"format": FORMAT, "data": os.path.abspath(data),
                "model": os.path.abspath(model) if os.path.exists(model) else model,
                "model_sha256": fingerprint(model), "batch_size": batch_size,
                "seed": seed, "precision": precision, "methods": chosen, "metrics": [m.name for m in metrics],
                "images": source.count}
    store.begin(settings)
    units, batches = planning.plan(chosen), batch_count(source.count, batch_size)
    for number, unit in enumerate(units, start=1):
        _compute(unit, f"[{number}/{len(units)}] {unit.label}", store, adapter, source, metrics, batch_size, seed,
                 progress)
    result = tabulate.build(store, units, metrics, batches, settings, adapter.classes)
    store.write_tables(result, tabulate.markdown(result), benchmark_figures(result))
    return result


def _compute(unit, label, store, adapter, source, metrics, batch_size, seed, progress):
    """The unit's batches that are not stored yet or fail their check, each stored as soon as it is scored."""
    from tqdm.auto import tqdm

    wanted = [i for i in range(batch_count(source.count, batch_size)) if not store.has(unit, i)]
    stored = source.count - sum(min(batch_size, source.count - i * batch_size) for i in wanted)
    with tqdm(total=source.count, initial=stored, desc=label, unit="image", disable=not progress) as bar:
        if not wanted:
            return
        explainer = Explainer(adapter, unit.method, batch_size=batch_size, seed=seed, **unit.options)
        for index, batch in source.batches(batch_size, wanted):
            store.save(unit, index, score(adapter, explainer, batch, metrics, batch_size))
            bar.update(len(batch.names))


def score(adapter, explainer, batch, metrics, batch_size):
    """One batch's stored arrays: names, targets, masked, and per metric its scores and curves ("name:key").

    Targets are the labels, the model's top class where there is none. Mask
    metrics score the images with a mask only; their arrays are that long.
    """
    ids = batch.labels
    if (ids < 0).any():
        ids = np.where(ids >= 0, ids, adapter.predict_logits(batch.images, batch_size).argmax(axis=1)).astype(np.int32)
    maps = explainer.explain(batch.images, ids)
    arrays = {"names": np.array(batch.names), "targets": ids, "masked": batch.masked}
    curve_metrics = [m for m in metrics if not m.needs_masks]
    mask_metrics = [m for m in metrics if m.needs_masks]
    results, masked = [], batch.masked
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined scores (an all-zero map's RCAP) are counted in the tables
        if curve_metrics:
            results.append(evaluate(adapter, batch.images, maps, ids, metrics=curve_metrics, batch_size=batch_size))
        if mask_metrics and masked.any():
            results.append(evaluate(adapter, batch.images[masked], maps[masked], ids[masked], batch.masks[masked],
                                    metrics=mask_metrics, batch_size=batch_size))
    if mask_metrics and not masked.any():
        arrays.update({m.name: np.zeros((0,)) for m in mask_metrics})
    for result in results:
        for name, values in result.scores.items():
            arrays[name] = values
            arrays.update({f"{name}:{key}": v for key, v in result.curves.get(name, {}).items()})
    return arrays
