"""Whose gradient a method takes: part 1 of a method.

``Input`` differentiates the target score with respect to the model input: a
job's contribution is what the modification makes of that gradient, an
(H, W, C) attribution. ``Layer`` differentiates it with respect to a layer's
activations A (Grad-CAM, Selvaraju et al. 2017): the gradient is averaged over
space into channel weights w, and a job's contribution is ``ReLU(sum_k w_k
A_k)`` upsampled bilinearly to the input size, an (H, W, 1) attribution.

A source is immutable: `bind` resolves what it needs from a model and an
image size (Grad-CAM's layer) into a `Bound` source, which the engine keeps
per image size.
"""
from dataclasses import dataclass

import tensorflow as tf

from .part import Part


class Input(Part):
    """The gradient with respect to the model's input."""

    name = "input"

    def check(self, adapter, modification):
        """Raise if this source cannot serve ``modification`` on ``adapter``."""

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

    def contributions(self, modification, grads, activations, images, params, image_index, sample_index, inputs,
                      seed):
        return modification.contributions(grads, images, params, image_index, sample_index, inputs, seed)


def _imported_feature(adapter):
    """The feature tensor an imported model's graph was split at for Grad-CAM (its converter's metadata).

    Raises when the converter found no convolutional feature map to split at.
    """
    if "gradcam" in adapter.metadata and adapter.metadata["gradcam"] is None:
        raise ValueError(
            "method: Grad-CAM needs a convolutional feature map and this imported model has none (no 4-D tensor "
            "made by convolutions, e.g. a transformer's tokens); convert it with feature='<ONNX tensor name>' "
            "to choose one"
        )
    return adapter.metadata.get("gradcam", {}).get("tensor", "features")


class Layer(Part):
    """The gradient with respect to a layer's activations, as Grad-CAM.

    ``layer``: a layer name, a path through nested models
    ('backbone/out_relu'), a layer object, or None for the last layer that
    outputs a 4-D (N, h, w, c) feature map in the forward pass (found on a
    zero image of the input size). An imported model offers the one feature
    tensor its graph was split at. Feature maps are channels-last.
    """

    name = "layer"
    options = {"layer": None}

    def __init__(self, layer=None):
        self.layer = layer

    def describe(self):
        return {"layer": getattr(self.layer, "name", self.layer)}

    def check(self, adapter, modification):
        if adapter.kind not in ("keras", "imported"):
            raise ValueError(
                "method: Grad-CAM needs a Keras model whose layers can be captured, or a model imported with "
                f"tf_gag.load_model; got a {adapter.kind} model"
            )
        if adapter.kind == "imported":
            name = _imported_feature(adapter)
            if self.layer not in (None, name):
                raise ValueError(f"layer: this imported model was split at {name!r} for Grad-CAM; got {self.layer!r}")
        elif self.layer is not None:
            adapter.find_layer(self.layer)
        if not modification.gradient_contributions:
            raise ValueError(
                f"method: a layer source takes the layer's gradient itself; {type(modification).__name__} "
                "weights input-space gradients"
            )

    def bind(self, adapter, image_shape):
        image_shape = tuple(image_shape)
        if adapter.kind == "imported":
            return BoundLayer(image_shape, capture=_imported_feature(adapter))
        if self.layer is not None:
            return BoundLayer(image_shape, capture=adapter.find_layer(self.layer))
        spatial = adapter.spatial_layers(tf.zeros((1,) + image_shape))
        if not spatial:
            paths = [path for path, _ in adapter.layers()]
            raise ValueError(
                f"layer: the model has no layer with a 4-D (N, h, w, c) output for Grad-CAM; pass layer= one of {paths}"
            )
        return BoundLayer(image_shape, capture=spatial[-1][1])


@dataclass(frozen=True)
class BoundLayer:
    image_shape: tuple
    capture: object

    @property
    def attribution_shape(self):
        return self.image_shape[:2] + (1,)

    def wrt(self, inputs, captured):
        if captured.shape.rank != 4:
            name = getattr(self.capture, "name", self.capture)
            raise ValueError(
                f"layer: {name!r} outputs rank {captured.shape.rank}, Grad-CAM needs a 4-D (N, h, w, c) feature map"
            )
        return captured

    def contributions(self, modification, grads, activations, images, params, image_index, sample_index, inputs,
                      seed):
        weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
        heat = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1, keepdims=True))
        return tf.image.resize(heat, self.image_shape[:2], method="bilinear")


SOURCES = {"input": Input, "layer": Layer}
