"""`evaluate`: score saliency maps with metric objects (RCAP, Deletion/Insertion AUC, log-cosh Dice, MAE)."""
import collections.abc
import warnings
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from .api import Explainer, explainer_for
from .distribute import check_strategy
from .errors import PartialResultError
from .io import data
from .io.inputs import as_image_batch, as_map_batch, as_mask_batch, check_batch_size, check_seed
from .io.targets import resolve_targets
from .io.types import ImagesLike, ModelLike, OtherInputs, Progress, TargetsLike
from .methods.method import Method
from .metrics import named
from .metrics.base import Batch
from .metrics.reveal import RevealScorer
from .model import ModelAdapter, Preprocessing, resolve_model
from .reuse import RecentCache

_ADAPTERS = RecentCache(8)
_SCORERS = RecentCache(8)


class EvaluationResult(collections.abc.Mapping):
    """Per-image scores of each metric, with curves, means and a table.

    ``result["rcap"]`` is the (N,) float64 array of per-image scores (NaN
    where a score is undefined or its image was not reached). ``curves`` holds
    each curve metric's x-axis and (N, K) values:
    ``curves["rcap"] = {"recovered", "probability", "saliency_ratio"}``,
    ``curves["dauc"] / curves["iauc"] = {"fraction", "probability"}``.
    ``targets`` are the class ids scored; ``completed`` marks the images done
    (a partial result of a Dataset holds only the images done); ``metrics``
    are the metric objects, by result key.
    """

    def __init__(self, scores, curves, targets, completed, metrics):
        self.metrics = metrics
        self.scores = scores
        self.curves = curves
        self.targets = targets
        self.completed = completed

    def __getitem__(self, name):
        return self.scores[name]

    def __iter__(self):
        return iter(self.scores)

    def __len__(self):
        return len(self.scores)

    def undefined(self):
        """{metric: number of completed images whose score is undefined (NaN)}."""
        return {name: int(np.sum(np.isnan(s[self.completed]))) for name, s in self.scores.items()}

    def means(self):
        """{metric: dataset value} over the completed images, as each metric defines it.

        Most are the mean of the defined scores; DAUC and IAUC are the area
        under the dataset-mean curve (the reference's number).
        """
        return {name: metric.dataset_value(self.scores[name], self.curves.get(name), self.completed)
                for name, metric in self.metrics.items()}

    def table(self):
        """A plain-text table: metric, better direction, dataset value, images scored."""
        means, undefined = self.means(), self.undefined()
        done = int(self.completed.sum())
        lines = [f"{'metric':<14} {'better':<7} {'value':>8}  images", "-" * 40]
        for name in self.scores:
            note = f"{done - undefined[name]}" + (f" ({undefined[name]} undefined)" if undefined[name] else "")
            lines.append(f"{name:<14} {self.metrics[name].better:<7} {means[name]:>8.4f}  {note}")
        return "\n".join(lines)

    def to_dict(self):
        """JSON-ready: per-image scores (None for NaN), means, targets and curves as lists."""

        def plain(array):
            return [None if isinstance(v, float) and np.isnan(v) else v for v in np.asarray(array).tolist()]

        return {
            "means": {k: (None if np.isnan(v) else v) for k, v in self.means().items()},
            "scores": {k: plain(v) for k, v in self.scores.items()},
            "targets": self.targets.tolist(),
            "completed": self.completed.tolist(),
            "curves": {
                name: {key: np.where(np.isnan(v), None, v).tolist() for key, v in curve.items()}
                for name, curve in self.curves.items()
            },
        }

    def __repr__(self):
        return f"EvaluationResult({len(self.targets)} images)\n{self.table()}"


# evaluate's metric options before the metric objects: where each one went.
_MOVED = {
    "convention": (("RCAP", "Deletion", "Insertion"), "convention"),
    "lower_bound": (("RCAP",), "lower_bound"),
    "interval": (("RCAP",), "interval"),
    "auc_schedule": (("Deletion", "Insertion"), "schedule"),
    "auc_steps": (("Deletion", "Insertion"), "steps"),
    "pixels_per_step": (("Deletion", "Insertion"), "pixels_per_step"),
    "deletion_fill": (("Deletion",), "fill"),
    "blur_sigma": (("Deletion", "Insertion"), "blur_sigma"),
    "blur_kernel_size": (("Deletion", "Insertion"), "blur_kernel_size"),
}


def _refused(key):
    """The TypeError for a keyword evaluate does not take; for a former metric option, where it went."""
    if key not in _MOVED:
        return TypeError(f"evaluate() got an unexpected keyword argument {key!r}")
    classes, option = _MOVED[key]
    use = ", ".join(f"tf_gag.metrics.{c}({option}=...)" for c in classes)
    return TypeError(f"{key}: evaluate() no longer takes metric options; use metrics=[{use}]")


def _black(preprocessing, channels):
    """Black (pixel value 0) in the model's input space; 0 when no preprocessing is known."""
    if preprocessing is None:
        return np.zeros((channels,), np.float32)
    if not isinstance(preprocessing, Preprocessing):
        raise TypeError(f"preprocessing: expected a tf_gag.Preprocessing, got {type(preprocessing).__name__}")
    return np.broadcast_to(preprocessing.to_model(0.0).numpy(), (channels,)).astype(np.float32)


def evaluate(model: ModelLike, images: ImagesLike, maps_or_method: Any = "guided_absolute_grad",
             targets: TargetsLike = None, masks: Optional[ImagesLike] = None,
             metrics: Union[str, Any, Sequence[Any]] = ("rcap", "dauc", "iauc"), *, inputs: OtherInputs = None,
             batch_size: int = 32, preprocessing: Optional[Preprocessing] = None, seed: int = 0,
             method_options: Optional[Dict[str, Any]] = None, strategy: Optional[Any] = None,
             on_progress: Progress = None, **moved: Any) -> "EvaluationResult":
    """Score saliency maps of ``images`` with the paper's metrics.

    Args:
      model: as for `explain` (a Keras model, SavedModel, callable, `ModelAdapter`,
        or a path or zoo name for `load_model`).
      images: (N, H, W, C) in the model's input space, or a `tf.data.Dataset`
        of images[, labels[, masks]] (see `tf_gag.io.data`), streamed
        ``batch_size`` images at a time: its labels are the targets, its
        masks the ground truth, and only per-image scores are kept.
      maps_or_method: (N, H, W) non-negative maps, a method name or a
        `tf_gag.Method` (the maps
        are explained here, ``batch_size`` images at a time, with ``seed``
        and ``method_options``), or an `Explainer`. A Dataset needs a method
        or an Explainer.
      targets: None (each image's top class), an int, N ints or one-hot rows.
      masks: (N, H, W) ground-truth object masks, for ``log_cosh_dice``
        (binary), ``mae`` and ``sqrt_mae`` (values in [0, 1]).
      inputs: a multi-input Keras model's other inputs, one row per image
        (as for `explain`); revealed, deleted and inserted images change only
        the explained image input, the other inputs stay each image's own.
      metrics: metric objects from `tf_gag.metrics` (``RCAP``, ``Deletion``,
        ``Insertion``, ``LogCoshDice``, ``MAE``), which own their options, or
        names from ``METRICS`` for the default objects, or a mix; one result
        key each.
      batch_size: images per evaluation batch and most model calls at once.
      preprocessing: the pixel -> model-input mapping that defines black for
        RCAP (and ``Deletion(fill="black")``); defaults to the adapter's. When
        none is known, inputs are taken to be pixels and black is 0.
      strategy: a `tf.distribute.Strategy`; the maps and the metrics' model
        calls of every batch are split across its replicas.
      on_progress: called with the number of images finished after each batch.

    The metric options evaluate took before (``lower_bound=``,
    ``convention=``, ``auc_steps=``, ...) belong to the metric objects now;
    passing one raises a TypeError naming the object that takes it.

    The methods themselves are checked with `tf_gag.sanity` (model
    randomization, model perturbation): this scores maps, that asks whether a
    method's maps depend on the model at all.

    Returns an `EvaluationResult`. If a batch fails, the `PartialResultError`
    raised carries the result of the batches before it (``partial``,
    ``completed``). A map that sums to 0 has no RCAP: its score is NaN, a
    warning names it and the means leave it out. A model whose outputs are
    NaN or Inf for an image, or for the images a metric composes from it,
    raises a `ModelOutputError` (a ValueError) naming the images.
    """
    if moved:
        raise _refused(next(iter(moved)))
    metrics = named.resolve(metrics)
    batch_size = check_batch_size(batch_size)
    seed = check_seed(seed)
    if method_options is not None and not isinstance(method_options, dict):
        raise TypeError(f"method_options: expected a dict of the method's options, got {method_options!r}")
    by_method = isinstance(maps_or_method, (str, Method))
    if method_options and not by_method:
        raise ValueError("method_options: only a method named by maps_or_method takes them; an Explainer has its "
                         "own and precomputed maps none")
    strategy = check_strategy(strategy)
    model = resolve_model(model)
    mask_metrics = [m.name for m in metrics if m.needs_masks]
    binary_masks = any(m.binary_masks for m in metrics)

    explainer = None
    if isinstance(maps_or_method, Explainer):
        explainer = maps_or_method
    elif by_method:
        explainer = explainer_for(model, maps_or_method, batch_size=batch_size, seed=seed, strategy=strategy,
                                  **(method_options or {}))
    if explainer is not None:
        adapter = explainer.adapter
    elif isinstance(model, ModelAdapter):
        adapter = model
    else:
        adapter = _ADAPTERS.get(model, {}, lambda: ModelAdapter(model))
    scorer = _SCORERS.get(adapter, {"strategy": strategy}, lambda: RevealScorer(adapter, strategy))

    if data.is_dataset(images):
        if explainer is None:
            raise ValueError("maps_or_method: a tf.data.Dataset is explained batch by batch; pass a method name "
                             "or an Explainer, not precomputed maps")
        if targets is not None or masks is not None:
            raise ValueError("targets, masks: with a tf.data.Dataset they come from its (image, label, mask) "
                             "elements; pass targets=None and masks=None")
        if inputs is not None:
            raise ValueError("inputs: with a tf.data.Dataset the other inputs are keys of its dict elements, named "
                             "as the model's inputs; pass inputs=None")
        source, total = _dataset_batches(images, adapter, batch_size), None
    else:
        images = as_image_batch(images, adapter.input_shape)
        n = len(images)
        context = adapter.check_inputs(inputs, n)
        maps = None if explainer is not None else as_map_batch(maps_or_method, n, images.shape[1:3])
        if mask_metrics and masks is None:
            raise ValueError(f"masks: metrics {mask_metrics} compare maps with ground-truth masks; pass masks=")
        if masks is not None:
            masks = as_mask_batch(masks, n, images.shape[1:3], binary=binary_masks)
        # Top classes need every image's logits; explicit targets only the class count and the logits check.
        probe = slice(None) if targets is None else slice(0, 1)
        logits = adapter.predict_logits(images[probe], batch_size, warn=False, context=tuple(c[probe] for c in context))
        adapter.require_logits(logits)
        ids = resolve_targets(targets, n, logits.shape[1], predicted=lambda: logits.argmax(axis=1))
        source = (
            (images[rows], ids[rows], None if maps is None else maps[rows], None if masks is None else masks[rows],
             tuple(c[rows] for c in context))
            for rows in (slice(start, start + batch_size) for start in range(0, n, batch_size))
        )
        total = n

    collected = _Collected(metrics, None if total is None else ids)
    black = None
    while True:
        batch = None
        try:
            batch = next(source, None)
            if batch is None:
                break
            batch_images, batch_ids, batch_maps, batch_masks, batch_context = batch
            height, width, channels = batch_images.shape[1:]
            if black is None:  # options that depend on the image size, checked once
                collected.axes = {m.name: m.curve_axis(height, width) for m in metrics}
                black = _black(preprocessing or adapter.preprocessing, channels)
            if batch_maps is None:
                others = {o.name: c for o, c in zip(adapter.other_inputs, batch_context)} if batch_context else None
                batch_maps = explainer.explain(batch_images, batch_ids, inputs=others)
            if total is None and mask_metrics:
                if batch_masks is None:
                    raise ValueError(f"masks: metrics {mask_metrics} need ground-truth masks; the dataset's elements "
                                     "have none (expected (image, label, mask) or a dict with 'mask')")
                batch_masks = as_mask_batch(np.squeeze(batch_masks, axis=-1) if batch_masks.ndim == 4
                                            else batch_masks, len(batch_images), (height, width),
                                            binary=binary_masks)
            scored = Batch(scorer.bound(batch_context), batch_images, batch_maps, batch_ids, batch_masks, black,
                           batch_size, collected.count)
            part = {m.name: m.score(scored) for m in metrics}
        except Exception as exc:
            done = collected.count
            if done == 0 and isinstance(exc, (ValueError, TypeError)):
                raise  # a user error before any result: nothing to keep
            partial = collected.result(total)
            where = f"the batch of images {done}..{done + len(batch[0]) - 1}" if batch else f"image {done} on"
            raise PartialResultError(
                f"evaluate: {where} failed ({type(exc).__name__}: {exc}); the {done} images before it are in .partial",
                partial=partial,
                completed=partial.completed.copy(),
            ) from exc
        collected.add(part, batch_ids)
        if on_progress is not None:
            on_progress(len(batch_ids))
    if collected.count == 0:
        raise ValueError("images: the dataset is empty")
    result = collected.result(total)
    for metric in metrics:
        message = metric.undefined_warning(result.scores[metric.name])
        if message:
            warnings.warn(message, UserWarning, stacklevel=2)
    return result


def _dataset_batches(dataset, adapter, batch_size):
    """(images, targets, None, masks, other inputs) per batch of a Dataset: labels or top classes as targets."""
    names = [o.name for o in adapter.other_inputs]
    for batch in data.batches(dataset, batch_size, extra=names):
        images = as_image_batch(batch["image"], adapter.input_shape)
        context = adapter.check_inputs({name: batch[name] for name in names} or None, len(images))
        logits = adapter.predict_logits(images, batch_size, warn=False, context=context)
        adapter.require_logits(logits)
        ids = resolve_targets(batch.get("label"), len(images), logits.shape[1],
                              predicted=lambda logits=logits: logits.argmax(axis=1))
        yield images, ids, None, batch.get("mask"), context


class _Collected:
    """Per-batch scores and curves, joined into one `EvaluationResult` at the end (or at a failure)."""

    def __init__(self, metrics, targets=None):
        self.metrics = metrics
        self.known_targets = targets  # every image's target, when known before scoring (arrays)
        self.axes = {}  # each metric's curve axis, once the image size is known
        self.parts = []
        self.targets = []
        self.count = 0

    def add(self, part, targets):
        """``part``: {metric name: (scores (n,), {curve key: (n, K)})} of one batch."""
        self.parts.append(part)
        self.targets.append(np.asarray(targets, np.int32))
        self.count += len(targets)

    def result(self, total):
        """The images scored so far; with ``total``, NaN rows (not completed) pad it to ``total`` images."""
        size = self.count if total is None else total
        pad = size - self.count

        def joined(values, width=None):
            shape = (pad,) if width is None else (pad, width)
            return np.concatenate([np.asarray(v, np.float64) for v in values] + [np.full(shape, np.nan)])

        scores, curves = {}, {}
        for metric in self.metrics:
            name = metric.name
            scores[name] = joined([part[name][0] for part in self.parts])
            if metric.curve_keys:
                axis = self.axes.get(name, {})
                width = len(next(iter(axis.values()))) if axis else 0
                curves[name] = {**axis, **{key: joined([part[name][1][key] for part in self.parts], width)
                                           for key in metric.curve_keys}}
        if self.known_targets is not None:
            targets = self.known_targets
        else:
            targets = np.concatenate(self.targets + [np.full((pad,), -1, np.int32)]).astype(np.int32)
        completed = np.arange(size) < self.count
        return EvaluationResult(scores, curves, targets, completed, {m.name: m for m in self.metrics})
