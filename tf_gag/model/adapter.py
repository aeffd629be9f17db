"""One adapter over the kinds of classifier tf_gag explains.

`ModelAdapter` turns a Keras 3 model (functional, sequential, subclassed, with
nested sub-models), a SavedModel loaded with ``tf.saved_model.load``, or a
plain callable into one thing: ``forward(x) -> logits`` for NHWC float input,
callable inside a ``tf.function``. Three trace-time switches change *which*
gradient that forward yields without touching the user's model:

* a model ending in softmax is run with that softmax bypassed (logits);
* ``guided=True`` runs it with guided ReLU/ReLU6 gradients (Guided Backprop);
* ``capture=layer`` records a layer's output during the same forward pass
  (Grad-CAM), so no sub-model is built and nested backbones just work.

The switches are instance/module attribute swaps that hold only while the
forward is being traced; the traced graph keeps them, the objects do not.
"""
import contextlib
import warnings
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

_RELU = tf.nn.relu
_RELU6 = tf.nn.relu6


@dataclass(frozen=True)
class Preprocessing:
    """Affine pixel -> model-input mapping: ``model_input = (pixels - mean) / std``.

    ``mean`` and ``std`` are scalars or per-channel sequences, in pixel units
    (0-255). MobileNetV2's ``preprocess_input`` is ``Preprocessing(127.5, 127.5)``.
    """

    mean: object = 0.0
    std: object = 1.0

    def to_model(self, pixels):
        """Map pixel values (0-255) into the model's input space."""
        return (tf.cast(pixels, tf.float32) - tf.constant(self.mean, tf.float32)) / tf.constant(
            self.std, tf.float32
        )


@contextlib.contextmanager
def _swapped(obj, attr, value):
    """Set ``obj.attr = value`` for the duration of the block, then restore it."""
    had_own = attr in vars(obj)
    old = vars(obj).get(attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        if had_own:
            setattr(obj, attr, old)
        else:
            delattr(obj, attr)


@tf.custom_gradient
def _guided_relu(x):
    y = _RELU(x)

    def grad(dy):
        return dy * tf.cast(x > 0, dy.dtype) * tf.cast(dy > 0, dy.dtype)

    return y, grad


@tf.custom_gradient
def _guided_relu6(x):
    y = _RELU6(x)

    def grad(dy):
        passing = tf.logical_and(x > 0, x < 6)
        return dy * tf.cast(passing, dy.dtype) * tf.cast(dy > 0, dy.dtype)

    return y, grad


@contextlib.contextmanager
def guided_relus():
    """Within the block, ``tf.nn.relu``/``tf.nn.relu6`` backpropagate guided gradients.

    Guided Backprop (Springenberg et al.): the gradient passes a ReLU only where
    the forward input was positive *and* the incoming gradient is positive.
    Keras 3 routes every ReLU (``activation="relu"``, ``layers.ReLU``,
    ``max_value=6``) through these two functions, so nested models are covered.
    """
    with _swapped(tf.nn, "relu", lambda features, name=None: _guided_relu(features)):
        with _swapped(tf.nn, "relu6", lambda features, name=None: _guided_relu6(features)):
            yield


def _looks_like_probabilities(outputs):
    """True if (N, classes) outputs are non-negative with rows summing to 1."""
    outputs = np.asarray(outputs)
    if outputs.ndim != 2:
        raise ValueError(f"model: expected outputs of shape (N, classes), got {outputs.shape}")
    return outputs.shape[1] > 1 and bool(np.all(outputs >= 0)) and np.allclose(outputs.sum(axis=1), 1, atol=1e-3)


def _is_softmax(fn):
    return getattr(fn, "__name__", None) == "softmax"


def _walk_layers(model, prefix=""):
    """Yield (path, layer) for every leaf layer, descending into nested models."""
    for layer in getattr(model, "layers", []):
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model) or getattr(layer, "layers", None):
            yield from _walk_layers(layer, path + "/")
        else:
            yield path, layer


def _output_layer(model):
    """The leaf layer that produces a Keras model's output, or None if unknown."""
    layer = None
    outputs = getattr(model, "outputs", None)
    if isinstance(model, keras.Sequential) and model.layers:
        layer = model.layers[-1]
    elif outputs and len(outputs) == 1 and hasattr(outputs[0], "_keras_history"):
        layer = outputs[0]._keras_history.operation
    if isinstance(layer, keras.Model):
        return _output_layer(layer)
    return layer


class ModelAdapter:
    """A classifier seen as ``forward(x) -> logits`` on NHWC float batches.

    Args:
      model: a ``keras.Model``; an object from ``tf.saved_model.load`` with a
        ``logits`` function, a ``__call__``, or a one-output ``serving_default``
        signature (tried in that order); or any callable from an (N, H, W, C)
        float tensor to (N, classes) logits written in TensorFlow ops.
      output: ``"auto"`` (default) bypasses a final softmax of a Keras model
        when it can be found and warns when the outputs look like
        probabilities otherwise; ``"logits"`` trusts the model; ``"probabilities"``
        differentiates what the model returns, without a warning.
      preprocessing: how pixels (0-255) map to the model's input, when known
        (used for a black baseline and, by the metrics, for black images).
      classes: class names in output order, when known (for display).
      metadata: what an importer knows about the model (`tf_gag.load_model`
        fills it from the converter's ``metadata.json``).

    A SavedModel written by tf_gag's ONNX converter (``features``, ``head``
    and ``guided_logits`` functions) is an "imported" model: Guided Backprop
    runs its guided twin and Grad-CAM captures its feature tensor.
    """

    def __init__(self, model, *, output="auto", preprocessing=None, classes=None, metadata=None):
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
        self._softmax_bypass = None
        self._checked_outputs = output != "auto"
        self._predict = {}
        if isinstance(model, keras.Model):
            self.kind = "keras"
            inputs = getattr(model, "inputs", None)
            if inputs and len(inputs) != 1:
                raise ValueError(
                    f"model: has {len(inputs)} inputs; tf_gag explains classifiers of one image "
                    "input. Wrap it in a function of the image, e.g. "
                    "`lambda x: model([x, fixed_other_inputs])`."
                )
            if output == "auto":
                self._softmax_bypass = self._find_softmax()
                self._checked_outputs = self._softmax_bypass is not None
            self._call = lambda x: model(x, training=False)
        elif all(callable(getattr(model, name, None)) for name in ("features", "head", "guided_logits")):
            self.kind = "imported"
            self._call = model.logits
        elif callable(getattr(model, "logits", None)):
            self.kind = "saved_model"
            self._call = model.logits
        elif callable(model):
            self.kind = "callable"
            self._call = model
        elif "serving_default" in getattr(model, "signatures", {}):
            self.kind = "saved_model"
            self._call = self._signature_call(model.signatures["serving_default"])
        else:
            raise TypeError(
                "model: expected a keras.Model, a loaded SavedModel with a `logits` function, "
                f"`__call__` or `serving_default` signature, or a callable; got {type(model).__name__}"
            )

    @staticmethod
    def _signature_call(signature):
        names = list(signature.structured_input_signature[1])
        outputs = list(signature.structured_outputs)
        if len(names) != 1 or len(outputs) != 1:
            raise ValueError(
                "model: the SavedModel's serving_default signature must take one input and "
                f"return one output; it takes {names} and returns {outputs}"
            )
        return lambda x: signature(**{names[0]: x})[outputs[0]]

    def _find_softmax(self):
        """A context manager factory that bypasses the model's final softmax, or None."""
        layer = _output_layer(self.model)
        if layer is None:
            return None
        if _is_softmax(getattr(layer, "activation", None)):
            return lambda: _swapped(layer, "activation", keras.activations.linear)
        if isinstance(layer, keras.layers.Softmax):
            return lambda: _swapped(layer, "call", lambda inputs, *args, **kwargs: inputs)
        return None

    @property
    def input_shape(self):
        """(H, W, C) the model declares, with None for free dimensions, or None if unknown."""
        if self.kind == "imported" and "input" in self.metadata:
            return tuple(self.metadata["input"]["shape"])
        if self.kind == "keras" and getattr(self.model, "inputs", None):
            shape = tuple(self.model.inputs[0].shape[1:])
            return shape if len(shape) == 3 else None
        return None

    def forward(self, x, *, guided=False, capture=None):
        """Logits for ``x``; with ``capture``, also the captured layer's output.

        Call inside a ``tf.function`` (or eagerly). ``guided`` switches ReLU
        gradients to guided ones; ``capture`` is a Keras layer whose output of
        this very forward pass is returned beside the logits (for an imported
        model, its feature tensor whatever ``capture`` names).
        """
        if self.kind == "imported" and guided:
            return self.model.guided_logits(x)
        if self.kind == "imported" and capture is not None:
            features = self.model.features(x)
            return self.model.head(features), features
        with contextlib.ExitStack() as stack:
            if self._softmax_bypass is not None:
                stack.enter_context(self._softmax_bypass())
            if guided:
                if self.kind != "keras":
                    raise ValueError(
                        "method: Guided Backprop needs a Keras model (its ReLUs are switched "
                        f"while tracing); got a {self.kind} model"
                    )
                stack.enter_context(guided_relus())
            captured = []
            if capture is not None:
                original = capture.call

                def recording_call(*args, **kwargs):
                    out = original(*args, **kwargs)
                    captured.append(out)
                    return out

                stack.enter_context(_swapped(capture, "call", recording_call))
            logits = self._call(x)
        if isinstance(logits, (list, tuple)) or isinstance(logits, dict):
            raise ValueError(
                f"model: expected one (N, classes) output, got a {type(logits).__name__}"
            )
        if capture is not None:
            if not captured:
                raise ValueError(f"layer: {capture.name!r} was not called by the model's forward pass")
            return logits, captured[-1]
        return logits

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
        if self.output == "auto" and self._softmax_bypass is None and _looks_like_probabilities(logits):
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
        """(path, layer) for every leaf layer, nested models included ('backbone/conv')."""
        if self.kind != "keras":
            raise ValueError(f"model: layer lookup needs a Keras model, got a {self.kind} model")
        return list(_walk_layers(self.model))

    def find_layer(self, name):
        """The leaf layer with this name or path ('backbone/out_relu')."""
        if isinstance(name, keras.layers.Layer):
            return name
        found = [layer for path, layer in self.layers() if name in (path, layer.name)]
        if len(found) == 1:
            return found[0]
        paths = [path for path, _ in self.layers()]
        if not found:
            raise ValueError(f"layer: no layer named {name!r}; layers are {paths}")
        raise ValueError(f"layer: {name!r} is ambiguous; use a path, one of {paths}")

    def spatial_layers(self, sample):
        """Leaf layers with a 4-D (N, h, w, c) output, in the order the forward pass runs them.

        Found by running ``sample`` once with every leaf layer recording its
        output shape, so subclassed and nested models are searched too.
        """
        seen = []
        with contextlib.ExitStack() as stack:
            for path, layer in self.layers():
                original = layer.call

                def recording_call(*args, _original=original, _path=path, _layer=layer, **kwargs):
                    out = _original(*args, **kwargs)
                    if hasattr(out, "shape") and len(out.shape) == 4:
                        seen.append((_path, _layer))
                    return out

                stack.enter_context(_swapped(layer, "call", recording_call))
            self._call(tf.convert_to_tensor(sample))
        ordered, ids = [], set()
        for path, layer in seen:
            if id(layer) not in ids:
                ids.add(id(layer))
                ordered.append((path, layer))
        return ordered

    # ----- predictions --------------------------------------------------------

    def predict_logits(self, images, batch_size, *, warn=True):
        """(N, classes) numpy outputs of ``forward`` for a float32 (N, H, W, C) batch.

        ``warn=False`` skips the probability-output warning (for callers that
        check with `require_logits` instead).
        """
        key = tuple(images.shape[1:])
        compiled = self._predict
        if key not in compiled:
            compiled[key] = tf.function(
                lambda x: self.forward(x), input_signature=[tf.TensorSpec((None,) + key, tf.float32)]
            )
        outputs = [compiled[key](images[i : i + batch_size]).numpy() for i in range(0, len(images), batch_size)]
        logits = np.concatenate(outputs, axis=0)
        if warn:
            self.check_outputs(logits)
        return logits
