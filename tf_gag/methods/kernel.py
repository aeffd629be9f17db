"""The compiled gradient kernel: d score_c / d input for a chunk of model inputs.

Every gradient method runs through :func:`compile_step` (a modification's
inputs -> one batched forward+backward -> per-image running statistics) or,
for the sequential Guided IG path, through :func:`compile_gradients`. Both are
``tf.function``s with a shape-polymorphic batch dimension, so a method
traces once per image size and never per call.
"""
import tensorflow as tf

from . import moments

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


def input_gradients(forward, inputs, targets, objective="logit"):
    """Gradients of each input's target score with respect to that input.

    Scores are summed over the batch before differentiating; since the model
    is run in inference mode, input i only influences score i, so this is one
    backward pass for the whole chunk.
    """
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        logits = forward(inputs)
        scores = class_scores(logits, targets, objective)
    return tape.gradient(scores, inputs)


def compile_gradients(forward, image_shape, objective="logit"):
    """A tf.function ``(inputs (B, H, W, C), targets (B,)) -> gradients``."""

    @tf.function(
        input_signature=[
            tf.TensorSpec((None,) + tuple(image_shape), tf.float32),
            tf.TensorSpec((None,), tf.int32),
        ]
    )
    def gradients(inputs, targets):
        return input_gradients(forward, inputs, targets, objective)

    return gradients


def compile_step(forward, modification, interpretation, with_moments, image_shape, objective="logit"):
    """A tf.function computing one chunk of (image, sample) jobs and folding it into running statistics.

    The step receives the G images of a group, their targets and the
    modification's per-image parameters, plus for each of its B jobs the
    local image index and the sample index, and the group's running
    `tf_gag.moments` statistics. It builds the B modified inputs, takes their
    gradients in one batched call, turns them into contributions, summarises
    them per image (count, sum of interpreted contributions and, if
    ``with_moments``, mean and sum of squared deviations of the raw
    contributions) and merges that into the running statistics, which it
    returns. The merge is exact (Chan et al.), so memory never grows with n.
    """
    image_spec = tf.TensorSpec((None,) + tuple(image_shape), tf.float32)
    param_specs = modification.param_specs(image_shape)
    index_spec = tf.TensorSpec((None,), tf.int32)
    statistics_spec = (tf.TensorSpec((None,), tf.float32), image_spec, image_spec, image_spec)

    @tf.function(
        input_signature=[
            image_spec, index_spec, param_specs, index_spec, index_spec, tf.TensorSpec((), tf.int32), statistics_spec
        ]
    )
    def step(images, targets, params, image_index, sample_index, seed, running):
        inputs = modification.inputs(images, params, image_index, sample_index, seed)
        grads = input_gradients(forward, inputs, tf.gather(targets, image_index), objective)
        contributions = modification.contributions(
            grads, images, params, image_index, sample_index, inputs, seed
        )
        groups = tf.shape(images)[0]
        # A full group's chunk is one job per image, in image order: nothing to group (the common case).
        one_each = (tf.size(image_index) == groups) & tf.reduce_all(image_index == tf.range(tf.size(image_index)))
        summary = tf.cond(
            one_each,
            lambda: _single_summary(contributions, interpretation, with_moments),
            lambda: _grouped_summary(contributions, interpretation, with_moments, image_index, groups),
        )
        if not with_moments:
            return running[0] + summary[0], running[1] + summary[1], running[2], running[3]
        return moments.merge(running, summary)

    return step


def _single_summary(contributions, interpretation, with_moments):
    """(count, interpreted, mean, m2) of a chunk holding exactly one contribution per image."""
    ones = tf.ones(tf.shape(contributions)[:1], tf.float32)
    interpreted = interpretation(contributions)
    if not with_moments:
        return ones, interpreted, interpreted, interpreted
    return ones, interpreted, contributions, tf.zeros_like(contributions)


def _grouped_summary(contributions, interpretation, with_moments, image_index, groups):
    """(count, interpreted sum, mean, m2) per image of a chunk whose jobs belong to ``groups`` images."""
    count = tf.math.unsorted_segment_sum(tf.ones_like(image_index, tf.float32), image_index, groups)
    interpreted = tf.math.unsorted_segment_sum(interpretation(contributions), image_index, groups)
    if not with_moments:
        return count, interpreted, interpreted, interpreted
    safe = tf.reshape(tf.maximum(count, 1.0), [-1, 1, 1, 1])
    mean = tf.math.unsorted_segment_sum(contributions, image_index, groups) / safe
    m2 = tf.math.unsorted_segment_sum(tf.square(contributions - tf.gather(mean, image_index)), image_index, groups)
    return count, interpreted, mean, m2
