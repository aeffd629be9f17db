"""Whose gradient a method takes: part 1 of a method.

``Input`` differentiates the target score with respect to the model input: a
job's contribution is what the modification makes of that gradient, an
(H, W, C) attribution. ``Layer`` differentiates it with respect to a layer's
activations A (the CAM family): the method's CAM weighting
(`tf_gag.methods.cams`) turns A and the gradient into a coarse map, and a
job's contribution is that map upsampled bilinearly to the input size, an
(H, W, 1) attribution. A source only says which tensor.

A source is immutable: `bind` resolves what it needs from a model and an
image size (Grad-CAM's layer) into a `Bound` source, which the engine keeps
per image size.
"""
from dataclasses import dataclass

import tensorflow as tf

from ..tokens import MAX_PREFIX, token_grid
from .part import Part


class Input(Part):
    """The gradient with respect to the model's input."""

    name = "input"

    def check(self, adapter, modification, cam):
        """Raise if this source cannot serve ``modification`` and the CAM weighting ``cam`` on ``adapter``."""
        if cam is not None:
            raise ValueError(f"cam: a CAM weighting ({cam.name}) reads a layer's activations; the input source has "
                             "none (use source='layer')")

    def bind(self, adapter, image_shape):
        return BoundInput(tuple(image_shape))


@dataclass(frozen=True)
class BoundInput:
    image_shape: tuple
    capture = None

    @property
    def attribution_shape(self):
        return self.image_shape

    def wrt(self, inputs, captured):
        return inputs

    def contributions(self, parts, jobs, result):
        """The modification's contributions of the input gradients."""
        return parts.modification.contributions(jobs, result)


class Layer(Part):
    """The gradient with respect to a layer's activations, as Grad-CAM.

    ``layer``: a layer name, a path through nested models
    ('backbone/out_relu'), a layer object, or None for the automatic choice
    (found on a zero image of the input size): in a vision transformer (a
    ``MultiHeadAttention`` layer), the residual ``Add`` whose tokens enter
    the last attention; otherwise the last layer that outputs a 4-D
    (N, h, w, c) feature map. A layer with 3-D (N, k + h*w, c) token outputs
    is read as its h x w patch grid without the k leading tokens
    (`tf_gag.tokens`). An imported model offers the one tensor its graph was
    split at (a map or tokens). Feature maps are channels-last.
    """

    name = "layer"
    options = {"layer": None}

    def __init__(self, layer=None):
        if layer is not None and not isinstance(layer, str) and not hasattr(layer, "name"):
            raise ValueError(f"layer: expected None, a layer name or path, or a layer object, got {layer!r}")
        self.layer = layer

    def describe(self):
        return {"layer": getattr(self.layer, "name", self.layer)}

    def check(self, adapter, modification, cam):
        if cam is None:
            raise ValueError("cam: a layer source needs a CAM weighting (one of tf_gag.methods.cams.CAMS)")
        fixed = adapter.backend.cam_tensor(adapter.metadata)  # raises for a model without layers or a split
        if fixed is not None:
            if self.layer not in (None, fixed[0]):
                raise ValueError(f"layer: this imported model was split at {fixed[0]!r} for the CAM methods; got "
                                 f"{self.layer!r}")
        elif self.layer is not None:
            adapter.find_layer(self.layer)
        if not modification.gradient_contributions:
            raise ValueError(
                f"method: a layer source takes the layer's gradient itself; {type(modification).__name__} "
                "weights input-space gradients"
            )

    def bind(self, adapter, image_shape):
        image_shape = tuple(image_shape)
        fixed = adapter.backend.cam_tensor(adapter.metadata)
        if fixed is not None:  # the one tensor an imported model offers: a map or tokens
            return BoundLayer(image_shape, capture=fixed[0], tokens=fixed[1])
        outputs = adapter.layer_outputs(tf.zeros((1,) + image_shape))
        if self.layer is not None:
            return _named_layer(adapter.find_layer(self.layer), outputs, image_shape)
        tokens = _transformer_tokens(outputs)
        if tokens is not None:
            return BoundLayer(image_shape, capture=tokens[0], tokens=tokens[1])
        spatial = [layer for _, layer, shape in outputs if len(shape) == 4]
        if not spatial:
            paths = [path for path, _ in adapter.layers()]
            raise ValueError(
                f"layer: the model has no layer with a 4-D (N, h, w, c) output for Grad-CAM; pass layer= one of {paths}"
            )
        return BoundLayer(image_shape, capture=spatial[-1])


def _patch_grid(outputs, upto):
    """(h, w) of the last 4-D output among the first ``upto`` layer outputs (a patch embedding), or None."""
    maps = [shape[1:3] for _, _, shape in outputs[:upto] if len(shape) == 4]
    return tuple(maps[-1]) if maps else None


def _named_layer(layer, outputs, image_shape):
    """The bound source for a named Keras layer: its 4-D map, or its 3-D tokens read as the patch grid.

    A layer that is not a recorded leaf (a nested model passed as an
    object) is captured as a map; `BoundLayer.wrt` checks its rank.
    """
    at = next((k for k, (_, seen, _) in enumerate(outputs) if seen is layer), None)
    shape = None if at is None else outputs[at][2]
    if shape is None or len(shape) == 4:
        return BoundLayer(image_shape, capture=layer)
    tokens = token_grid(shape[1], _patch_grid(outputs, at)) if len(shape) == 3 and shape[1] else None
    if tokens is None:
        raise ValueError(
            f"layer: {layer.name!r} outputs shape {shape}; Grad-CAM needs a 4-D (N, h, w, c) feature map or "
            f"tokens (N, k + h*w, c) with k <= {MAX_PREFIX} leading tokens and an h x w patch grid"
        )
    return BoundLayer(image_shape, capture=layer, tokens=tokens)


def _is_attention(layer):
    return any(cls.__name__ == "MultiHeadAttention" for cls in type(layer).__mro__)


def _transformer_tokens(outputs):
    """(layer, (k, h, w)): a Keras vision transformer's tokens entering its last attention, or None.

    The last block's output reaches the logits through the class token only
    (its patch tokens get zero gradient), so Grad-CAM reads the residual
    stream entering the last ``MultiHeadAttention``: the last ``Add`` layer
    before it whose (N, k + h*w, c) output reads as the patch grid (as the
    ONNX converter chooses for imported transformers).
    """
    calls = [k for k, (_, layer, _) in enumerate(outputs) if _is_attention(layer)]
    if not calls:
        return None
    for k in range(calls[-1] - 1, -1, -1):
        _, layer, shape = outputs[k]
        if type(layer).__name__ == "Add" and len(shape) == 3 and shape[1]:
            tokens = token_grid(shape[1], _patch_grid(outputs, k))
            if tokens is not None:
                return layer, tokens
    return None


@dataclass(frozen=True)
class BoundLayer:
    """``capture``'s activations and gradients as (N, h, w, c) maps; ``tokens`` = (k, h, w) when they are a
    transformer's tokens (N, k + h*w, c), read as an h x w map without the ``k`` leading tokens."""

    image_shape: tuple
    capture: object
    tokens: tuple = None

    @property
    def attribution_shape(self):
        return self.image_shape[:2] + (1,)

    def wrt(self, inputs, captured):
        rank, what = (3, "tokens (N, k + h*w, c)") if self.tokens else (4, "a 4-D (N, h, w, c) feature map")
        if captured.shape.rank != rank:
            name = getattr(self.capture, "name", self.capture)
            raise ValueError(f"layer: {name!r} outputs rank {captured.shape.rank}, Grad-CAM needs {what}")
        return captured

    def as_map(self, tokens):
        """(N, k + h*w, c) tokens -> the (N, h, w, c) patch map (leading tokens dropped); maps pass unchanged."""
        if self.tokens is None:
            return tokens
        prefix, h, w = self.tokens
        return tf.reshape(tokens[:, prefix:], [-1, h, w, tokens.shape[-1]])

    def contributions(self, parts, jobs, result):
        """The CAM weighting's coarse map of the layer's gradients and activations, upsampled to the image."""
        heat = parts.cam.heat(self.as_map(result.grads), self.as_map(result.values), jobs)
        return tf.image.resize(heat, self.image_shape[:2], method="bilinear")


SOURCES = {"input": Input, "layer": Layer}
