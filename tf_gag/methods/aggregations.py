"""How the n interpreted contributions fold into one attribution: part (3).

An aggregation turns an image's streaming statistics (`tf_gag.moments`: the
mean interpreted contribution and, when it needs one, the sample variance of
the raw contributions) into the attribution:

* ``Mean``: the mean interpreted contribution (SmoothGrad, IG, ...).
* ``Variance``: the variance (ddof = 1) of the raw contributions (VarGrad).
* ``VarianceGuided``: the mean interpreted contribution times the variance
  guide (Guided AbsoluteGrad; the paper's "G"/"GA" ablations).
"""
import numbers

import tensorflow as tf

from .. import ops
from . import moments


def attributions_of(aggregation, statistics):
    """(G, H, W, C) attributions from G streams' merged `tf_gag.moments` statistics."""
    variance = moments.sample_variance(statistics) if aggregation.needs_variance else None
    return aggregation.finalize(moments.mean_interpreted(statistics), variance)


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
