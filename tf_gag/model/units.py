"""Keras layers as units of relevance propagation: each layer's kind and its linear map under other weights.

A relevance rule (`tf_gag.methods.lrp`) needs more of a layer than its
gradient: the layer's linear map (before its activation) applied to other
inputs (x⁺, ones, the input's bounds) with other weights (W⁺, W², ones).
`unit` gives that for one call of a layer, from the layer's own attributes
(the same names in Keras 3 and tf_keras) and TensorFlow ops, so nothing is
read from or written to the layer beyond its weights' values.

Kinds (`kind`), by class name so tf_keras layers are recognised without
importing tf_keras:

==============  ========================================================================
kind            layers
==============  ========================================================================
``dense``       Dense
``conv``        Conv1D/2D/3D (one group) and DepthwiseConv2D (torch's grouped Conv2d)
``batch_norm``  BatchNormalization
``activation``  Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax
``avg_pool``    AveragePooling1D/2D/3D, GlobalAveragePooling1D/2D/3D
``add``         Add (a residual sum)
``scaling``     Rescaling, Normalization (elementwise affine input scaling)
==============  ========================================================================

`fold_batch_norm` is the canonizer's arithmetic: a linear unit followed by a
BatchNormalization becomes one unit with the normalisation in its weights.
"""
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Tuple

import tensorflow as tf

KINDS = {
    "dense": ("Dense",),
    "conv": ("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D", "DepthwiseConv2D"),
    "batch_norm": ("BatchNormalization",),
    "activation": ("Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"),
    "avg_pool": ("AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D",
                 "GlobalAveragePooling2D", "GlobalAveragePooling3D"),
    "add": ("Add",),
    "scaling": ("Rescaling", "Normalization"),
}
#: Kinds whose units carry a kernel (the "linear" layers of LRP's composites).
WEIGHTED = ("dense", "conv")
_BY_CLASS = {name: kind for kind, names in KINDS.items() for name in names}


def kind(layer):
    """The layer's kind (a `KINDS` key), or None for any other layer."""
    return _BY_CLASS.get(type(layer).__name__)


@dataclass(frozen=True)
class Unit:
    """One traced call of a layer, as relevance rules see it.

    ``inputs``: the call's input tensors; ``output``: what it returned.
    Weighted kinds also have ``kernel`` and ``bias`` (tensors; bias None when
    the layer has none) and ``linear(x, kernel, bias)``, the layer's map
    before its activation (``bias=None``: none added). ``linear_activation``:
    whether the layer's own activation is the identity. ``transpose``: for a
    unit without weights whose own ops' gradients are replaced (an imported
    graph's), J^T s built without them.
    """

    layer: Any
    kind: str
    inputs: Tuple[tf.Tensor, ...]
    output: tf.Tensor
    kernel: Optional[tf.Tensor] = None
    bias: Optional[tf.Tensor] = None
    linear: Optional[Callable] = None
    linear_activation: bool = True
    transpose: Optional[Callable] = None

    def transposed(self, s):
        """J^T s for each input of a unit without weights: through its own traced ops, or ``transpose``.

        Partial in each input: one input of a residual sum may depend on the
        other, and that path has relevance rules of its own.
        """
        if self.transpose is not None:
            return self.transpose(s)
        return tuple(tf.gradients(self.output, list(self.inputs), grad_ys=[s], stop_gradients=list(self.inputs),
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO))

    @property
    def weighted(self):
        return self.kernel is not None


def _channels_last(layer):
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt != "channels_last":
        raise ValueError(f"method: relevance rules take channels-last layers; {layer.name!r} is {fmt}")


def _dense_linear(layer):
    def linear(x, kernel, bias):
        z = tf.tensordot(x, kernel, [[x.shape.rank - 1], [0]]) if x.shape.rank != 2 else tf.matmul(x, kernel)
        return z if bias is None else z + bias

    return linear


def _conv_linear(layer):
    _channels_last(layer)
    padding = str(layer.padding).upper()
    if padding not in ("SAME", "VALID") or getattr(layer, "groups", 1) != 1:
        raise ValueError(f"method: relevance rules take convolutions with 'same' or 'valid' padding and one group; "
                         f"{layer.name!r} has padding {layer.padding!r}, groups {getattr(layer, 'groups', 1)}")
    depthwise = type(layer).__name__ == "DepthwiseConv2D"

    def linear(x, kernel, bias):
        if depthwise:
            z = tf.nn.depthwise_conv2d(x, kernel, (1, *layer.strides, 1), padding, dilations=layer.dilation_rate)
        else:
            z = tf.nn.convolution(x, kernel, layer.strides, padding, dilations=layer.dilation_rate)
        return z if bias is None else z + bias

    return linear


def _kernel(layer):
    kernel = getattr(layer, "depthwise_kernel", None)  # tf_keras' DepthwiseConv2D; Keras 3 names it kernel
    return layer.kernel if kernel is None else kernel


def unit(layer, inputs, output):
    """The `Unit` of one call of ``layer`` (its input tensors and output), or None for a layer of no kind."""
    found = kind(layer)
    if found is None:
        return None
    if found not in WEIGHTED:
        return Unit(layer, found, tuple(inputs), output)
    linear = _dense_linear(layer) if found == "dense" else _conv_linear(layer)
    bias = layer.bias if getattr(layer, "use_bias", True) and getattr(layer, "bias", None) is not None else None
    activation = getattr(layer, "activation", None)
    return Unit(layer, found, tuple(inputs), output, tf.convert_to_tensor(_kernel(layer)),
                None if bias is None else tf.convert_to_tensor(bias), linear,
                activation is None or getattr(activation, "__name__", "") == "linear")


def fold_batch_norm(linear_unit, batch_norm):
    """``linear_unit`` with the inference-mode ``batch_norm`` that follows it folded into its kernel and bias.

    With s = gamma / sqrt(variance + epsilon): kernel * s along the output
    channels and (bias - mean) * s + beta, so the unit's linear map gives the
    normalisation's output. A depthwise kernel (kh, kw, in, multiplier) has
    its output channels in (in, multiplier) order.
    """
    axis = batch_norm.axis if isinstance(batch_norm.axis, int) else batch_norm.axis[-1]
    if axis not in (-1, linear_unit.output.shape.rank - 1):
        raise ValueError(f"method: the BatchNormalization {batch_norm.name!r} after {linear_unit.layer.name!r} "
                         f"normalises axis {axis}, not the channels; it cannot be folded (canonize=False)")
    moving_variance = tf.convert_to_tensor(batch_norm.moving_variance)
    scale = tf.math.rsqrt(moving_variance + batch_norm.epsilon)
    if getattr(batch_norm, "scale", True) and getattr(batch_norm, "gamma", None) is not None:
        scale = scale * tf.convert_to_tensor(batch_norm.gamma)
    shift = -tf.convert_to_tensor(batch_norm.moving_mean) * scale
    if getattr(batch_norm, "center", True) and getattr(batch_norm, "beta", None) is not None:
        shift = shift + tf.convert_to_tensor(batch_norm.beta)
    kernel = linear_unit.kernel
    per_output = tf.reshape(scale, kernel.shape[-2:]) if type(linear_unit.layer).__name__ == "DepthwiseConv2D" \
        else scale
    bias = shift if linear_unit.bias is None else linear_unit.bias * scale + shift
    return replace(linear_unit, kernel=kernel * per_output, bias=bias)
