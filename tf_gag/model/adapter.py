"""One adapter over the kinds of classifier tf_gag explains.

`ModelAdapter` turns a Keras 3 model (functional, sequential, subclassed, with
nested sub-models), a SavedModel loaded with ``tf.saved_model.load``, a model
imported through ONNX, or a plain callable into one thing: ``forward(x) ->
logits`` for NHWC float input, traced inside a ``tf.function``. Each kind runs
through its backend (`tf_gag.model.backends`); the adapter adds what every kind
shares: the other inputs' checks, the output checks, compiled predictions.
What changes *which* gradient that forward yields stays inside the graph being
traced:

* a forward pass ending in a softmax op yields that op's input (logits);
* a backward rule (`tf_gag.methods.rules`) overrides the gradients of the ReLU
  ops of this graph only;
* ``capture=layer`` records a layer's output during the same forward pass
  (Grad-CAM), so no sub-model is built and nested backbones just work;
* an imported model's flat graph is imported into the traced graph itself.

Nothing process-global changes and the user's weights and layer settings are
never touched: the capture hook is the one instance attribute tf_gag sets on a
layer; it exists only while tf_gag traces, under a lock, and delegates unchanged
to the layer's own ``call`` for every other thread.
"""
import warnings
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ..errors import ModelOutputError
from ..io.checks import check_finite_array, rows_where
from ..reuse import PerKey
from .backends import backend_for
from .precision import check_precision


@dataclass(frozen=True)
class Preprocessing:
    """Affine pixel -> model-input mapping: ``model_input = (pixels - mean) / std``.

    ``mean`` and ``std`` are scalars or per-channel sequences, in pixel units
    (0-255). MobileNetV2's ``preprocess_input`` is ``Preprocessing(127.5, 127.5)``.
    """

    mean: object = 0.0
    std: object = 1.0

    def __post_init__(self):
        """Refuse what the mapping cannot use: non-numbers, NaN or Inf, none at all, and a zero ``std``."""
        check_finite_array("mean", self.mean, "a finite number or one per channel (pixel units)")
        std = check_finite_array("std", self.std, "a finite non-zero number or one per channel (pixel units)")
        if not std.all():
            raise ValueError(f"std: expected non-zero values (model input = (pixels - mean) / std), got {self.std!r}")

    def to_model(self, pixels):
        """Map pixel values (0-255) into the model's input space."""
        return (tf.cast(pixels, tf.float32) - tf.constant(self.mean, tf.float32)) / tf.constant(
            self.std, tf.float32
        )


def _looks_like_probabilities(outputs):
    """True if (N, classes) outputs are non-negative with rows summing to 1."""
    outputs = np.asarray(outputs)
    if outputs.ndim != 2:
        raise ValueError(f"model: expected outputs of shape (N, classes), got {outputs.shape}")
    return outputs.shape[1] > 1 and bool(np.all(outputs >= 0)) and np.allclose(outputs.sum(axis=1), 1, atol=1e-3)


def _as_other_input(other, value, count):
    """``value`` as the ``count`` rows of the `OtherInput` ``other``, in the model's dtype, or an error naming it.

    A numeric input refuses what it cannot use: values that are not numbers
    (strings, objects: TypeError), NaN or Inf, and values its dtype would
    change: fractions or out-of-range numbers for an integer input, anything
    but 0 and 1 for a bool input, numbers beyond a float input's range. A
    float64 array for a float32 input is fine (rounded as usual).
    """
    label = f"inputs: {other.name!r}"
    numeric = other.dtype.is_floating or other.dtype.is_integer or other.dtype.is_bool
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested sequences
        raise TypeError(f"{label} expected an array with one row per image, got ragged rows") from None
    if numeric and array.dtype.kind not in "biuf":
        raise TypeError(f"{label} expected numbers for the model's {other.dtype.name} input, got dtype {array.dtype}")
    if array.shape != (count,) + other.shape:
        raise ValueError(f"{label} expected shape {(count,) + other.shape} (one row per image), got {array.shape}")
    dtype = other.dtype.as_numpy_dtype
    if not numeric:  # a string input takes what numpy makes of the value
        return array.astype(dtype)
    if array.dtype.kind == "f":
        bad = rows_where(~np.isfinite(array))
        if bad:
            raise ValueError(f"{label} expected finite numbers, got NaN or Inf in image(s) {bad}")
    with np.errstate(invalid="ignore", over="ignore"):
        converted = array.astype(dtype)
    if other.dtype.is_floating:
        expected, bad = "numbers within the range of", rows_where(~np.isfinite(converted))
    else:
        limits = np.iinfo(dtype) if other.dtype.is_integer else None
        expected = f"whole numbers in [{limits.min}, {limits.max}] for" if limits else "0 or 1 for"
        bad = rows_where(converted != array)
    if bad:
        raise ValueError(f"{label} expected {expected} the model's {other.dtype.name} input, got values a cast to "
                         f"{other.dtype.name} would change in image(s) {bad}")
    return converted


class ModelAdapter:
    """A classifier seen as ``forward(x) -> logits`` on NHWC float batches.

    Args:
      model: a ``keras.Model`` (Keras 3, or Keras 2 from ``tf_keras``); an
        object from ``tf.saved_model.load`` with a ``logits`` function, a
        ``__call__``, or a one-output ``serving_default`` signature (tried in
        that order); or any callable from an (N, H, W, C)
        float tensor to (N, classes) logits written in TensorFlow ops.
      output: ``"auto"`` (default) differentiates the input of a final
        softmax op when the forward pass ends in one (a softmax ``Dense``, a
        ``Softmax`` layer, also at the end of a nested model, or
        ``tf.nn.softmax`` in a callable) and warns when the outputs look like
        probabilities otherwise; ``"logits"`` trusts the model; ``"probabilities"``
        differentiates what the model returns, without a warning.
      preprocessing: how pixels (0-255) map to the model's input, when known
        (used for a black baseline and, by the metrics, for black images).
      classes: class names in output order, when known (for display).
      metadata: what an importer knows about the model (`tf_gag.load_model`
        fills it from the converter's ``metadata.json``).
      image_input: for a Keras model with several inputs, the name of the
        image input that is explained (default: its only 4-D input). The
        others (``other_inputs``) are given per image with ``inputs=`` to
        `explain`, `evaluate`, ...; they are held fixed while the image
        changes (see `check_inputs`).

    A SavedModel written by tf_gag's ONNX converter (``features``, ``head``
    and ``logits`` functions, and the flat ``logits.pb`` beside it) is an
    "imported" model: every forward pass runs on the flat graph
    (`tf_gag.model.flat.FlatGraph`, its backend's ``flat``), imported into
    tf_gag's own graph so a backward rule's ReLU overrides reach it and
    a CAM reads its feature tensor in the same pass.

    Thread-safe: forward passes traced at the same time in several threads
    each get their own graph; caches are locked.
    """

    def __init__(self, model, *, output="auto", preprocessing=None, classes=None, metadata=None, image_input=None):
        if isinstance(model, ModelAdapter):
            raise TypeError("model: already a ModelAdapter; pass it directly to explain()")
        if output not in ("auto", "logits", "probabilities"):
            raise ValueError(
                f"output: expected 'auto', 'logits' or 'probabilities', got {output!r}"
            )
        if preprocessing is not None and not isinstance(preprocessing, Preprocessing):
            raise TypeError(
                f"preprocessing: expected a tf_gag.Preprocessing, got {type(preprocessing).__name__}"
            )
        self.model = model
        self.output = output
        self.preprocessing = preprocessing
        self.classes = None if classes is None else list(classes)
        self.metadata = dict(metadata or {})
        self._checked_outputs = output != "auto"
        self._predict = PerKey(self._compile_predict)
        self._copies = PerKey(lambda precision: self.backend.in_precision(self, precision))
        #: How this kind of model runs (`tf_gag.model.backends`).
        self.backend = backend_for(model, self.metadata, image_input)
        #: The type the model computes in (`tf_gag.model.precision`); `in_precision` makes copies in another.
        self.precision = "float32"

    def in_precision(self, precision):
        """This model computing in ``precision`` ("float32", "bfloat16", "float16"): itself, or a copy.

        The copy (`tf_gag.model.copies`: a Keras clone with a mixed policy,
        or an imported model's flat graph in that type) is made once per
        precision and kept; the model itself is never changed. Inputs,
        logits and gradients stay float32 (`tf_gag.model.precision`). A
        SavedModel or plain callable is refused: its functions fix their types.
        """
        check_precision(precision)
        if precision == self.precision:
            return self
        if self.precision != "float32":
            raise ValueError(f"precision: this adapter is already a {self.precision} copy; ask the float32 model "
                             f"for precision={precision!r}")
        return self._copies.get(precision)

    @property
    def image_input(self):
        """The name of the explained image input of a multi-input Keras model, else None."""
        return self.backend.image_input

    @property
    def other_inputs(self):
        """A multi-input Keras model's inputs besides the image: `OtherInput` s, in the model's order; else ()."""
        return self.backend.other_inputs

    @property
    def input_shape(self):
        """(H, W, C) the model declares, with None for free dimensions, or None if unknown."""
        return self.backend.input_shape(self.metadata)

    def forward(self, x, *, rule=None, capture=None, context=()):
        """Logits for ``x``; with ``capture``, also the captured layer's output.

        Call inside a ``tf.function``. ``rule`` is the backward rule
        (`tf_gag.methods.rules`) the traced ops get (None: the plain
        gradient; the adapter only calls a rule's ``traced``,
        ``check_reached``, ``overrides``, ``imported_function``, ``per_layer`` and ``name``,
        so models sit below methods in the flow); ``capture`` is a Keras
        layer whose output of this very forward pass is returned beside the
        logits (for an imported model, its feature tensor whatever ``capture``
        names). ``context``: the other inputs of a multi-input model, one
        tensor per `other_inputs` entry with ``x``'s rows.
        """
        logits, captured = self.backend.forward(x, rule, capture, context, self.output)
        return logits if capture is None else (logits, captured)

    def context_specs(self):
        """TensorSpecs of the other inputs (batch free), in `other_inputs` order; () for one-input models."""
        return tuple(tf.TensorSpec((None,) + o.shape, o.dtype) for o in self.other_inputs)

    def check_inputs(self, inputs, count):
        """The other inputs for ``count`` images as a tuple of arrays in `other_inputs` order, or a clear error.

        ``inputs`` is {input name: (count, ...) array}, or the array itself
        when the model has one other input; None for one-input models. Each
        array must hold numbers its input's dtype keeps as they are (see `_as_other_input`).
        """
        names = [o.name for o in self.other_inputs]
        if not names:
            if inputs is not None:
                raise ValueError("inputs: this model has one input (the image); other inputs are for Keras models "
                                 "with several")
            return ()
        if inputs is None:
            raise ValueError(f"inputs: the model also takes {names} besides the image {self.image_input!r}; pass "
                             f"them per image, e.g. inputs={{{names[0]!r}: array}}")
        if not isinstance(inputs, dict):
            if len(names) != 1:
                raise TypeError(f"inputs: expected a dict {{name: array}} for the model's inputs {names}")
            inputs = {names[0]: inputs}
        unknown, missing = sorted(set(inputs) - set(names)), [n for n in names if n not in inputs]
        if unknown or missing:
            raise ValueError(f"inputs: expected the model's other inputs {names}; "
                             + (f"unknown {unknown}" if unknown else f"missing {missing}"))
        return tuple(_as_other_input(other, inputs[other.name], count) for other in self.other_inputs)

    def check_outputs(self, logits):
        """Warn once if outputs of an 'auto' model look like probabilities, not logits."""
        if self._checked_outputs:
            return
        self._checked_outputs = True
        if _looks_like_probabilities(logits):
            warnings.warn(
                "model: its outputs look like probabilities (non-negative, rows sum to 1) and no "
                "final softmax could be bypassed; saliency will differentiate probabilities, not "
                "logits. Pass a logits model, or output='probabilities' to silence this.",
                UserWarning,
                stacklevel=4,
            )

    def require_logits(self, logits):
        """Raise if an 'auto' model's outputs look like probabilities.

        The metrics take a softmax of the outputs; a softmax of probabilities
        would silently squash every score towards 1 / classes.
        """
        if self.output == "auto" and _looks_like_probabilities(logits):
            raise ValueError(
                "model: its outputs look like probabilities (non-negative, rows sum to 1), not logits, "
                "and no final softmax could be bypassed. Pass a logits model, or "
                "ModelAdapter(model, output='probabilities') so the metrics use them as they are."
            )

    def probabilities(self, outputs):
        """Class probabilities from ``forward``'s outputs (a softmax, unless they already are)."""
        return outputs if self.output == "probabilities" else tf.nn.softmax(outputs, axis=-1)

    # ----- layers (Grad-CAM) -------------------------------------------------

    def layers(self):
        """(path, layer) for every leaf layer, nested models included ('backbone/conv'); Keras models only."""
        return self.backend.layers()

    def find_layer(self, name):
        """The leaf layer with this name or path ('backbone/out_relu')."""
        if not isinstance(name, str):  # a layer object (Keras 3 or tf_keras)
            return name
        found = [layer for path, layer in self.layers() if name in (path, layer.name)]
        if len(found) == 1:
            return found[0]
        paths = [path for path, _ in self.layers()]
        if not found:
            raise ValueError(f"layer: no layer named {name!r}; layers are {paths}")
        raise ValueError(f"layer: {name!r} is ambiguous; use a path, one of {paths}")

    def layer_outputs(self, sample):
        """(path, layer, output shape) of each leaf layer, in the order the forward pass first runs them."""
        return self.backend.layer_outputs(sample)

    # ----- predictions --------------------------------------------------------

    def predict_logits(self, images, batch_size, *, warn=True, context=()):
        """(N, classes) numpy outputs of ``forward`` for a float32 (N, H, W, C) batch.

        Outputs with NaN or Inf raise a `ModelOutputError` naming the images.
        ``warn=False`` skips the probability-output warning (for callers that
        check with `require_logits` instead); ``context``: the other inputs
        (`check_inputs`) of a multi-input model.
        """
        compiled = self._predict.get(tuple(images.shape[1:]))
        outputs = []
        for start in range(0, len(images), batch_size):
            rows = slice(start, start + batch_size)
            try:
                chunk = compiled(images[rows], tuple(c[rows] for c in context)).numpy()
            except Exception as error:
                _raise_output_error(error)
            if len(chunk) != len(images[start : start + batch_size]):  # a batch the trace could not check
                raise ModelOutputError(
                    f"model: returned shape {chunk.shape} for a batch of {len(images[start : start + batch_size])} "
                    "images; tf_gag explains classifiers that return one (N, classes) row per image"
                )
            outputs.append(chunk)
        logits = np.concatenate(outputs, axis=0)
        ModelOutputError.require_finite(logits)
        if warn:
            self.check_outputs(logits)
        return logits

    def _compile_predict(self, image_shape):
        spec = [tf.TensorSpec((None,) + image_shape, tf.float32), self.context_specs()]
        predict = tf.function(lambda x, context: self.forward(x, context=context), input_signature=spec)
        try:  # traced once, here, unseen by TF's retracing detector (see `Engine._compile_step`)
            predict.get_concrete_function()
        except Exception as error:
            _raise_output_error(error)
        return predict


def _raise_output_error(error):
    """Raise the `ModelOutputError` that tracing or running the model wrapped in ``error``, else ``error`` itself."""
    cause = ModelOutputError.unwrapped(error)
    if cause is None:
        raise error
    raise ModelOutputError(str(cause)) from None
