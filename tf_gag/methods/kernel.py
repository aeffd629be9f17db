"""The gradient kernel: d score_c / d (input or layer) for a chunk of model inputs.

Everything a method does around the gradient (its jobs, their inputs and
contributions, the fold) lives in `tf_gag.methods.engine`; this module only
traces the model's forward pass under a backward rule and differentiates the
target scores with ``tf.gradients``, which honours the rule's graph-local
gradient overrides. Call it while a ``tf.function`` traces.
"""
import tensorflow as tf

from .rules import Plain
from .sources import BoundInput

OBJECTIVES = ("logit", "neg_log_softmax")


def class_scores(logits, targets, objective="logit"):
    """The scalar per input that is differentiated.

    ``"logit"`` is the paper's choice (pre-softmax class score);
    ``"neg_log_softmax"`` is what the reference code's Integrated Gradients
    differentiates (-log p_c), offered for comparison with its numbers.
    """
    if objective == "neg_log_softmax":
        logits = -tf.nn.log_softmax(logits, axis=-1)
    return tf.gather(logits, targets, axis=1, batch_dims=1)


def chunk_gradients(adapter, rule, source, inputs, targets, objective="logit", context=()):
    """(gradients, source values) of each input's target score, for a chunk.

    ``source`` is a bound `tf_gag.methods.sources` source: the gradient is
    taken with respect to ``inputs`` or to the captured layer's activations.
    ``context``: a multi-input model's other inputs, row by row with ``inputs``.
    Scores are summed over the chunk before differentiating; the model runs in
    inference mode, so input i only influences score i and one backward pass
    serves the whole chunk.
    """
    if source.capture is None:
        logits, captured = adapter.forward(inputs, rule=rule, context=context), None
    else:
        logits, captured = adapter.forward(inputs, rule=rule, capture=source.capture, context=context)
    wrt = source.wrt(inputs, captured)
    scores = class_scores(logits, targets, objective)
    (grads,) = tf.gradients(tf.reduce_sum(scores), [wrt], unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return grads, wrt


def compile_gradients(adapter, image_shape, rule=None, objective="logit"):
    """A tf.function ``(inputs (B, H, W, C), targets (B,), context) -> input gradients`` (the raw passes).

    ``context``: the other inputs of a multi-input model for the B rows (() otherwise).
    """

    rule, source = rule or Plain(), BoundInput(tuple(image_shape))

    @tf.function(
        input_signature=[
            tf.TensorSpec((None,) + tuple(image_shape), tf.float32),
            tf.TensorSpec((None,), tf.int32),
            adapter.context_specs(),
        ]
    )
    def gradients(inputs, targets, context):
        return chunk_gradients(adapter, rule, source, inputs, targets, objective, context)[0]

    return gradients
