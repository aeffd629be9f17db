"""The compiled gradient kernel: d score_c / d input for a chunk of model inputs.

Every gradient method runs through :func:`compile_step` (a modification's
inputs -> one batched forward+backward -> per-image running statistics) or,
for the sequential Guided IG path, through :func:`compile_gradients`. Both are
``tf.function``s with a shape-polymorphic batch dimension, so a method
traces once per image size and never per call.
"""
import tensorflow as tf

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
    """A tf.function computing one chunk of (image, sample) jobs.

    The step receives the G images the chunk touches, their targets and the
    modification's per-image parameters, plus for each of its B jobs the
    local image index and the sample index. It builds the B modified inputs,
    takes their gradients in one batched call, turns them into contributions
    and folds them per image into (count, sum of interpreted contributions,
    and, if ``with_moments``, mean and sum of squared deviations of the raw
    contributions). Those per-chunk statistics merge exactly across chunks
    (see ``methods.aggregations.RunningStats``), so memory never grows with n.
    """
    image_spec = tf.TensorSpec((None,) + tuple(image_shape), tf.float32)
    param_specs = modification.param_specs(image_shape)

    @tf.function(
        input_signature=[
            image_spec,
            tf.TensorSpec((None,), tf.int32),
            param_specs,
            tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((), tf.int32),
        ]
    )
    def step(images, targets, params, image_index, sample_index, seed):
        inputs = modification.inputs(images, params, image_index, sample_index, seed)
        grads = input_gradients(forward, inputs, tf.gather(targets, image_index), objective)
        contributions = modification.contributions(
            grads, images, params, image_index, sample_index, inputs, seed
        )
        groups = tf.shape(images)[0]
        ones = tf.ones_like(image_index, tf.float32)
        count = tf.math.unsorted_segment_sum(ones, image_index, groups)
        interpreted = tf.math.unsorted_segment_sum(interpretation(contributions), image_index, groups)
        if not with_moments:
            return count, interpreted, tf.zeros_like(interpreted), tf.zeros_like(interpreted)
        safe = tf.reshape(tf.maximum(count, 1.0), [-1, 1, 1, 1])
        mean = tf.math.unsorted_segment_sum(contributions, image_index, groups) / safe
        centred = contributions - tf.gather(mean, image_index)
        m2 = tf.math.unsorted_segment_sum(tf.square(centred), image_index, groups)
        return count, interpreted, mean, m2

    return step
