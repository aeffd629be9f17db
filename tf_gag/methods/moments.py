"""Streaming per-image statistics of a method's contributions, as batched TF ops.

A method's n contributions per image arrive a chunk at a time. Each image's
stream is summarised by ``(count, total, mean, m2)``: how many contributions
arrived, the sum of their interpreted values, and the mean and sum of squared
deviations of the raw values. Chunks merge exactly with Chan et al.'s
parallel rule, so memory holds one image's worth per statistic whatever n is,
and the merge runs inside the compiled step (`gradients.compile_step`), the
in-graph method (`methods.graph`) and the sequential Guided IG loop alike.
``count`` is a (G,) vector, the others (G, H, W, C).
"""
import tensorflow as tf

# float32 machine epsilon times a few: the rounding a mean of n values can carry.
_ULPS = 4 * 1.1920929e-07


def empty(images):
    """The statistics of G streams that have seen nothing yet, for a (G, H, W, C) batch."""
    zeros = tf.zeros_like(images, tf.float32)
    return tf.zeros(tf.shape(images)[:1], tf.float32), zeros, zeros, zeros


def _column(count):
    return tf.reshape(count, [-1, 1, 1, 1])


def merge(a, b):
    """Chan et al.'s parallel rule on two ``(count, total, mean, m2)`` statistics of the same G streams.

    Counts are whole numbers; a stream with count 0 on one side takes the
    other side's statistics unchanged (0 on both sides stays empty).
    """
    count_a, total_a, mean_a, m2_a = a
    count_b, total_b, mean_b, m2_b = b
    combined = count_a + count_b
    safe = _column(tf.maximum(combined, 1.0))
    delta = mean_b - mean_a
    mean = mean_a + delta * (_column(count_b) / safe)
    m2 = m2_a + m2_b + tf.square(delta) * (_column(count_a * count_b) / safe)
    return combined, total_a + total_b, mean, m2


def mean_interpreted(statistics):
    """The mean interpreted contribution of each stream, (G, H, W, C)."""
    count, total, _, _ = statistics
    return total / _column(tf.maximum(count, 1.0))


def sample_variance(statistics):
    """The sample variance (ddof = 1) of each stream's raw contributions; 0 for fewer than 2.

    Deviations below float32 resolution of the mean (a few ulps, e.g. the
    rounding of a mean of identical gradients) count as zero, so the
    variance of a constant stream is exactly 0 rather than amplified
    rounding noise once maps are min-max normalised.
    """
    count, _, mean, m2 = statistics
    count = _column(count)
    resolution = count * tf.square(_ULPS * tf.abs(mean))
    return tf.where((m2 <= resolution) | (count < 2.0), 0.0, m2 / tf.maximum(count - 1.0, 1.0))
