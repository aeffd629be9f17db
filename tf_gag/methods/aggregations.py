"""How the n interpreted contributions fold into one attribution: part (3).

Statistics accumulate online (`RunningStats`): per image, the count, the sum
of interpreted contributions and, when a variance is needed, the mean and sum
of squared deviations of the raw contributions, merged chunk by chunk with
Chan et al.'s parallel rule. Memory is one image's worth per statistic,
whatever n is.

Aggregations:

* ``Mean``: the mean interpreted contribution (SmoothGrad, IG, ...).
* ``Variance``: the variance (ddof = 1) of the raw contributions (VarGrad).
* ``VarianceGuided``: the mean interpreted contribution times the variance
  guide (Guided AbsoluteGrad; the paper's "G"/"GA" ablations).
"""
import numbers

import tensorflow as tf

from .. import ops

# float32 machine epsilon times a few: the rounding a mean of n values can carry.
_ULPS = 4 * 1.1920929e-07


def merge_moments(a, b):
    """Chan et al.'s parallel rule on two (count, total, mean, m2) statistics of one stream.

    Counts may be Python floats or tensors that broadcast against the others;
    both must be positive. TF ops only, so it also runs in exported graphs.
    """
    count_a, total_a, mean_a, m2_a = a
    count_b, total_b, mean_b, m2_b = b
    combined = count_a + count_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b / combined)
    m2 = m2_a + m2_b + tf.square(delta) * (count_a * count_b / combined)
    return combined, total_a + total_b, mean, m2


def sample_variance(count, mean, m2):
    """Sample variance, ddof = 1, of a stream of ``count`` >= 2 values.

    Deviations below float32 resolution of the mean (a few ulps, e.g. the
    rounding of a mean of identical gradients) count as zero, so the
    variance of a constant stream is exactly 0 rather than amplified
    rounding noise once maps are min-max normalised.
    """
    resolution = count * tf.square(_ULPS * tf.abs(mean))
    return tf.where(m2 <= resolution, 0.0, m2 / (count - 1.0))


class RunningStats:
    """Per-image online statistics of an image's contribution stream."""

    def __init__(self):
        self.count = 0.0
        self.total = None
        self.mean = None
        self.m2 = None

    def merge(self, count, total, mean, m2):
        """Fold in a chunk's statistics for this image (tensors of shape (H, W, C))."""
        count = float(count)
        if count == 0:
            return
        if self.total is None:
            self.count, self.total, self.mean, self.m2 = count, total, mean, m2
            return
        self.count, self.total, self.mean, self.m2 = merge_moments(
            (self.count, self.total, self.mean, self.m2), (count, total, mean, m2)
        )

    def mean_interpreted(self):
        return self.total / self.count

    def variance(self):
        """`sample_variance` of the stream (zero for a single sample)."""
        if self.count < 2:
            return tf.zeros_like(self.m2)
        return sample_variance(self.count, self.mean, self.m2)


class Mean:
    needs_variance = False

    def finalize(self, mean_interpreted, variance):
        return mean_interpreted


class Variance:
    needs_variance = True

    def finalize(self, mean_interpreted, variance):
        return variance


class VarianceGuided:
    """Magnitude guided by variance: ``A * Gd(V)`` (Guided AbsoluteGrad).

    ``Gd = 1`` where the variance V reaches its p-quantile ``q``, and below it
    a value that grows with V:

    * ``guide="scaled"`` (default): ``V / q``, in [0, 1) and continuous at the
      threshold, so the guide is scale invariant (multiplying the model's
      logits by k leaves the map unchanged) and a map is stable under float
      noise at the threshold.
    * ``guide="raw"``: ``V`` itself, the paper's formula as written and the
      reference code's behaviour; its value depends on the gradients' scale.

    ``quantile_over="image"`` (default) takes q over all pixels and channels of
    an image; ``"channel"`` per image and channel, as the reference does.
    ``strict=True`` tests ``V > q`` as the reference does; the default is the
    paper's ``V >= q``. p = 0 gives ``Gd = 1`` everywhere: plain AbsoluteGrad.
    """

    needs_variance = True

    def __init__(self, p=0.85, guide="scaled", quantile_over="image", strict=False):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a quantile in [0, 1] (0.85 is the paper's), got {p!r}")
        if guide not in ("scaled", "raw"):
            raise ValueError(f"guide: expected 'scaled' or 'raw', got {guide!r}")
        if quantile_over not in ("image", "channel"):
            raise ValueError(f"quantile_over: expected 'image' or 'channel', got {quantile_over!r}")
        self.p, self.guide, self.quantile_over, self.strict = float(p), guide, quantile_over, bool(strict)

    def guide_of(self, variance):
        """Gd for an (N, H, W, C) variance batch."""
        n, h, w, c = tf.unstack(tf.shape(variance))
        if self.quantile_over == "image":
            q = ops.quantile(tf.reshape(variance, [n, -1]), self.p, axis=1)
            q = tf.reshape(q, [-1, 1, 1, 1])
        else:
            per_channel = tf.reshape(tf.transpose(variance, [0, 3, 1, 2]), [n, c, -1])
            q = tf.reshape(ops.quantile(per_channel, self.p, axis=2), [-1, 1, 1, c])
        above = variance > q if self.strict else variance >= q
        if self.guide == "raw":
            below = variance
        else:
            below = variance / tf.where(q > 0, q, 1.0)
        return tf.where(above, tf.ones_like(variance), below)

    def finalize(self, mean_interpreted, variance):
        return mean_interpreted * self.guide_of(variance)
