"""`evaluate`: score saliency maps with metric objects (RCAP, Deletion/Insertion AUC, log-cosh Dice, MAE).

Three parts, in the order data flows: a batch source (`sources`: arrays cut
into batches, or a Dataset read batch by batch), the scoring of one batch
(`scoring`: maps explained when a method was given, every metric run) and a
collector (`result.Scores` -> `EvaluationResult`). `tf_gag.io.collect.run_batches`
joins them, the loop `explain` also runs on a Dataset, and keeps every
finished batch when one fails.
"""
import warnings
from typing import Any, Dict, Optional, Sequence, Union

from ..api import Explainer, explainer_for
from ..distribute import check_strategy
from ..io import data
from ..io.collect import run_batches
from ..io.inputs import as_image_batch, as_map_batch, as_mask_batch, check_batch_size, check_seed
from ..io.targets import resolve_targets
from ..io.types import ImagesLike, ModelLike, OtherInputs, PrecisionLike, Progress, TargetsLike
from ..methods.method import Method
from ..metrics import named
from ..metrics.reveal import RevealScorer
from ..model import ModelAdapter, Preprocessing, resolve_model
from ..model.precision import check_device, check_precision
from ..reuse import RecentCache
from .result import EvaluationResult, Scores
from .scoring import Scoring
from .sources import array_batches, dataset_batches

_ADAPTERS = RecentCache(8)
_SCORERS = RecentCache(8)


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


def evaluate(model: ModelLike, images: ImagesLike, maps_or_method: Any = "guided_absolute_grad",
             targets: TargetsLike = None, masks: Optional[ImagesLike] = None,
             metrics: Union[str, Any, Sequence[Any]] = ("rcap", "dauc", "iauc"), *, inputs: OtherInputs = None,
             batch_size: int = 32, preprocessing: Optional[Preprocessing] = None, seed: int = 0,
             method_options: Optional[Dict[str, Any]] = None, strategy: Optional[Any] = None,
             precision: PrecisionLike = None, on_progress: Progress = None, **moved: Any) -> EvaluationResult:
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
      precision: the type the model computes in, for the maps and the
        metrics' model calls: ``"float32"``, ``"bfloat16"`` or ``"float16"``
        (`tf_gag.Explainer`); None (default): an Explainer's, else float32.
        The metrics' own arithmetic (probabilities, curves, areas) is float32.
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

    explainer = None
    if isinstance(maps_or_method, Explainer):
        explainer = maps_or_method
        if precision is not None and check_precision(precision) != explainer.adapter.precision:
            raise ValueError(f"precision: the Explainer's model computes in {explainer.adapter.precision}; pass "
                             f"precision=None (or {explainer.adapter.precision!r}), or an Explainer made with "
                             f"precision={precision!r}")
    elif by_method:
        explainer = explainer_for(model, maps_or_method, batch_size=batch_size, seed=seed, strategy=strategy,
                                  precision=precision, **(method_options or {}))
    if explainer is not None:
        adapter = explainer.adapter
    else:
        adapter = model if isinstance(model, ModelAdapter) else _ADAPTERS.get(model, {}, lambda: ModelAdapter(model))
        if precision is not None:
            check_device(check_precision(precision), strategy.extended.worker_devices if strategy else None)
            adapter = adapter.in_precision(precision)
    scorer = _SCORERS.get(adapter, {"strategy": strategy}, lambda: RevealScorer(adapter, strategy))

    streamed = data.is_dataset(images)
    if streamed:
        if explainer is None:
            raise ValueError("maps_or_method: a tf.data.Dataset is explained batch by batch; pass a method name "
                             "or an Explainer, not precomputed maps")
        if targets is not None or masks is not None:
            raise ValueError("targets, masks: with a tf.data.Dataset they come from its (image, label, mask) "
                             "elements; pass targets=None and masks=None")
        if inputs is not None:
            raise ValueError("inputs: with a tf.data.Dataset the other inputs are keys of its dict elements, named "
                             "as the model's inputs; pass inputs=None")
        source, scores = dataset_batches(images, adapter, batch_size), Scores(metrics)
    else:
        images = as_image_batch(images, adapter.input_shape)
        n = len(images)
        context = adapter.check_inputs(inputs, n)
        maps = None if explainer is not None else as_map_batch(maps_or_method, n, images.shape[1:3])
        if mask_metrics and masks is None:
            raise ValueError(f"masks: metrics {mask_metrics} compare maps with ground-truth masks; pass masks=")
        if masks is not None:
            masks = as_mask_batch(masks, n, images.shape[1:3], binary=any(m.binary_masks for m in metrics))
        # Top classes need every image's logits; explicit targets only the class count and the logits check.
        probe = slice(None) if targets is None else slice(0, 1)
        logits = adapter.predict_logits(images[probe], batch_size, warn=False, context=tuple(c[probe] for c in context))
        adapter.require_logits(logits)
        ids = resolve_targets(targets, n, logits.shape[1], predicted=lambda: logits.argmax(axis=1))
        source, scores = array_batches(images, ids, maps, masks, context, batch_size), Scores(metrics, ids, n)
    scoring = Scoring(metrics, scorer, explainer, adapter, preprocessing, batch_size, scores,
                      masks_checked=not streamed)
    run_batches(source, scoring, scores, "evaluate", size=lambda batch: len(batch.images), on_progress=on_progress)
    if scores.count == 0:
        raise ValueError("images: the dataset is empty")
    result = scores.result()
    for metric in metrics:
        message = metric.undefined_warning(result.scores[metric.name])
        if message:
            warnings.warn(message, UserWarning, stacklevel=2)
    return result
