"""An imported model's flat graph as units of relevance propagation, found among the ops it imported.

An imported model (`tf_gag.model.flat`) has no Keras layers: its forward pass
is the flat logits graph imported op by op into the graph tf_gag traces. The
units relevance rules need are found there, as the sanity checks find the
model's weights (`FlatGraph.weight_layers`):

==============  ===========================================================================================
kind            ops
==============  ===========================================================================================
``conv``        Conv2D or DepthwiseConv2dNative with a constant filter (or a copy's variable), and the constant scales
                (Mul) and biases (Add, AddV2, BiasAdd) that directly follow it, folded into one kernel and bias
``dense``       MatMul with a constant weight, and the same
``activation``  Relu, Relu6, Elu, LeakyRelu, Selu
``add``         an Add/AddV2 of two tensors that are not constants (a residual sum)
``avg_pool``    a Mean over the spatial axes (global average pooling) or an AvgPool
==============  ===========================================================================================

Everything else (transposes, pads, reshapes, max pooling) keeps its gradient,
which passes relevance on unchanged. Each `FlatUnit` names the ops whose
gradients a rule replaces: `tf_gag.methods.composites` does that per op.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from .units import Unit

WEIGHTED_KINDS = {"Conv2D": "conv", "DepthwiseConv2dNative": "conv", "MatMul": "dense"}
ACTIVATIONS = ("Relu", "Relu6", "Elu", "LeakyRelu", "Selu")
_SCALES, _BIASES = ("Mul",), ("Add", "AddV2", "BiasAdd")


@dataclass(frozen=True)
class FlatUnit:
    """A unit of the imported graph: its ``kind``, its ``name`` (the main op's), the main ``op``, the element-wise
    ``chain`` folded into it (weighted units), and the `Unit` rules read."""

    kind: str
    name: str
    op: tf.Operation
    chain: Tuple[tf.Operation, ...]
    unit: Unit
    #: A weighted unit's zero padding taken in (the Pad op before it), or None: its rule's relevance is at the
    #: unpadded input, and the main op's input gradient is that relevance padded.
    padding: Optional[np.ndarray] = None


def is_constant(tensor):
    """Whether ``tensor`` is fixed weight: a constant, or a variable's value (a copy's weights, `FlatGraph.
    with_variables`), behind any Identity ops."""
    current = tensor
    while current.op.type == "Identity" and current.op.inputs:
        current = current.op.inputs[0]
    return current.op.type in ("Const", "ReadVariableOp")


def _constant(tensor):
    """The tensor if it is fixed weight (`is_constant`), else None."""
    return tensor if is_constant(tensor) else None


def _linear(op):
    """``(x, kernel, bias) -> op's map`` rebuilt with another kernel (channels last)."""
    kind = op.type
    if kind == "MatMul":
        if op.get_attr("transpose_a"):
            return None
        transpose_b = op.get_attr("transpose_b")

        def linear(x, kernel, bias):
            z = tf.matmul(x, kernel, transpose_b=transpose_b)
            return z if bias is None else z + bias

        return linear
    if op.get_attr("data_format") not in (b"NHWC", "NHWC"):
        return None
    attrs = {key: op.get_attr(key) for key in ("strides", "padding", "explicit_paddings", "dilations")}
    conv = tf.raw_ops.Conv2D if kind == "Conv2D" else tf.raw_ops.DepthwiseConv2dNative

    def linear(x, kernel, bias):
        z = conv(input=x, filter=kernel, data_format="NHWC", **attrs)
        return z if bias is None else z + bias

    return linear


def _out_channels(op, kernel):
    """(number of output channels, function mapping a per-output-channel vector onto the kernel's shape)."""
    shape = kernel.shape
    if op.type == "MatMul" and op.get_attr("transpose_b"):
        return shape[0], lambda v: tf.reshape(v, [-1, 1])
    if op.type == "DepthwiseConv2dNative":
        return shape[2] * shape[3], lambda v: tf.reshape(v, shape[2:])
    return shape[-1], lambda v: v


def _only_consumer(op):
    consumers = op.outputs[0].consumers()
    return consumers[0] if len(consumers) == 1 else None


def _zero_padding(tensor):
    """(the padded tensor, paddings) if ``tensor`` is a constant zero padding's only output, else (tensor, None).

    A convolution's zero padding belongs to its unit: rules that replace the
    input (flat, w^2, z^B) must see zeros there, as a convolution that pads
    internally does, not ones or bounds.
    """
    pad = tensor.op
    if pad.type not in ("Pad", "PadV2") or len(tensor.consumers()) != 1:
        return tensor, None
    paddings = tf.get_static_value(pad.inputs[1])
    value = 0 if pad.type == "Pad" else tf.get_static_value(pad.inputs[2])
    if paddings is None or value is None or np.any(value != 0):
        return tensor, None
    return pad.inputs[0], paddings


def _weighted(op):
    """The `FlatUnit` of a weighted op with a constant weight, its constant scales and biases folded; or None."""
    kernel = _constant(op.inputs[1])
    linear = _linear(op) if kernel is not None else None
    if linear is None:
        return None
    x, padding = _zero_padding(op.inputs[0]) if op.type != "MatMul" else (op.inputs[0], None)
    if padding is not None:
        linear = (lambda x, kernel, bias, _padded=linear: _padded(tf.pad(x, padding), kernel, bias))
    channels, on_kernel = _out_channels(op, kernel)
    scale, bias, chain, current = None, None, [], op
    while True:
        after = _only_consumer(current)
        if after is None or after.type not in _SCALES + _BIASES:
            break
        others = [t for t in after.inputs if t is not current.outputs[0]]
        value = _constant(others[0]) if len(others) == 1 else None
        if value is None or value.shape.rank is None or value.shape.num_elements() not in (1, channels):
            break
        value = tf.reshape(value, [-1])
        if after.type in _SCALES:
            scale = value if scale is None else scale * value
            bias = None if bias is None else bias * value
        else:
            bias = value if bias is None else bias + value
        chain.append(after)
        current = after
    if scale is not None:
        kernel = kernel * on_kernel(tf.broadcast_to(scale, [channels]))
    if bias is not None:
        bias = tf.broadcast_to(bias, [channels])
    unit = Unit(op, WEIGHTED_KINDS[op.type], (x,), current.outputs[0], kernel, bias, linear)
    return FlatUnit(unit.kind, op.name, op, tuple(chain), unit, padding)


def _spatial_mean(op):
    axes = _constant(op.inputs[1])
    if axes is None or op.inputs[0].shape.rank != 4:
        return False
    values = tf.get_static_value(axes)
    return values is not None and sorted(int(a) % 4 for a in np.ravel(values)) == [1, 2]


def _sum_transposed(op):
    """J^T of a residual sum: s for each input (the inputs have the output's shape)."""
    return lambda s: tuple(s for _ in op.inputs)


def _pool_transposed(op):
    """J^T of a spatial mean or an average pooling, built from the op's attributes (its own gradient is replaced)."""
    x = op.inputs[0]
    if op.type == "AvgPool":
        attrs = {key: op.get_attr(key) for key in ("ksize", "strides", "padding", "data_format")}
        return lambda s: (tf.raw_ops.AvgPoolGrad(orig_input_shape=tf.shape(x), grad=s, **attrs),)
    keep = op.get_attr("keep_dims")

    def transposed(s):
        s = s if keep else s[:, None, None, :]
        count = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], s.dtype)
        return (tf.broadcast_to(s, tf.shape(x)) / count,)

    return transposed


def flat_units(ops):
    """The `FlatUnit` s among ``ops`` (an imported flat graph's, in creation order: forward order)."""
    units, folded = [], set()
    for op in ops:
        if op.name in folded:
            continue
        found = None
        if op.type in WEIGHTED_KINDS and len(op.inputs) >= 2:
            found = _weighted(op)
            if found is not None:
                folded.update(o.name for o in found.chain)
        elif op.type in ACTIVATIONS:
            found = FlatUnit("activation", op.name, op, (), Unit(op, "activation", (op.inputs[0],), op.outputs[0]))
        elif op.type in ("Add", "AddV2") and all(_constant(t) is None for t in op.inputs) and all(
                t.shape == op.outputs[0].shape for t in op.inputs):
            found = FlatUnit("add", op.name, op, (), Unit(op, "add", tuple(op.inputs), op.outputs[0],
                                                          transpose=_sum_transposed(op)))
        elif op.type == "AvgPool" or (op.type == "Mean" and _spatial_mean(op)):
            found = FlatUnit("avg_pool", op.name, op, (), Unit(op, "avg_pool", (op.inputs[0],), op.outputs[0],
                                                               transpose=_pool_transposed(op)))
        if found is not None:
            units.append(found)
    return units
