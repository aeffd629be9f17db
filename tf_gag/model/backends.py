"""The kinds of model behind `tf_gag.ModelAdapter`: one backend class each, behind one interface.

A backend knows how its kind of model runs a forward pass under a backward
rule (and captures a layer's output in the same pass), which layers it has,
which tensor it offers the CAM methods, its declared input shape, and how to
copy it with weights of its own (`tf_gag.model.copies`):

* `KerasBackend`: a Keras 3 or tf_keras model (functional, sequential,
  subclassed, nested; with several inputs, the image and the others);
* `ImportedBackend`: a model imported through ONNX by `tf_gag.load_model`,
  run on its flat graph imported into tf_gag's own graph;
* `CallableBackend`: a SavedModel's ``logits`` function, ``__call__`` or
  one-output ``serving_default`` signature, or any TF callable.

`backend_for` picks one. Nothing here changes a model: the capture hook is
the one instance attribute tf_gag sets on a layer, only while it traces, under
a lock, and it delegates unchanged to the layer's own ``call`` for every other
thread.
"""
import contextlib
import sys
import threading
from dataclasses import dataclass

import keras
import tensorflow as tf

from ..errors import ModelOutputError
from .flat import FlatGraph

#: Held while tf_gag's hooks sit on a user's layers (one tracing thread at a time).
_HOOK_LOCK = threading.RLock()
#: Ops a forward pass's output may pass through after its final softmax.
_PASS_THROUGH = ("Identity", "Cast")


@contextlib.contextmanager
def around_calls(layers, around):
    """While the block runs, this thread's calls of ``layers`` go through ``around(path, layer, call, args, kwargs)``.

    ``layers`` are (path, layer) pairs; ``around`` returns the layer's output,
    normally by calling ``call(*args, **kwargs)`` (the layer's own ``call``)
    and looking at or replacing what it returns. Each layer's ``call`` is
    wrapped by an instance attribute that acts only for the thread that
    installed it and otherwise delegates unchanged, so another thread calling
    the same model meanwhile gets exactly its own outputs and gradients.
    Installed and removed under `_HOOK_LOCK`, so two tf_gag traces never stack
    hooks on one layer.
    """
    owner = threading.get_ident()
    with _HOOK_LOCK:
        installed = []
        try:
            for path, layer in layers:
                had_own = "call" in vars(layer)
                original = layer.call

                def hooked_call(*args, _original=original, _path=path, _layer=layer, **kwargs):
                    if threading.get_ident() != owner:
                        return _original(*args, **kwargs)
                    return around(_path, _layer, _original, args, kwargs)

                layer.call = hooked_call
                installed.append((layer, had_own, original))
            yield
        finally:
            for layer, had_own, original in reversed(installed):
                if had_own:
                    layer.call = original
                else:
                    del layer.call


def _recording(layers, record):
    """While the block runs, ``record(path, layer, output)`` sees each of ``layers``' outputs in this thread."""

    def around(path, layer, call, args, kwargs):
        out = call(*args, **kwargs)
        record(path, layer, out)
        return out

    return around_calls(layers, around)


def _logits_before_softmax(outputs):
    """The input of a final softmax op of a traced forward pass, or None if it does not end in one."""
    op = getattr(outputs, "op", None)
    while op is not None and op.type in _PASS_THROUGH and op.inputs:
        op = op.inputs[0].op
    if op is not None and op.type == "Softmax":
        return op.inputs[0]
    return None


def _describe(outputs):
    """What a model returned, for an error message: its kind and the shapes inside."""
    if isinstance(outputs, dict):
        return "a dict " + str({k: _describe(v) for k, v in outputs.items()})
    if isinstance(outputs, (list, tuple)):
        return f"a {type(outputs).__name__} of " + str([_describe(v) for v in outputs])
    shape = getattr(outputs, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else type(outputs).__name__


def _check_output(outputs, x):
    """Refuse anything but one (N, classes) tensor with the input's batch, naming what the model returned."""
    shape = getattr(outputs, "shape", None)
    problem = None
    if isinstance(outputs, (list, tuple, dict)) or shape is None:
        problem = "several outputs" if isinstance(outputs, (list, tuple, dict)) else "no tensor"
    elif shape.rank is not None and shape.rank != 2:
        problem = f"{shape.rank} dimensions"
    elif shape.rank == 2 and shape[0] is not None and x.shape[0] is not None and shape[0] != x.shape[0]:
        problem = f"{shape[0]} rows for a batch of {x.shape[0]}"
    if problem is not None:
        raise ModelOutputError(
            f"model: returned {_describe(outputs)} ({problem}); tf_gag explains classifiers that return one "
            "(N, classes) tensor of logits or probabilities for N images. Wrap the model to return that one, "
            "e.g. `lambda x: model(x)['logits']`"
        )


def keras_module(model):
    """The Keras a model belongs to: ``keras`` (Keras 3), ``tf_keras`` (Keras 2), or None for anything else.

    A tf_keras model is recognised by its classes, so tf_gag never imports
    tf_keras itself (it is already imported when such a model exists).
    """
    if isinstance(model, keras.Model):
        return keras
    if any(cls.__name__ == "Model" and cls.__module__.startswith("tf_keras.") for cls in type(model).__mro__):
        return sys.modules["tf_keras"]
    return None


def is_keras_model(model):
    """True for a Keras 3 model and for a Keras 2 (``tf_keras``) model."""
    return keras_module(model) is not None


@dataclass(frozen=True)
class OtherInput:
    """An input of a multi-input model that is not the explained image: given per image, held fixed."""

    name: str
    shape: tuple
    dtype: tf.DType


def _input_name(tensor):
    return getattr(tensor, "name", "").split(":")[0]


def _split_inputs(model, image_input):
    """(image input name, (OtherInput, ...)) of a Keras model with several inputs."""
    shapes = {_input_name(t): tuple(t.shape[1:]) for t in model.inputs}
    if image_input is None:
        images = [name for name, shape in shapes.items() if len(shape) == 3]
        if len(images) != 1:
            raise ValueError(f"image_input: the model's inputs are {shapes}; name the image input to explain, "
                             "e.g. ModelAdapter(model, image_input='image')")
        image_input = images[0]
    elif image_input not in shapes:
        raise ValueError(f"image_input: the model has no input named {image_input!r}; its inputs are {shapes}")
    if len(shapes[image_input]) != 3:
        raise ValueError(f"image_input: {image_input!r} has shape {shapes[image_input]}, not an (H, W, C) image")
    others = tuple(OtherInput(_input_name(t), tuple(t.shape[1:]), tf.as_dtype(t.dtype))
                   for t in model.inputs if _input_name(t) != image_input)
    return image_input, others


def _walk_layers(model, prefix=""):
    """Yield (path, layer) for every leaf layer, descending into nested models."""
    for layer in getattr(model, "layers", []):
        path = f"{prefix}{layer.name}"
        if is_keras_model(layer) or getattr(layer, "layers", None):
            yield from _walk_layers(layer, path + "/")
        else:
            yield path, layer


def _traced(rule, layers=None, flat=False):
    """The rule's scope over the ops traced in the block (None: the plain gradient, nothing to apply).

    For rules chosen per layer (`tf_gag.methods.composites`): ``layers``, for a model with layers,
    ``around -> context`` that routes the block's leaf-layer calls through ``around`` (`around_calls`);
    ``flat``: the block imports an imported model's flat graph.
    """
    return rule.traced(layers, flat) if rule is not None else contextlib.nullcontext([])


class Backend:
    """How one kind of model runs; see the module docstring. ``name`` says the kind in messages."""

    name = "model"
    #: The inputs besides the explained image (`OtherInput` s), in the model's order; () for one-input models.
    other_inputs = ()
    #: The explained image input's name, for a model with several inputs; else None.
    image_input = None

    def __init__(self, model):
        self.model = model

    def input_shape(self, metadata):
        """(H, W, C) the model declares (None for free dimensions), or None when unknown."""
        return None

    def forward(self, x, rule, capture, context, output):
        """(logits, captured output or None) of one forward pass traced under ``rule`` (inside a tf.function).

        ``output`` is the adapter's ``"auto"``, ``"logits"`` or
        ``"probabilities"``: with ``"auto"`` a final softmax op is bypassed.
        """
        raise NotImplementedError

    def layers(self):
        """(path, layer) of every leaf layer; only a Keras model has layers to look up."""
        raise ValueError(f"model: layer lookup needs a Keras model, got a {self.name} model")

    def cam_tensor(self, metadata):
        """What a CAM source captures when the model fixes it (an imported model's split), as ``(name, tokens)``
        (tokens: (k, h, w) for a transformer's tokens, else None); None when layers are chosen from `layers`."""
        raise ValueError(
            "method: the CAM methods (Grad-CAM, Score-CAM, ...) need a Keras model whose layers can be captured, "
            f"or a model imported with tf_gag.load_model; got a {self.name} model"
        )

    def weight_copy(self, adapter):
        """(an adapter of a copy with weights of its own, its weight layers); see `tf_gag.model.copies`."""
        raise ValueError(
            f"model: the weights of a {self.name} model cannot be copied; the sanity checks need a Keras model or "
            "one imported with tf_gag.load_model (they re-draw the weights of a copy, never of the model itself)"
        )

    def in_precision(self, adapter, precision):
        """An adapter of a copy of the model computing in ``precision``; see `tf_gag.model.copies`."""
        raise ValueError(
            f"precision: a {self.name} model computes in the types its own functions fix, so tf_gag cannot run it in "
            f"{precision}; pass a Keras model or one imported with tf_gag.load_model, or precision='float32'"
        )


class _TracedBackend(Backend):
    """A model whose forward pass is traced op by op into tf_gag's graph (rules reach its ReLUs directly)."""

    def call(self, x, context):
        """The model's outputs for image ``x`` (and the other inputs ``context``)."""
        raise NotImplementedError

    def capturing(self, capture, record):
        """A context in which ``record(output)`` sees ``capture``'s output of the forward pass."""
        raise ValueError(f"layer: a {self.name} model has no layers to capture")

    def layer_calls(self):
        """``around -> context`` routing the forward pass's leaf-layer calls (`around_calls`), or None."""
        return None

    def forward(self, x, rule, capture, context, output):
        captured = []
        with contextlib.ExitStack() as stack:
            reached = stack.enter_context(_traced(rule, self.layer_calls()))
            if capture is not None:
                stack.enter_context(self.capturing(capture, captured.append))
            outputs = self.call(x if rule is None else rule.entering(x), context)
        if rule is not None:
            rule.check_reached(reached, self.name)
        _check_output(outputs, x)
        logits = _logits_before_softmax(outputs) if output == "auto" else None
        logits = outputs if logits is None else tf.cast(logits, outputs.dtype)
        if logits.dtype in (tf.bfloat16, tf.float16):  # a model in reduced precision: its logits in float32
            logits = tf.cast(logits, tf.float32)
        if rule is not None:
            logits = rule.leaving(logits)
        if capture is not None and not captured:
            raise ValueError(f"layer: {capture.name!r} was not called by the model's forward pass")
        return logits, (captured[-1] if captured else None)


class KerasBackend(_TracedBackend):
    """A Keras 3 or tf_keras model; with several inputs, the image input (``image_input``) and the others."""

    name = "Keras"

    def __init__(self, model, image_input=None):
        super().__init__(model)
        if len(getattr(model, "inputs", None) or []) > 1:
            self.image_input, self.other_inputs = _split_inputs(model, image_input)
        elif image_input is not None:
            raise ValueError("image_input: names the image input of a Keras model with several inputs; this model "
                             "has one input")

    def input_shape(self, metadata):
        if not getattr(self.model, "inputs", None):
            return None
        image = next(t for t in self.model.inputs if self.image_input in (None, _input_name(t)))
        shape = tuple(image.shape[1:])
        return shape if len(shape) == 3 else None

    def call(self, x, context):
        if not self.other_inputs:
            return self.model(x, training=False)
        given = dict(zip((o.name for o in self.other_inputs), context))
        return self.model([x if _input_name(t) == self.image_input else given[_input_name(t)]
                           for t in self.model.inputs], training=False)

    def capturing(self, capture, record):
        return _recording([(capture.name, capture)], lambda path, layer, out: record(out))

    def layers(self):
        return list(_walk_layers(self.model))

    def layer_calls(self):
        layers = self.layers()
        return lambda around: around_calls(layers, around)

    def layer_outputs(self, sample):
        """(path, layer, output shape) of each leaf layer, in the order the forward pass first runs them.

        Found by running ``sample`` once with every leaf layer recording its
        output shape, so subclassed and nested models are searched too.
        """
        seen = []

        def record(path, layer, out):
            if hasattr(out, "shape"):
                seen.append((path, layer, tuple(out.shape)))

        sample = tf.convert_to_tensor(sample)
        with _recording(self.layers(), record):  # the layer shapes do not depend on the other inputs' values
            self.call(sample, tuple(tf.zeros((1,) + o.shape, o.dtype) for o in self.other_inputs))
        ordered, ids = [], set()
        for path, layer, shape in seen:
            if id(layer) not in ids:
                ids.add(id(layer))
                ordered.append((path, layer, shape))
        return ordered

    def cam_tensor(self, metadata):
        return None

    def weight_copy(self, adapter):
        from .copies import keras_copy  # copies builds adapters, which import this module

        return keras_copy(adapter)

    def in_precision(self, adapter, precision):
        from .copies import keras_in_precision  # copies builds adapters, which import this module

        return keras_in_precision(adapter, precision)


class ImportedBackend(Backend):
    """A model imported through ONNX (``features``, ``head`` and ``logits`` functions; the flat graph beside).

    Every forward pass runs on the flat graph (`FlatGraph`, ``flat``),
    imported into tf_gag's own graph so a backward rule's ReLU overrides reach
    it and a CAM reads its feature tensor in the same pass. Models converted
    before the flat graph existed run their SavedModel functions.
    """

    name = "imported"

    def __init__(self, model, metadata, flat=None):
        super().__init__(model)
        self.flat = flat if flat is not None else (
            FlatGraph.from_metadata(metadata["frozen"]) if metadata.get("frozen") else None)

    def input_shape(self, metadata):
        return tuple(metadata["input"]["shape"]) if "input" in metadata else None

    def forward(self, x, rule, capture, context, output):
        if rule is not None and capture is not None and rule.overrides:
            raise ValueError(f"method: a CAM on an imported model takes the plain rule, not {rule.name}")
        if self.flat is None or (capture is not None and self.flat.feature is None):
            return self._converted_before_flat(x, rule, capture)
        with _traced(rule, flat=True) as reached:
            outputs = self.flat(x if rule is None else rule.entering(x), feature=capture is not None)
        if rule is not None:
            rule.check_reached(reached, self.name)
        logits = outputs[0] if rule is None else rule.leaving(outputs[0])
        return (logits, None) if capture is None else (logits, outputs[1])

    def _converted_before_flat(self, x, rule, capture):
        """Models converted before the flat graph (format 1) or before it named its feature map (format 2)."""
        if rule is not None and rule.per_layer:
            raise ValueError(f"method: the {rule.name} composite chooses a rule per layer and needs the flat logits "
                             "graph (logits.pb) tf_gag's converter writes since format 2; convert the ONNX file "
                             "again (tf_gag.load_model does so for its cache)")
        if capture is not None:
            features = self.model.features(x)
            return self.model.head(features), features
        if rule is None or not rule.overrides:
            return self.model.logits(x), None
        twin = getattr(self.model, rule.imported_function or "", None)
        if twin is None:
            raise ValueError(
                f"method: the {rule.name} backward rule needs the flat logits graph (logits.pb) that tf_gag's "
                "converter writes since format 2; convert the ONNX file again (tf_gag.load_model does so for "
                "its cache)"
            )
        return twin(x), None

    def cam_tensor(self, metadata):
        if "gradcam" in metadata and metadata["gradcam"] is None:
            raise ValueError(
                "method: the CAM methods need a convolutional feature map and this imported model has none (no 4-D "
                "tensor made by convolutions, e.g. a transformer's tokens); convert it with feature='<ONNX tensor "
                "name>' to choose one"
            )
        split = metadata.get("gradcam") or {}
        tokens = (split["prefix"], *split["grid"]) if split.get("layout") == "tokens" else None
        return split.get("tensor", "features"), tokens

    def weight_copy(self, adapter):
        from .copies import imported_copy  # copies builds adapters, which import this module

        return imported_copy(adapter)

    def in_precision(self, adapter, precision):
        from .copies import imported_in_precision  # copies builds adapters, which import this module

        return imported_in_precision(adapter, precision)


class CallableBackend(_TracedBackend):
    """A SavedModel's ``logits`` function or one-output ``serving_default`` signature, or any TF callable."""

    def __init__(self, model, function, name):
        super().__init__(model)
        self.function, self.name = function, name

    def call(self, x, context):
        return self.function(x)


def _signature_call(signature):
    names = list(signature.structured_input_signature[1])
    outputs = list(signature.structured_outputs)
    if len(names) != 1 or len(outputs) != 1:
        raise ValueError(
            "model: the SavedModel's serving_default signature must take one input and "
            f"return one output; it takes {names} and returns {outputs}"
        )
    return lambda x: signature(**{names[0]: x})[outputs[0]]


def backend_for(model, metadata, image_input=None):
    """The backend of ``model``, tried in this order: Keras, imported (ONNX), SavedModel ``logits``, callable,
    SavedModel ``serving_default``."""
    if is_keras_model(model):
        return KerasBackend(model, image_input)
    if image_input is not None:
        raise ValueError("image_input: names the image input of a Keras model with several inputs; this model "
                         "has one input")
    if all(callable(getattr(model, name, None)) for name in ("features", "head", "logits")):
        return ImportedBackend(model, metadata)
    if callable(getattr(model, "logits", None)):
        return CallableBackend(model, model.logits, "SavedModel")
    if callable(model):
        return CallableBackend(model, model, "callable")
    if "serving_default" in getattr(model, "signatures", {}):
        return CallableBackend(model, _signature_call(model.signatures["serving_default"]), "SavedModel")
    raise TypeError(
        "model: expected a keras.Model, a loaded SavedModel with a `logits` function, "
        f"`__call__` or `serving_default` signature, or a callable; got {type(model).__name__}"
    )
