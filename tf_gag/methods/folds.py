"""How a method's n contributions per image combine, online: part 5 of a method.

A method's contributions arrive a chunk at a time. A fold keeps a small online
state per image, with named fields, merges each chunk into it (in the compiled
step, in the in-graph loop and in the sequential Guided IG loop alike) and
turns the final state into the attribution. Memory holds one state per image
of a group, whatever n is.

* `Mean`: the mean interpreted contribution (SmoothGrad, IG, ...); state
  ``count, total``.
* `Variance`: the sample variance (ddof = 1) of the raw contributions
  (VarGrad); state ``count, mean, m2``, merged exactly with Chan et al.'s
  parallel rule.
* `VarianceGuided`: the mean interpreted contribution times the variance guide
  (Guided AbsoluteGrad; the paper's "G"/"GA" ablations); both states.
* `Select`: per feature, the contribution of largest magnitude (or value) across
  the n (Geometrically Guided IG); state ``count, best``.

``count`` is a (G,) vector, the other fields (G, H, W, C).
"""
from typing import NamedTuple

import tensorflow as tf

from .. import ops
from ..io.checks import check_choice, check_flag, check_number
from .part import Part

# float32 machine epsilon times a few: the rounding a mean of n values can carry.
_ULPS = 4 * 1.1920929e-07


class MeanState(NamedTuple):
    count: tf.Tensor  # contributions seen per image, (G,)
    total: tf.Tensor  # sum of the interpreted contributions


class MomentsState(NamedTuple):
    count: tf.Tensor
    mean: tf.Tensor  # mean of the raw contributions
    m2: tf.Tensor  # sum of squared deviations from that mean


class GuidedState(NamedTuple):
    count: tf.Tensor
    total: tf.Tensor
    mean: tf.Tensor
    m2: tf.Tensor


def _column(count):
    return tf.reshape(count, [-1, 1, 1, 1])


def _one_each(image_index, groups):
    """True when a chunk holds exactly one job per image, in image order (nothing to group)."""
    size = tf.size(image_index)
    return (size == groups) & tf.reduce_all(image_index == tf.range(size))


def _per_image_sum(values, image_index, groups):
    """Sum of (B, ...) job values per image, (G, ...)."""
    return tf.cond(
        _one_each(image_index, groups),
        lambda: values,
        lambda: tf.math.unsorted_segment_sum(values, image_index, groups),
    )


def _chunk_moments(contributions, image_index, groups):
    """(count, mean, m2) per image of one chunk's raw contributions."""

    def single():
        return tf.ones([groups], tf.float32), contributions, tf.zeros_like(contributions)

    def grouped():
        count = tf.math.unsorted_segment_sum(tf.ones_like(image_index, tf.float32), image_index, groups)
        mean = tf.math.unsorted_segment_sum(contributions, image_index, groups) / _column(tf.maximum(count, 1.0))
        deviations = tf.square(contributions - tf.gather(mean, image_index))
        return count, mean, tf.math.unsorted_segment_sum(deviations, image_index, groups)

    return tf.cond(_one_each(image_index, groups), single, grouped)


def _mean_update(state, contributions, interpretation, image_index):
    """A `MeanState` after one chunk."""
    groups = tf.shape(state.count)[0]
    count = _per_image_sum(tf.ones_like(image_index, tf.float32), image_index, groups)
    total = _per_image_sum(interpretation(contributions), image_index, groups)
    return MeanState(state.count + count, state.total + total)


def merge_moments(a, b):
    """Chan et al.'s parallel rule on two (count, mean, m2) summaries of the same G streams.

    Counts are whole numbers; a stream with count 0 on one side takes the
    other side's statistics unchanged (0 on both sides stays empty).
    """
    count_a, mean_a, m2_a = a
    count_b, mean_b, m2_b = b
    combined = count_a + count_b
    safe = _column(tf.maximum(combined, 1.0))
    delta = mean_b - mean_a
    mean = mean_a + delta * (_column(count_b) / safe)
    m2 = m2_a + m2_b + tf.square(delta) * (_column(count_a * count_b) / safe)
    return combined, mean, m2


def mean_of(count, total):
    """Per-image mean of a running sum; 0 for an image with no contributions."""
    return total / _column(tf.maximum(count, 1.0))


def sample_variance(count, mean, m2):
    """The sample variance (ddof = 1) per image; 0 for fewer than 2 contributions.

    Deviations below float32 resolution of the mean (a few ulps, e.g. the
    rounding of a mean of identical gradients) count as zero, so the
    variance of a constant stream is exactly 0 rather than amplified
    rounding noise once maps are min-max normalised.
    """
    count = _column(count)
    resolution = count * tf.square(_ULPS * tf.abs(mean))
    return tf.where((m2 <= resolution) | (count < 2.0), 0.0, m2 / tf.maximum(count - 1.0, 1.0))


class Fold(Part):
    """Base class: ``empty`` -> ``update`` per chunk -> ``finalize``."""

    state = None  # the NamedTuple of the online state
    min_samples = 1


    def state_specs(self, shape):
        """TensorSpecs of the state for attributions of per-image shape ``shape``."""
        field = tf.TensorSpec((None,) + tuple(shape), tf.float32)
        return self.state(tf.TensorSpec((None,), tf.float32), *([field] * (len(self.state._fields) - 1)))

    def empty(self, count, shape):
        """The state of ``count`` images that have seen nothing, for attributions of per-image ``shape``."""
        zeros = tf.zeros(tf.concat([tf.reshape(count, [1]), tf.constant(shape, tf.int32)], 0), tf.float32)
        return self.state(tf.zeros([count], tf.float32), *([zeros] * (len(self.state._fields) - 1)))

    def update(self, state, contributions, interpretation, image_index):
        """The state after one chunk: ``contributions[j]`` belongs to image ``image_index[j]``."""
        raise NotImplementedError

    def finalize(self, state):
        """(G, ...) attributions from the final state."""
        raise NotImplementedError


class Mean(Fold):
    """The mean interpreted contribution."""

    name = "mean"
    state = MeanState

    def update(self, state, contributions, interpretation, image_index):
        return _mean_update(state, contributions, interpretation, image_index)

    def finalize(self, state):
        return mean_of(state.count, state.total)


class Variance(Fold):
    """The sample variance (ddof = 1) of the raw contributions (VarGrad)."""

    name = "variance"
    state = MomentsState
    min_samples = 2

    def update(self, state, contributions, interpretation, image_index):
        chunk = _chunk_moments(contributions, image_index, tf.shape(state.count)[0])
        return MomentsState(*merge_moments(state, chunk))

    def finalize(self, state):
        return sample_variance(*state)


class VarianceGuided(Fold):
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

    name = "guided"
    options = {"p": 0.85, "guide": "scaled", "quantile_over": "image", "strict": False}
    state = GuidedState
    min_samples = 2

    def __init__(self, p=0.85, guide="scaled", quantile_over="image", strict=False):
        self.p = check_number("p", p, 0, 1, what="a quantile", note=" (the paper's is 0.85)")
        self.guide = check_choice("guide", guide, ("scaled", "raw"))
        self.quantile_over = check_choice("quantile_over", quantile_over, ("image", "channel"))
        self.strict = check_flag("strict", strict)

    def update(self, state, contributions, interpretation, image_index):
        mean = _mean_update(MeanState(state.count, state.total), contributions, interpretation, image_index)
        chunk = _chunk_moments(contributions, image_index, tf.shape(state.count)[0])
        _, moments_mean, m2 = merge_moments((state.count, state.mean, state.m2), chunk)
        return GuidedState(mean.count, mean.total, moments_mean, m2)

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
        below = variance if self.guide == "raw" else variance / tf.where(q > 0, q, 1.0)
        return tf.where(above, tf.ones_like(variance), below)

    def finalize(self, state):
        variance = sample_variance(state.count, state.mean, state.m2)
        return mean_of(state.count, state.total) * self.guide_of(variance)


class SelectState(NamedTuple):
    count: tf.Tensor
    best: tf.Tensor  # per feature, the selected contribution so far


class Select(Fold):
    """Per feature, one contribution out of the n: Geometrically Guided IG's selection across points.

    ``selection="magnitude"`` (default) keeps the interpreted contribution of
    largest magnitude with its sign (of two equal magnitudes, the positive
    one, so the result never depends on how jobs were chunked); ``"max"``
    keeps the largest value. An image with no contribution stays 0.
    """

    name = "select"
    options = {"selection": "magnitude"}
    state = SelectState

    def __init__(self, selection="magnitude"):
        self.selection = check_choice("selection", selection, ("magnitude", "max"))

    def _better(self, candidate, current):
        if self.selection == "max":
            return candidate > current
        return (tf.abs(candidate) > tf.abs(current)) | ((tf.abs(candidate) == tf.abs(current)) & (candidate > current))

    def update(self, state, contributions, interpretation, image_index):
        groups = tf.shape(state.count)[0]
        values = interpretation(contributions)
        count = _per_image_sum(tf.ones_like(image_index, tf.float32), image_index, groups)
        high = tf.math.unsorted_segment_max(values, image_index, groups)
        if self.selection == "max":
            chunk = high
        else:
            low = tf.math.unsorted_segment_min(values, image_index, groups)
            chunk = tf.where(tf.abs(low) > tf.abs(high), low, high)
        seen = _column(count) > 0
        first = _column(state.count) == 0
        best = tf.where(seen & (first | self._better(chunk, state.best)), chunk, state.best)
        return SelectState(state.count + count, best)

    def finalize(self, state):
        return state.best


FOLDS = {cls.name: cls for cls in (Mean, Variance, VarianceGuided, Select)}
