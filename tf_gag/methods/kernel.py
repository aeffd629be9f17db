"""The gradient kernel: d score_c / d (input or layer) for a chunk of model inputs.

Everything a method does around the gradient (its jobs, their inputs and
contributions, the fold) lives in `tf_gag.methods.engine`; this module only
traces the model's forward pass under a backward rule and differentiates the
target scores with ``tf.gradients``, which honours the rule's graph-local
gradient overrides. Call it while a ``tf.function`` traces.
"""
import tensorflow as tf

from ..model.precision import gradient_scale
from .jobs import Gradients, Jobs, class_scores
from .rules import Plain
from .sources import BoundInput

OBJECTIVES = ("logit", "neg_log_softmax")


def chunk_gradients(adapter, rule, source, jobs):
    """`Gradients` of each job's objective for a chunk of `Jobs` (its ``inputs``, ``targets``, ``context``).

    ``source`` is a bound `tf_gag.methods.sources` source: the gradient is
    taken with respect to the inputs or to the captured layer's activations.
    Scores are summed over the chunk before differentiating; the model runs in
    inference mode, so input i only influences score i and one backward pass
    serves the whole chunk. Each job's objective, target logit and target
    probability come back beside its gradient. A model in reduced precision
    (`tf_gag.model.precision`) is differentiated with its gradient scale, and
    its gradients (and a captured layer's activations) come back in float32.
    """
    if source.capture is None:
        logits, captured = adapter.forward(jobs.inputs, rule=rule, context=jobs.context), None
    else:
        logits, captured = adapter.forward(jobs.inputs, rule=rule, capture=source.capture, context=jobs.context)
    wrt = source.wrt(jobs.inputs, captured)
    scores = class_scores(logits, jobs.targets, jobs.objective)
    scale = gradient_scale(adapter.precision)
    total = tf.reduce_sum(scores) if scale == 1 else tf.reduce_sum(scores) * scale
    (grads,) = tf.gradients(total, [wrt], unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads, wrt = tf.cast(grads, tf.float32), tf.cast(wrt, tf.float32)  # a reduced-precision layer's are not
    if scale != 1:
        grads = grads / scale
    logit = class_scores(logits, jobs.targets)
    probability = class_scores(tf.nn.softmax(logits, axis=-1), jobs.targets)
    return Gradients(grads, wrt, scores, logit, probability)


def compile_gradients(adapter, image_shape, rule=None, objective="logit"):
    """A tf.function ``(inputs (B, H, W, C), targets (B,), context) -> (input gradients, objectives (B,))``.

    The raw passes, for methods that choose each step on the host.

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
        jobs = Jobs(inputs, (), None, None, None, targets, context, inputs, objective=objective)
        result = chunk_gradients(adapter, rule, source, jobs)
        return result.grads, result.objective

    return gradients
