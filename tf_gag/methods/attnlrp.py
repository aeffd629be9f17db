"""AttnLRP's rules for transformers (Achtibat et al., ICML 2024), and CP-LRP's (Ali et al., ICML 2022), per op.

These rules work in the gradient x input form of relevance propagation, as
LXT's efficient implementation does: the backward signal g at a tensor t is
its relevance divided by t, so R_t = t * g, and an op's rule is a change of
its gradient. In that form the plain gradient of a linear map with bias is
LRP-0 (the bias keeps its share), of a sum it splits relevance in proportion
(a residual sum), and of an element-wise gate x * f(x) with f's gradient
stopped it is the identity rule. The rules, op by op in the traced graph:

=====================================  ==============================================  ======================
op                                     rule                                            AttnLRP     CP-LRP
=====================================  ==============================================  ======================
``Rsqrt``, ``Sqrt`` (a norm's scale)   identity on the normalisation: the scale is     stopped     stopped
                                       held, LRP-0 on the centring and affine map
``Erf``, ``Erfc`` (GELU's gate)        identity rule: GELU(x)/x passes                 stopped     stopped
``Softmax`` (attention weights)        x * (R - s sum(R)) (AttnLRP Prop. 3.1)          gradient    stopped
matmul/einsum of two activations       uniform rule: each operand gets half            halved      gradient
(q k^T, attention x values)
=====================================  ==============================================  ======================

With the softmax stopped (CP-LRP), queries and keys get no relevance and
the attention weights act as constants on the values. A matmul or einsum
counts as bilinear when neither operand is a weight (a constant or a
variable's value); one with a weight operand is a projection and keeps its
gradient (LRP-0). `projections` finds an imported graph's attention
projections, which the composites leave at LRP-0 too.

A composite with ``attention="attnlrp"`` or ``"cp"``
(`tf_gag.methods.composites.Composite`) runs in this form: its relevance
rules take R = g * output at a unit's output and return g = R / input at its
inputs, the logits turn the relevance arriving there into the signal
(R / logits), and the model's input turns the signal back into relevance
(x * g).
"""
import tensorflow as tf

from ..model.flat_units import is_constant

VARIANTS = ("attnlrp", "cp")
#: Ops whose gradient is stopped in both variants: normalisation scales and GELU's gate (erf, or erfc as
#: tf.nn.gelu writes it).
_STOPPED = ("Rsqrt", "Sqrt", "Erf", "Erfc")
#: Ops that only move or retype their first input's values: a weight stays a weight through them.
_REARRANGING = ("Cast", "Reshape", "Transpose", "ExpandDims", "Squeeze")
#: Ops that move or slice values (an attention's heads split and merged), and element-wise ops that scale or shift
#: one activation by weights: the path from a projection to a bilinear product.
_MOVING = _REARRANGING + ("Identity", "GatherV2", "StridedSlice", "Slice", "Split", "SplitV", "Unpack")
_AFFINE = ("Mul", "RealDiv", "Add", "AddV2", "BiasAdd", "Sub")
#: Matmul-like ops; bilinear (uniform rule) when both operands are activations.
_BILINEAR = ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "MatMul", "Einsum")
#: Op types these rules act at, for the composites' report of what they reached.
HANDLED = _STOPPED + ("Softmax",) + _BILINEAR


@tf.RegisterGradient("TfGagStopped")
def _stopped_gradient(op, *grads):
    """No gradient: the op's inputs act as constants (identity rules, CP-LRP's attention weights)."""
    return [None] * len(op.inputs)


def _recomputed(op, a, b):
    """``op``'s two-operand product, rebuilt on ``a`` and ``b``."""
    if op.type == "Einsum":
        return tf.einsum(op.get_attr("equation").decode(), a, b)
    if op.type == "MatMul":
        return tf.linalg.matmul(a, b, transpose_a=op.get_attr("transpose_a"), transpose_b=op.get_attr("transpose_b"))
    return tf.linalg.matmul(a, b, adjoint_a=op.get_attr("adj_x"), adjoint_b=op.get_attr("adj_y"))


@tf.RegisterGradient("TfGagUniform")
def _uniform_gradient(op, grad):
    """AttnLRP's uniform rule for a product of two activations: each operand gets half of its plain gradient."""
    a, b = (tf.identity(t) for t in op.inputs)  # tensors of their own, so the gradient stops at them
    return tf.gradients(_recomputed(op, a, b), [a, b], grad_ys=[grad * 0.5])


def _is_weight(tensor):
    """Whether ``tensor`` is a weight: a constant or a variable's value, behind ops that rearrange it (an
    EinsumDense's kernel reshaped for a batched matmul)."""
    while tensor.op.type in _REARRANGING and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return is_constant(tensor)


def _bilinear(op):
    return op.type in _BILINEAR and len(op.inputs) == 2 and not any(_is_weight(t) for t in op.inputs)


def _data_inputs(op):
    return [t for t in op.inputs if not _is_weight(t)]


def _passes_on(op):
    """Whether ``op`` only moves, slices, scales or shifts one activation's values (by weights)."""
    return op.type in _MOVING or (op.type in _AFFINE and len(_data_inputs(op)) == 1)


def projections(ops):
    """Names of the weighted matmuls among ``ops`` that are an attention's projections: their output reaches a
    bilinear product (queries, keys, values), or they take its output (the output projection), through ops that
    only move, scale or shift values. They keep LRP-0 under the attention composites, as in a Keras
    MultiHeadAttention (whose projections are inside the layer) and in LXT's vision transformer recipe."""
    found = set()
    for op in ops:
        if not _bilinear(op):
            continue
        backward, forward, seen = [t.op for t in op.inputs], [c for t in op.outputs for c in t.consumers()], set()
        for stack, onward in ((backward, lambda o: [t.op for t in _data_inputs(o)]),
                              (forward, lambda o: [c for t in o.outputs for c in t.consumers()])):
            while stack:
                current = stack.pop()
                if current.name in seen:
                    continue
                seen.add(current.name)
                if current.type in _BILINEAR and len(_data_inputs(current)) == 1:
                    found.add(current.name)
                elif _passes_on(current):
                    stack.extend(onward(current))
    return found


def rule_of(op, variant):
    """The registered gradient name ``variant`` gives ``op``, or None where the plain gradient is its rule."""
    if op.type in _STOPPED or (op.type == "Softmax" and variant == "cp"):
        return "TfGagStopped"
    if variant == "attnlrp" and _bilinear(op):
        return "TfGagUniform"
    return None
