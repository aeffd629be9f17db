"""The sanity checks: model randomization (Adebayo et al. 2018) and model perturbation (Rahman et al., GGIG).

Both change the weights of a *copy* of the model (`tf_gag.model.copies`),
explain the same images for the same classes (the original model's top
classes, or ``targets``) with each method, and measure how similar each map
stays to the original model's map (`tf_gag.sanity.similarity`).

* Randomization: a method whose maps survive re-drawing the weights is not
  explaining the model. ``cascading`` re-draws the layers from the top down,
  one more per step; ``independent`` re-draws one layer per step, the others
  original.
* Perturbation: small weight noise that leaves every prediction unchanged
  should leave a faithful explanation nearly unchanged.

How weights are re-drawn (the library's choice, the same for Keras and
imported models, whose initializers are not known): each learned weight
tensor (not a normalisation layer's running statistics) gets values from a
normal distribution with the tensor's own mean and standard deviation,
truncated at two standard deviations. That keeps activations in range (no
maps that vanish only because a layer's scale collapsed) while destroying
what was learned. Perturbation adds normal noise of ``level`` times each
tensor's standard deviation.
"""
import numbers
import warnings
from typing import Any, Sequence, Union

import numpy as np
import tensorflow as tf

from .. import ops
from ..api import Explainer
from ..errors import PartialResultError
from ..io.checks import check_flag, check_number, check_selection
from ..io.inputs import as_image_batch, check_batch_size, check_seed
from ..io.targets import resolve_targets
from ..io.types import ImagesLike, ModelLike, OtherInputs, TargetsLike
from ..methods.method import Method
from ..methods.registry import UNREGISTERED, resolve_method
from ..model import ModelAdapter
from ..model.copies import weight_copy
from ..model.loading import resolve_model
from .result import SanityResult
from .similarity import SIMILARITIES, constant_maps, similarities

#: Methods compared when none are named: Adebayo et al.'s and the paper's.
DEFAULT_METHODS = (
    "vanilla_gradient", "integrated_gradients", "smoothgrad", "guided_backprop", "grad_cam",
    "guided_absolute_grad", "rectified_gradients", "geometrically_guided_ig",
)
#: Relative weight-noise levels the perturbation check uses by default.
DEFAULT_NOISE = (0.001, 0.002, 0.005)
#: How far logits of the copy may differ from the model's before any change (float32 reorderings only).
_COPY_TOLERANCE = 1e-4


def _methods(methods):
    """[(label, method, options)] from method names, `tf_gag.Method` s and (name or Method, {options}) pairs.

    A method's label is its name as given; a `Method` is labelled by its
    registered name, or by its position when it is not registered
    (``"composed 2"``).
    """
    out = []
    what = "method names or tf_gag.Method s, or (method, {options}) pairs"
    for k, spec in enumerate(check_selection("methods", methods, what)):
        method, options = spec if isinstance(spec, tuple) and len(spec) == 2 else (spec, {})
        if not isinstance(method, (str, Method)) or not isinstance(options, dict):
            raise ValueError(f"methods: expected a method name, a tf_gag.Method or a (method, {{options}}) pair, "
                             f"got {spec!r}")
        label = method if isinstance(method, str) else resolve_method(method).name
        out.append((f"{UNREGISTERED} {k}" if label == UNREGISTERED else label, method, dict(options)))
    labels = [label for label, _, _ in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"methods: each method once, got {labels}")
    return out


class _Run:
    """A copy of the model, the original weights, explainers on the copy and the original attributions."""

    def __init__(self, model, images, methods, targets, batch_size, seed, inputs):
        specs = _methods(methods)
        model = resolve_model(model)
        self.adapter = model if isinstance(model, ModelAdapter) else ModelAdapter(model)
        self.batch_size, self.seed = check_batch_size(batch_size), check_seed(seed)
        self.images = as_image_batch(images, self.adapter.input_shape)
        self.context = self.adapter.check_inputs(inputs, len(self.images))
        self.inputs = {o.name: c for o, c in zip(self.adapter.other_inputs, self.context)} or None
        self.copy, self.layers = weight_copy(self.adapter)
        self.original = [[v.numpy() for v in layer.variables] for layer in self.layers]
        logits = self.predict(self.adapter, warn=True)
        copied = self.predict(self.copy)
        error = float(np.abs(copied - logits).max() / max(np.abs(logits).max(), 1e-6))
        if error > _COPY_TOLERANCE:
            raise ValueError(
                f"model: its copy computes other logits (relative difference {error:.1e}); it holds state that "
                "is not in its weights, so its weights cannot be copied faithfully for the sanity checks"
            )
        self.predicted = logits.argmax(axis=1)
        self.targets = resolve_targets(targets, len(self.images), logits.shape[1], predicted=lambda: self.predicted)
        self.probabilities = self.explained_probability(logits)
        self.explainers = {
            label: Explainer(self.copy, method, batch_size=self.batch_size, seed=self.seed, **options)
            for label, method, options in specs
        }
        self.reference = {label: self._attributions(e) for label, e in self.explainers.items()}
        #: {method: (N,) bool}: the original model's constant maps; their similarities are undefined (NaN).
        self.blank = {label: constant_maps(ops.reduce_channels(ref)).numpy() for label, ref in self.reference.items()}

    def explained_probability(self, logits):
        """(N,) probability of each image's explained class, from (N, classes) outputs."""
        probabilities = self.adapter.probabilities(tf.constant(logits)).numpy()
        return probabilities[np.arange(len(probabilities)), self.targets]

    def _attributions(self, explainer):
        return explainer.attributions(self.images, self.targets, inputs=self.inputs)

    def predict(self, adapter, warn=False):
        """(N, classes) logits of ``adapter`` (the model or its copy) for the images and their other inputs."""
        return adapter.predict_logits(self.images, self.batch_size, warn=warn, context=self.context)

    def assign(self, index, values):
        for variable, value, original in zip(self.layers[index].variables, values, self.original[index]):
            variable.assign(value.astype(original.dtype))

    def redrawn(self, index):
        """Layer ``index``'s weights re-drawn (seeded by the layer, so both randomization modes agree)."""
        rng = np.random.default_rng([self.seed, index])
        out = []
        for value in self.original[index]:
            mean, std = float(value.mean()), float(value.std())
            draw = rng.standard_normal(value.shape)
            while np.any(np.abs(draw) > 2):  # truncated at two standard deviations
                outside = np.abs(draw) > 2
                draw[outside] = rng.standard_normal(int(outside.sum()))
            out.append(mean + std * draw)
        return out

    def perturbed(self, index, level):
        """Layer ``index``'s weights plus ``level`` x std noise: one seeded direction per layer, scaled by level."""
        rng = np.random.default_rng([self.seed, index, 1])
        return [value + level * float(value.std()) * rng.standard_normal(value.shape) for value in self.original[index]]

    def measure(self, check, steps, change):
        """Run ``change(k)`` before each step k and measure every method; keep what finished if a step fails."""
        labels = list(self.explainers)
        n = len(self.images)
        scores = {m: {label: np.full((len(steps), n), np.nan) for label in labels} for m in SIMILARITIES}
        constant = {label: np.zeros((len(steps), n), bool) for label in labels}
        result = SanityResult(check, list(steps), labels, scores, self.targets, constant)
        done = np.zeros(len(steps), bool)
        for k in range(len(steps)):
            try:
                change(k)
                for label, explainer in self.explainers.items():
                    changed = self._attributions(explainer)
                    for measure, values in similarities(self.reference[label], changed).items():
                        scores[measure][label][k] = np.where(self.blank[label], np.nan, values)
                    constant[label][k] = constant_maps(ops.reduce_channels(changed)).numpy()
            except Exception as exc:
                raise PartialResultError(
                    f"{check} check failed at step {k} ({steps[k]}) of {len(steps)}: {type(exc).__name__}: {exc}",
                    result, done,
                ) from exc
            done[k] = True
        if any(blank.any() for blank in self.blank.values()):
            warnings.warn(
                f"{check}: the original model's map is constant (nothing to compare; NaN, left out of the means) "
                "for " + ", ".join(f"{label} on image(s) {np.flatnonzero(blank).tolist()}"
                                   for label, blank in self.blank.items() if blank.any()),
                UserWarning, stacklevel=3,
            )
        flat = [(label, k) for label in labels for k in range(len(steps))
                if (constant[label][k] & ~self.blank[label]).any()]
        if flat:
            warnings.warn(
                f"{check}: some changed models gave constant maps (their Spearman correlations are 0): "
                + ", ".join(f"{label} at {steps[k]}" for label, k in flat[:8]) + ("" if len(flat) <= 8 else ", ..."),
                UserWarning, stacklevel=3,
            )
        return result


def _chosen_layers(run, layers):
    """Indices into ``run.layers``, top (last) first."""
    names = [layer.name for layer in run.layers]
    count = len(names)
    if layers is None:
        return list(range(count - 1, -1, -1))
    if isinstance(layers, numbers.Integral) and not isinstance(layers, bool):
        if not 1 <= layers <= count:
            raise ValueError(f"layers: expected between 1 and {count} (the model's weighted layers), got {layers}")
        return sorted({int(round(i)) for i in np.linspace(count - 1, 0, int(layers))}, reverse=True)
    if isinstance(layers, str) or not hasattr(layers, "__iter__"):
        raise ValueError(f"layers: expected None, a number of layers or a list of layer names, got {layers!r}")
    chosen = []
    for name in check_selection("layers", layers, "layer names or paths"):
        found = [i for i, full in enumerate(names) if name in (full, full.rsplit("/", 1)[-1])]
        if len(found) != 1:
            shown = ", ".join(names[:6] + ["..."] + names[-6:]) if count > 12 else ", ".join(names)
            problem = "no weighted layer" if not found else "more than one weighted layer"
            raise ValueError(f"layers: {problem} named {name!r}; the weighted layers are {shown}")
        chosen.append(found[0])
    return sorted(set(chosen), reverse=True)


def randomization(model: ModelLike, images: ImagesLike, methods: Sequence[Any] = DEFAULT_METHODS, *,
                  cascading: bool = True, layers: Union[None, int, Sequence[str]] = None,
                  targets: TargetsLike = None, inputs: OtherInputs = None, batch_size: int = 32,
                  seed: int = 0) -> SanityResult:
    """Model randomization: how similar each method's maps stay as the model's weights are re-drawn.

    Args:
      model: a Keras model, a model imported with `tf_gag.load_model`, a
        `ModelAdapter` of either, or a path / zoo name. It is never modified.
      images: (N, H, W, C) images in the model's input space.
      methods: method names, `tf_gag.Method` s, or (method, {options}) pairs (see
        `tf_gag.list_methods`); default `DEFAULT_METHODS`.
      cascading: True re-draws the layers from the top down, step k having
        the top k + 1 chosen layers (and all layers between them) re-drawn;
        False re-draws only the step's layer (independent randomization).
      layers: which weighted layers are steps: None (every one), a number
        (that many spread evenly from the top to the first layer), or layer
        names or paths ('mobilenetv2_1.00_160/Conv1'). A weighted layer is a
        Keras leaf layer with weights, or an imported model's convolution or
        matrix multiply with its bias.
      targets: the classes explained (default: the original model's top
        classes), the same at every step.
      inputs: a multi-input Keras model's other inputs, as for `tf_gag.explain`.
      batch_size, seed: as for `tf_gag.explain`; the re-drawn weights are
        seeded by ``seed`` and the layer.

    Returns a `SanityResult` (``check`` "cascading" or "independent"). If a
    step fails, the `PartialResultError` holds the result with the finished
    steps (``completed`` marks them).
    """
    cascading = check_flag("cascading", cascading)
    run = _Run(model, images, methods, targets, batch_size, seed, inputs)
    chosen = _chosen_layers(run, layers)
    steps = [run.layers[i].name for i in chosen]

    def cascade(k):
        upper = chosen[k - 1] if k else len(run.layers)
        for index in range(chosen[k], upper):
            run.assign(index, run.redrawn(index))

    def independent(k):
        if k:
            run.assign(chosen[k - 1], run.original[chosen[k - 1]])
        run.assign(chosen[k], run.redrawn(chosen[k]))

    return run.measure("cascading" if cascading else "independent", steps, cascade if cascading else independent)


def check_noise(noise, name="noise"):
    """The relative noise levels as floats: one level or a list of them, each a finite number > 0.

    ``name``: how the caller calls the argument (the command line's ``--noise``).
    """
    levels = [noise] if isinstance(noise, numbers.Number) else check_selection(name, noise, "relative noise levels")
    return [check_number(name, level, 0, low_open=True, what="a finite relative noise level",
                         note=" (e.g. 0.01)")
            for level in levels]


def perturbation(model: ModelLike, images: ImagesLike, methods: Sequence[Any] = DEFAULT_METHODS, *,
                 noise: Sequence[float] = DEFAULT_NOISE, targets: TargetsLike = None, inputs: OtherInputs = None,
                 batch_size: int = 32, seed: int = 0) -> SanityResult:
    """Model perturbation: how similar each method's maps stay under weight noise that keeps the predictions.

    Every learned weight tensor w gets ``level * std(w) * e`` at each level of
    ``noise``, with e ~ N(0, 1) drawn once per layer (seeded by ``seed`` and the
    layer): the levels scale one noise direction, so a level's result does not
    depend on which other levels are listed. Before any map is computed, each level is
    checked to keep every image's predicted class (the top-1 class of the
    perturbed copy equals the model's); a level that changes one raises a
    ValueError naming the level and the images, so results are never
    reported for a model that decides differently. The largest change of an
    explained class's probability per level is in ``prediction_change``.
    Other arguments as for `randomization`.
    """
    levels = check_noise(noise)
    run = _Run(model, images, methods, targets, batch_size, seed, inputs)

    def apply(k):
        for index in range(len(run.layers)):
            run.assign(index, run.perturbed(index, levels[k]))

    changes = []
    for k, level in enumerate(levels):
        apply(k)
        logits = run.predict(run.copy)
        moved = np.flatnonzero(logits.argmax(axis=1) != run.predicted)
        if len(moved):
            raise ValueError(
                f"noise: level {level} changes the predicted class of image(s) {moved.tolist()} (of "
                f"{len(run.images)}); model perturbation needs noise that keeps every prediction — use smaller levels"
            )
        changes.append(float(np.abs(run.explained_probability(logits) - run.probabilities).max()))

    result = run.measure("perturbation", levels, apply)
    result.prediction_change = changes
    return result
