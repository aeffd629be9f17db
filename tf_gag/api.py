"""The public entry points: `Explainer`, one class per method, `explain`, `list_methods`."""

from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np
import tensorflow as tf

from . import ops
from .distribute import check_strategy
from .io import data
from .io.checks import rows_where
from .io.collect import Collector, run_batches
from .io.inputs import as_image_batch, check_batch_size, check_seed
from .io.targets import resolve_targets
from .io.types import ImagesLike, MethodLike, ModelLike, OtherInputs, PrecisionLike, Progress, TargetsLike
from .methods.engine import Engine
from .methods.registry import REGISTRY, build_parts, describe, option_defaults, resolve_method
from .methods.reversed import check_reverse, reverse_maps
from .model import ModelAdapter, resolve_model
from .model.precision import check_device, check_precision
from .reuse import RecentCache


def _check_reverse(reverse):
    if reverse is None:
        return None
    if not isinstance(reverse, (tuple, list)) or len(reverse) != 2:
        raise ValueError(f"reverse: expected (top, swap) fractions such as (0.07, 0.10), got {reverse!r}")
    return check_reverse(*reverse)


class Explainer:
    """A saliency method bound to a model, for repeated use.

    Args:
      model: a Keras model, a loaded SavedModel, a callable returning logits,
        a `ModelAdapter` (see `tf_gag.ModelAdapter`), or a path or zoo name
        for `tf_gag.load_model` (``"model.onnx"``, ``"efficientnet_lite0"``).
      method: a name or alias from `list_methods()`, or a `tf_gag.Method`
        composed of parts; the per-method subclasses (`GuidedAbsoluteGrad`,
        `SmoothGrad`, ...) fix it.
      batch_size: the most forward+backward passes in one call, counted over
        images x samples (a GAG map with n = 20 is 20 passes).
      seed: seeds the noise and random baselines. An image's map depends on
        the image, its target, the options and the seed only.
      variant: the paper's gradient-processing ablation, one of ``"+"``,
        ``"-"``, ``"A"``, ``"G"``, ``"GA"`` (SmoothGrad, IG, Guided IG,
        BlurIG, Guided Backprop, Rectified Gradients and its no-bias version).
      reverse: ``(top, swap)`` fractions: return the reversed ("misplaced")
        map of Proposition 1 (see `tf_gag.reverse_maps`).
      strategy: a `tf.distribute.Strategy`: each replica explains whole
        groups of ``batch_size`` images, in the chunks one device runs, and
        the maps are gathered back in order; they are bit-identical to the
        single-device maps (`tf_gag.distribute`).
        Methods whose steps are chosen on the host (Guided IG, GGIG with
        ``ascent_steps`` > 0) cannot be distributed.
      precision: the type the model computes in: ``"float32"``,
        ``"bfloat16"`` or ``"float16"``; None (default): the adapter's, float32
        for a model (a copy of a Keras or imported model;
        images, gradients and everything after them stay float32; see
        `tf_gag.model.precision` and the README for when it is safe and faster).
      **options: the method's options; `list_methods()` shows each method's
        options and defaults.

    ``images`` may be an array or a `tf.data.Dataset` (see `tf_gag.io.data`),
    streamed ``batch_size`` images at a time.
    """

    method = None

    def __init__(self, model: ModelLike, method: MethodLike = None, *, batch_size: int = 32, seed: int = 0,
                 variant: Optional[str] = None, reverse: Optional[Tuple[float, float]] = None,
                 strategy: Optional[tf.distribute.Strategy] = None, precision: PrecisionLike = None, **options: Any):
        method = method if method is not None else self.method
        if method is None:
            raise ValueError("method: expected a method name or a tf_gag.Method; see tf_gag.list_methods()")
        #: The method's registered name ("composed" for an unregistered `Method`) and its `Method`.
        self.name, self.composition = resolve_method(method)
        model = resolve_model(model)
        adapter = model if isinstance(model, ModelAdapter) else ModelAdapter(model)
        self.strategy = check_strategy(strategy)
        precision = adapter.precision if precision is None else check_precision(precision)
        check_device(precision, self.strategy.extended.worker_devices if self.strategy else None)
        #: The model as explained: in ``precision`` (`ModelAdapter.in_precision`).
        self.adapter = adapter.in_precision(precision)
        self.batch_size = check_batch_size(batch_size)
        self.seed = check_seed(seed)
        self.variant = variant
        self.reverse = _check_reverse(reverse)
        defaults = option_defaults(self.composition, variant, self.name)
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(
                f"options: {self.name} does not take {unknown}; its options are {sorted(defaults)}"
            )
        self.options = {**defaults, **options}
        black = None
        if self.adapter.preprocessing is not None:
            black = self.adapter.preprocessing.to_model(0.0).numpy()
        self.parts = build_parts(self.composition, variant, self.options, black, self.name)
        if precision != "float32" and not self.parts.rule.reduced_precision:
            raise ValueError(f"precision: {self.name} ({self.parts.rule.name}) runs its relevance rules in float32 "
                             f"only, on a float32 model; use precision='float32' for it, not {precision!r}")
        self._engine = Engine(self.adapter, self.parts)
        if strategy is not None and self.adapter.other_inputs:
            raise ValueError("strategy: a model with inputs besides the image runs on one device; pass strategy=None")
        if strategy is not None and not self.runs_in_graph:
            raise ValueError(
                f"strategy: {self.name} chooses each step from the previous gradients on the host and "
                "cannot be split across replicas; use another method or strategy=None"
            )

    def __repr__(self):
        parts = ", ".join(f"{slot}={part['class']}" for slot, part in self.parts.describe().items())
        return f"Explainer({self.name}: {parts})"

    @property
    def passes_per_image(self):
        """Forward+backward passes one image costs (samples x steps x ascent; 1 for Grad-CAM): for progress bars."""
        return self.parts.modification.n_jobs * self.parts.modification.passes_per_job

    @property
    def runs_in_graph(self):
        """Whether the whole method can run inside one TF graph (not when steps are chosen on the host)."""
        return self._engine.runs_in_graph

    def tracing_counts(self):
        """{image shape: times the method's compiled step was traced} (1 each: one trace per image size)."""
        return self._engine.tracing_counts()

    def graph_attributions(self, image_shape):
        """(images, targets) -> raw attributions as TF ops, for serving graphs: the chunks `attributions` runs."""
        return self._engine.graph_attributions(tuple(image_shape), self.seed, self.batch_size)

    def _prepare(self, images, targets, inputs=None):
        images = as_image_batch(images, self.adapter.input_shape)
        context = self.adapter.check_inputs(inputs, len(images))
        # Top classes need every image's logits; explicit targets only the class count (two images, so a model
        # whose rows do not follow the batch is caught here, not inside a gradient chunk).
        probe = slice(None) if targets is None else slice(0, 2)
        logits = self.adapter.predict_logits(images[probe], self.batch_size, context=tuple(c[probe] for c in context))
        ids = resolve_targets(targets, len(images), logits.shape[1], predicted=lambda: logits.argmax(axis=1))
        return images, ids, context

    def attributions(self, images: ImagesLike, targets: TargetsLike = None, *, inputs: OtherInputs = None,
                     on_progress: Progress = None) -> np.ndarray:
        """Raw, unreduced attributions: float32 (N, H, W, C); Grad-CAM gives (N, H, W, 1).

        ``inputs``: a multi-input model's other inputs, one row per image
        (`ModelAdapter.check_inputs`); they are held fixed while the image is
        perturbed. ``on_progress(k)`` is called after every chunk with the
        number of forward+backward passes it ran. If a chunk fails, the
        `PartialResultError` raised holds the attributions of the images
        already finished (``partial``, ``completed``). NaN or Inf never
        reaches the result: model outputs that are not finite raise a
        `ModelOutputError` naming the images, NaN or Inf attributions of
        finite outputs a ValueError naming the images and the gradients.
        """
        return self._attributions(*self._prepare(images, targets, inputs), on_progress)

    def _attributions(self, images, ids, context, on_progress):
        result = self._engine.attributions(
            images, ids, batch_size=self.batch_size, seed=self.seed, strategy=self.strategy, on_progress=on_progress,
            context=context,
        )
        self._require_finite(result, images, context)
        return result

    def _require_finite(self, result, images, context):
        """Raise if attributions hold NaN or Inf, naming the images, rather than return NaN maps.

        Only then are the model's outputs computed for every image: NaN or Inf
        there raises `ModelOutputError` (`ModelAdapter.predict_logits`);
        finite outputs leave the gradients, or the outputs on the inputs the
        method derives from the images (noisy copies, path points), to blame.
        """
        bad = rows_where(~np.isfinite(result))
        if not bad:
            return
        self.adapter.predict_logits(images, self.batch_size, warn=False, context=context)
        hint = ("; in float16 a gradient above 65504 / its scale overflows: use precision='bfloat16'"
                if self.adapter.precision == "float16" else "")
        raise ValueError(
            f"model: expected finite gradients, got NaN or Inf attributions for image(s) {bad}; its outputs on the "
            f"images are finite, so its gradients are not, or its outputs on the inputs {self.name} derives "
            f"from them (noisy copies, path points) are not{hint}"
        )

    def explain(self, images: ImagesLike, targets: TargetsLike = None, *, inputs: OtherInputs = None,
                on_progress: Progress = None) -> np.ndarray:
        """Saliency maps: float32 (N, H, W), each min-max normalised to [0, 1].

        The method's post-fold stage turns attributions into one value per
        pixel (every built-in method sums absolute values over channels); a
        constant map becomes all zeros. ``images`` may be a `tf.data.Dataset`: its labels
        (if any) are the targets, and it is streamed batch by batch.
        ``inputs`` as for `attributions`.
        """
        if data.is_dataset(images):
            if inputs is not None:
                raise ValueError("inputs: with a tf.data.Dataset the other inputs are keys of its dict elements, "
                                 "named as the model's inputs; pass inputs=None")
            return self._explain_dataset(images, targets, on_progress)
        return self._maps(*self._prepare(images, targets, inputs), on_progress)

    def _maps(self, images, ids, context, on_progress):
        attributions = self._attributions(images, ids, context, on_progress)
        maps = ops.normalize_maps(self.parts.post(attributions, images))
        if self.reverse is not None:
            maps = reverse_maps(maps, *self.reverse)
        return maps.numpy().astype(np.float32)

    def explain_batches(self, dataset: tf.data.Dataset, *, on_progress: Progress = None
                        ) -> Iterator[Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]]:
        """Yield ``(maps, targets, batch)`` for each batch of a `tf.data.Dataset`, holding one batch at a time.

        ``batch`` is the {"image", "label"?, "mask"?} numpy batch the maps
        belong to (plus a multi-input model's other inputs, by name); targets
        are its labels, or the top classes without labels.
        """
        for batch in data.batches(dataset, self.batch_size, extra=[o.name for o in self.adapter.other_inputs]):
            maps, ids = self._batch_maps(batch, on_progress)
            yield maps, ids, batch

    def _batch_maps(self, batch, on_progress):
        """(maps, targets) of one Dataset batch: its labels (or top classes) and its other inputs by name."""
        inputs = {o.name: batch[o.name] for o in self.adapter.other_inputs} or None
        images, ids, context = self._prepare(batch["image"], batch.get("label"), inputs)
        return self._maps(images, ids, context, on_progress), ids

    def _explain_dataset(self, dataset, targets, on_progress):
        if targets is not None:
            raise ValueError("targets: with a tf.data.Dataset the targets are its labels; pass targets=None")
        batches = data.batches(dataset, self.batch_size, extra=[o.name for o in self.adapter.other_inputs])
        maps = run_batches(batches, lambda batch: self._batch_maps(batch, on_progress)[0], _Maps(), "explain",
                           size=lambda batch: len(batch["image"]))
        if not maps.count:
            raise ValueError("images: the dataset is empty")
        return maps.partial()[0]


class _Maps(Collector):
    """The maps of a Dataset's batches, in order."""

    def __init__(self):
        self.done = []

    def add(self, output, batch):
        self.done.append(output)
        self.count += len(output)

    def partial(self):
        maps = np.concatenate(self.done) if self.done else np.zeros((0,), np.float32)
        return maps, np.ones(len(maps), bool)


def _method_class(entry):
    """The public class of a built-in registry `Entry`: an `Explainer` with the method fixed."""
    doc = (
        f"{entry.method.summary}. ``{entry.class_name}(model, **options).explain(images, targets)``; "
        f"see `Explainer` for the common arguments. Options and defaults: {option_defaults(entry.method)}."
    )
    return type(entry.class_name, (Explainer,), {"method": entry.name, "__doc__": doc, "__module__": __name__})


#: {class name: class} of every built-in method, from the registry (`tf_gag.methods.presets.BUILTIN`).
METHOD_CLASSES = {e.class_name: _method_class(e) for e in REGISTRY.entries() if e.class_name}
globals().update(METHOD_CLASSES)


_EXPLAINERS = RecentCache(8)


def explainer_for(model, method, **settings):
    """An `Explainer`, reused across calls with the same model, method and settings.

    Reuse keeps its compiled graphs, so repeated one-line `explain` calls do
    not trace again; the 8 most recently used explainers are kept.
    """
    model = resolve_model(model)
    return _EXPLAINERS.get(model, {"method": method, **settings}, lambda: Explainer(model, method, **settings))


def explain(model: ModelLike, images: ImagesLike, method: MethodLike = "guided_absolute_grad",
            targets: TargetsLike = None, *, inputs: OtherInputs = None, batch_size: int = 32, seed: int = 0,
            variant: Optional[str] = None, reverse: Optional[Tuple[float, float]] = None,
            strategy: Optional[tf.distribute.Strategy] = None, precision: PrecisionLike = None,
            **method_options: Any) -> np.ndarray:
    """Saliency maps for a batch of images in one call.

    Returns float32 (N, H, W) maps in [0, 1]. ``images`` is an (N, H, W, C)
    array or tensor in the model's input space (what ``model.predict`` takes),
    one (H, W, C) image, or a `tf.data.Dataset` of images[, labels[, masks]]
    streamed ``batch_size`` images at a time (its labels are the targets).
    ``targets``: None (each image's top class), an int, N ints, or
    (N, classes) one-hot. ``inputs``: the other inputs of a multi-input
    Keras model, one row per image ({name: array}; the image input is its
    only 4-D one, or ``ModelAdapter(model, image_input=...)``); they are held
    fixed while the image is explained. ``strategy``: a
    `tf.distribute.Strategy` to split each batch across. ``precision``: the
    type the model computes in ("float32", "bfloat16", "float16"). See
    `Explainer` for the rest.
    """
    explainer = explainer_for(
        model, method, batch_size=batch_size, seed=seed, variant=variant, reverse=reverse, strategy=strategy,
        precision=precision, **method_options
    )
    return explainer.explain(images, targets, inputs=inputs)


def attributions(model: ModelLike, images: ImagesLike, method: MethodLike = "guided_absolute_grad",
                 targets: TargetsLike = None, *, inputs: OtherInputs = None, batch_size: int = 32, seed: int = 0,
                 variant: Optional[str] = None, precision: PrecisionLike = None, **method_options: Any) -> np.ndarray:
    """Raw (N, H, W, C) attributions, before channel reduction and normalisation (``inputs``, ``precision`` as
    for `explain`)."""
    explainer = explainer_for(model, method, batch_size=batch_size, seed=seed, variant=variant, precision=precision,
                              **method_options)
    return explainer.attributions(images, targets, inputs=inputs)


def list_methods() -> Dict[str, Dict[str, Any]]:
    """{method name: {"aliases", "summary", "parts", "options" (defaults), "variants"}} for every registered method.

    ``parts`` names the part in each filled slot (source, rule,
    modification, interpretation, fold, cam, post); ``options`` are theirs,
    with defaults. Methods added with `tf_gag.register_method` are listed too.
    """
    return {entry.name: describe(entry) for entry in REGISTRY.entries()}
