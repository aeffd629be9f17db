"""`evaluate`: score saliency maps with RCAP, Deletion/Insertion AUC, log-cosh Dice and MAE."""
import collections.abc
import warnings

import numpy as np

from .api import Explainer, explainer_for
from .errors import PartialResultError
from .inputs import as_image_batch, as_map_batch, as_mask_batch, check_batch_size
from .loading import resolve_model
from .metrics import auc, segmentation
from .metrics.rcap import check_steps, rcap
from .metrics.reveal import RevealScorer, check_convention
from .model import ModelAdapter, Preprocessing
from .reuse import RecentCache
from .targets import resolve_targets

#: Every metric `evaluate` computes, with the direction that is better.
METRICS = {
    "rcap": "higher",
    "dauc": "lower",
    "iauc": "higher",
    "log_cosh_dice": "lower",
    "mae": "lower",
    "sqrt_mae": "lower",
}
_MASK_METRICS = ("log_cosh_dice", "mae", "sqrt_mae")
_ADAPTERS = RecentCache(8)
_SCORERS = RecentCache(8)


class EvaluationResult(collections.abc.Mapping):
    """Per-image scores of each metric, with curves, means and a table.

    ``result["rcap"]`` is the (N,) float64 array of per-image scores (NaN
    where a score is undefined or its image was not reached). ``curves`` holds
    each curve metric's x-axis and (N, K) values:
    ``curves["rcap"] = {"recovered", "probability", "saliency_ratio"}``,
    ``curves["dauc"] / curves["iauc"] = {"fraction", "probability"}``.
    ``targets`` are the class ids scored; ``completed`` marks the images done.
    """

    def __init__(self, scores, curves, targets, completed):
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

    def forget(self, rows):
        """Reset the scores and curves of ``rows`` to NaN (a batch that did not finish)."""
        for values in self.scores.values():
            values[rows] = np.nan
        for curve in self.curves.values():
            for key, values in curve.items():
                if np.ndim(values) == 2:
                    values[rows] = np.nan

    def undefined(self):
        """{metric: number of completed images whose score is undefined (NaN)}."""
        return {name: int(np.sum(np.isnan(s[self.completed]))) for name, s in self.scores.items()}

    def means(self):
        """{metric: dataset value} over the completed images with a defined score.

        DAUC and IAUC are the area under the dataset-mean curve (the
        reference's number; by linearity also the mean of per-image areas).
        """
        out = {}
        for name, values in self.scores.items():
            if name in ("dauc", "iauc"):
                curve = self.curves[name]
                rows = curve["probability"][self.completed]
                out[name] = float(auc.area(rows.mean(axis=0), curve["fraction"])) if len(rows) else float("nan")
                continue
            defined = values[self.completed & ~np.isnan(values)]
            out[name] = float(defined.mean()) if defined.size else float("nan")
        return out

    def table(self):
        """A plain-text table: metric, better direction, dataset value, images scored."""
        means, undefined = self.means(), self.undefined()
        done = int(self.completed.sum())
        lines = [f"{'metric':<14} {'better':<7} {'value':>8}  images", "-" * 40]
        for name in self.scores:
            note = f"{done - undefined[name]}" + (f" ({undefined[name]} undefined)" if undefined[name] else "")
            lines.append(f"{name:<14} {METRICS[name]:<7} {means[name]:>8.4f}  {note}")
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


def _check_metrics(metrics):
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(dict.fromkeys(metrics))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics: expected names from {list(METRICS)}, got {list(metrics)}")
    return metrics


def _black(preprocessing, channels):
    """Black (pixel value 0) in the model's input space; 0 when no preprocessing is known."""
    if preprocessing is None:
        return np.zeros((channels,), np.float32)
    if not isinstance(preprocessing, Preprocessing):
        raise TypeError(f"preprocessing: expected a tf_gag.Preprocessing, got {type(preprocessing).__name__}")
    return np.broadcast_to(preprocessing.to_model(0.0).numpy(), (channels,)).astype(np.float32)


def evaluate(model, images, maps_or_method="guided_absolute_grad", targets=None, masks=None,
             metrics=("rcap", "dauc", "iauc"), *, batch_size=32, preprocessing=None, convention="paper",
             lower_bound=50, interval=10, auc_schedule="percentile", auc_steps=10, pixels_per_step=None,
             deletion_fill="zero", blur_sigma=16.0, blur_kernel_size=33, seed=0, method_options=None,
             on_progress=None):
    """Score saliency maps of ``images`` with the paper's metrics.

    Args:
      model: as for `explain` (a Keras model, SavedModel, callable, `ModelAdapter`,
        or a path or zoo name for `load_model`).
      images: (N, H, W, C) in the model's input space.
      maps_or_method: (N, H, W) non-negative maps, a method name (the maps
        are explained here, ``batch_size`` images at a time, with ``seed``
        and ``method_options``), or an `Explainer`.
      targets: None (each image's top class), an int, N ints or one-hot rows.
      masks: (N, H, W) ground-truth object masks, for ``log_cosh_dice``
        (binary), ``mae`` and ``sqrt_mae`` (values in [0, 1]).
      metrics: names from ``METRICS``.
      batch_size: images per evaluation batch and most model calls at once.
      preprocessing: the pixel -> model-input mapping that defines black for
        RCAP (and deletion_fill="black"); defaults to the adapter's. When none
        is known, inputs are taken to be pixels and black is 0.
      convention: the tie rule at step thresholds (see `tf_gag.metrics.reveal`):
        ``"paper"`` (``M >= t``) or ``"reference"`` (``M > t``, the PyTorch
        reference's order statistic and its RCAP threshold clamp).
      lower_bound, interval: RCAP's percentages (paper: 50 and 10).
      auc_schedule: ``"percentile"`` (``auc_steps`` steps, reference: 10) or
        ``"rise"`` (``pixels_per_step`` pixels at a time; default one row).
      deletion_fill: what deleted pixels become: ``"zero"`` (0 in the model's
        input space, the dataset mean colour of a mean/std model; reference),
        ``"black"`` or ``"blur"`` (the insertion background).
      blur_sigma, blur_kernel_size: the insertion background's Gaussian blur
        (reference: 16 and 33 px, reflect padding).
      on_progress: called with the number of images finished after each batch.

    Returns an `EvaluationResult`. If a batch fails, the `PartialResultError`
    raised carries the result of the batches before it (``partial``,
    ``completed``). A map that sums to 0 has no RCAP: its score is NaN, a
    warning names it and the means leave it out.
    """
    metrics = _check_metrics(metrics)
    batch_size = check_batch_size(batch_size)
    model = resolve_model(model)
    check_convention(convention)
    recovered = check_steps(lower_bound, interval) if "rcap" in metrics else None
    if "dauc" in metrics or "iauc" in metrics:
        auc.check_schedule(auc_schedule, auc_steps, pixels_per_step)
        if deletion_fill not in auc.DELETION_FILLS:
            raise ValueError(f"deletion_fill: expected one of {list(auc.DELETION_FILLS)}, got {deletion_fill!r}")

    explainer = None
    if isinstance(maps_or_method, Explainer):
        explainer = maps_or_method
    elif isinstance(maps_or_method, str):
        explainer = explainer_for(model, maps_or_method, batch_size=batch_size, seed=seed, **(method_options or {}))
    if explainer is not None:
        adapter = explainer.adapter
    elif isinstance(model, ModelAdapter):
        adapter = model
    else:
        adapter = _ADAPTERS.get(model, {}, lambda: ModelAdapter(model))
    scorer = _SCORERS.get(adapter, {}, lambda: RevealScorer(adapter))

    images = as_image_batch(images, adapter.input_shape)
    n, height, width, channels = images.shape
    maps = None if explainer is not None else as_map_batch(maps_or_method, n, (height, width))
    mask_metrics = [m for m in metrics if m in _MASK_METRICS]
    if mask_metrics and masks is None:
        raise ValueError(f"masks: metrics {mask_metrics} compare maps with ground-truth masks; pass masks=")
    if masks is not None:
        masks = as_mask_batch(masks, n, (height, width), binary="log_cosh_dice" in metrics)
    if "iauc" in metrics or ("dauc" in metrics and deletion_fill == "blur"):
        auc.check_blur(blur_sigma, blur_kernel_size, height, width)
    logits = adapter.predict_logits(images, batch_size, warn=False)
    adapter.require_logits(logits)
    ids = resolve_targets(targets, n, logits.shape[1], predicted=lambda: logits.argmax(axis=1))
    black = _black(preprocessing or adapter.preprocessing, channels)

    x = None
    if "dauc" in metrics or "iauc" in metrics:
        x = auc.fractions(auc_schedule, auc_steps, pixels_per_step, height, width)
    scores = {m: np.full((n,), np.nan) for m in metrics}
    curves = {}
    if "rcap" in metrics:
        curves["rcap"] = {
            "recovered": recovered,
            "probability": np.full((n, len(recovered)), np.nan),
            "saliency_ratio": np.full((n, len(recovered)), np.nan),
        }
    for name in ("dauc", "iauc"):
        if name in metrics:
            curves[name] = {"fraction": x, "probability": np.full((n, len(x)), np.nan)}
    completed = np.zeros((n,), bool)
    result = EvaluationResult(scores, curves, ids, completed)

    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        try:
            group_maps = explainer.explain(images[rows], ids[rows]) if explainer is not None else maps[rows]
            _score_group(
                result, rows, scorer, images[rows], group_maps, ids[rows], None if masks is None else masks[rows],
                black=black, x=x, batch_size=batch_size, convention=convention, lower_bound=lower_bound,
                interval=interval, deletion_fill=deletion_fill, blur_sigma=blur_sigma,
                blur_kernel_size=blur_kernel_size,
            )
        except Exception as exc:
            result.forget(rows)
            raise PartialResultError(
                f"evaluate: the batch of images {start}..{rows.stop - 1} failed ({type(exc).__name__}: {exc}); "
                f"the {start} images before it are in .partial",
                partial=result,
                completed=completed.copy(),
            ) from exc
        completed[rows] = True
        if on_progress is not None:
            on_progress(rows.stop - start)

    if "rcap" in metrics:
        empty = np.nonzero(np.isnan(scores["rcap"]))[0].tolist()
        if empty:
            warnings.warn(
                f"maps: the maps of image(s) {empty} sum to 0, so their RCAP is undefined (NaN); "
                "the means leave them out",
                UserWarning,
                stacklevel=2,
            )
    return result


def _score_group(result, rows, scorer, images, maps, targets, masks, *, black, x, batch_size, convention,
                 lower_bound, interval, deletion_fill, blur_sigma, blur_kernel_size):
    """Score one batch of images, writing into ``result`` at ``rows``."""
    scores, curves = result.scores, result.curves
    common = {"convention": convention, "batch_size": batch_size}
    if "rcap" in scores:
        out = rcap(scorer, images, maps, targets, black, lower_bound=lower_bound, interval=interval, **common)
        scores["rcap"][rows] = out["rcap"]
        curves["rcap"]["probability"][rows] = out["probability"]
        curves["rcap"]["saliency_ratio"][rows] = out["saliency_ratio"]
    background = None
    if "iauc" in scores or ("dauc" in scores and deletion_fill == "blur"):
        background = auc.blurred(images, blur_sigma, blur_kernel_size)
    if "dauc" in scores:
        fill = {"zero": np.zeros_like(black), "black": black, "blur": background}[deletion_fill]
        probability = auc.curves(scorer, fill, images, maps, targets, x, **common)
        curves["dauc"]["probability"][rows] = probability
        scores["dauc"][rows] = auc.area(probability, x)
    if "iauc" in scores:
        probability = auc.curves(scorer, images, background, maps, targets, x, **common)
        curves["iauc"]["probability"][rows] = probability
        scores["iauc"][rows] = auc.area(probability, x)
    for name in _MASK_METRICS:
        if name in scores:
            scores[name][rows] = getattr(segmentation, name)(maps, masks)
