"""Compose partly revealed images from saliency maps and score them in batches.

RCAP, deletion and insertion all ask a model the same question: for image i
and step k, what is the probability of the target class for the image that
shows ``reveal_i`` on the map's most salient pixels and ``hide_i`` elsewhere?

    composite_ik = where(M_i ⋈ t_ik, reveal_i, hide_i)

Each map is sorted once and every step's threshold t_ik is read from the
sorted values; the composites of a chunk of (image, step) jobs are built as
masks in one op and scored with one batched model call. The comparison ⋈ is
the single tie rule of every metric (``convention``):

* ``"paper"``: ``M >= t``, with t the value of the c-th most salient pixel
  for a step meant to reveal c pixels (c = ceil(fraction x pixels)). Pixels
  tied with it join the step: a step reveals at least c pixels.
* ``"reference"``: ``M > t``, with t the PyTorch reference's order statistic
  ``sort(M)[floor(p * P) - 1]`` for percentile p = 1 - fraction, computed in
  float32 as mlxops-xai 0.4.0 does. Tied pixels wait for a later step: a step
  reveals at most c pixels.

Without ties both conventions reveal exactly the same pixels.
"""
import math

import numpy as np
import tensorflow as tf

from .. import ops
from ..distribute import SplitRunner, replicas
from ..reuse import PerKey

CONVENTIONS = ("paper", "reference")


def check_convention(convention):
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {list(CONVENTIONS)}, got {convention!r}")
    return convention


def step_thresholds(maps, fractions, convention):
    """(N, K) thresholds that reveal each fraction of each (H, W) map's pixels.

    ``fractions`` are the K fractions of pixels to reveal, in [0, 1]. A
    fraction of 0 reveals nothing under both conventions.
    """
    maps = tf.convert_to_tensor(maps, tf.float32)
    pixels = int(maps.shape[1]) * int(maps.shape[2])
    flat = tf.reshape(maps, [-1, pixels])
    ascending = ops.sort(flat, axis=1)
    fractions = np.asarray(fractions, np.float64)
    if convention == "paper":
        counts = np.array([math.ceil(round(f * pixels, 6)) for f in fractions], np.int64)
        # The c-th most salient value is ascending[P - c]; c = 0 reveals nothing.
        positions = np.clip(pixels - counts, 0, pixels - 1)
        thresholds = tf.gather(ascending, positions, axis=1)
        return tf.where(tf.constant(counts > 0)[tf.newaxis, :], thresholds, np.inf)
    percentiles = (1.0 - fractions).astype(np.float32)
    positions = np.floor(percentiles * np.float32(pixels)).astype(np.int64) - 1
    return tf.gather(ascending, np.clip(positions, 0, pixels - 1), axis=1)


def revealed(maps, thresholds, convention):
    """(N, K, H, W) boolean masks: which pixels each step reveals."""
    maps = tf.convert_to_tensor(maps, tf.float32)[:, tf.newaxis]
    thresholds = tf.convert_to_tensor(thresholds, tf.float32)[:, :, tf.newaxis, tf.newaxis]
    return maps > thresholds if convention == "reference" else maps >= thresholds


class RevealScorer:
    """Target-class probabilities of composite images, ``batch_size`` model calls at a time.

    One compiled function per image size; its batch dimension is free, so
    chunks of any length reuse it. With a ``strategy`` (`tf.distribute`),
    each replica scores one of the chunks one device would score in turn,
    so the probabilities are the same (`tf_gag.distribute`).
    """

    def __init__(self, adapter, strategy=None):
        self.adapter = adapter
        self.strategy = strategy
        self._compiled = PerKey(self._compile_score)

    def _compile_score(self, key):
        image_shape, batch_size = key
        images = tf.TensorSpec((None,) + image_shape, tf.float32)
        maps = tf.TensorSpec((None,) + image_shape[:2], tf.float32)
        index = tf.TensorSpec((None,), tf.int32)
        spec = [index, tf.TensorSpec((None,), tf.float32), index, images, images, maps, tf.TensorSpec((), tf.bool),
                self.adapter.context_specs()]

        @tf.function(input_signature=spec)
        def score(image_index, thresholds, targets, reveal, hide, maps, strict, context):
            def rows(x):  # each job's image; a one-row reveal or hide (black, a fill) serves every image
                return tf.gather(x, tf.minimum(image_index, tf.shape(x)[0] - 1))

            t = thresholds[:, tf.newaxis, tf.newaxis]
            job_maps = rows(maps)
            mask = tf.where(strict, job_maps > t, job_maps >= t)[..., tf.newaxis]
            others = tuple(rows(c) for c in context)  # only the explained image is revealed or deleted
            outputs = self.adapter.forward(tf.where(mask, rows(reveal), rows(hide)), context=others)
            return tf.gather(self.adapter.probabilities(outputs), targets, batch_dims=1)

        return SplitRunner(self.strategy, score, batch_size, shared_count=5)

    def bound(self, context):
        """This scorer with a multi-input model's other inputs for the images scored next (one row each)."""
        return _Bound(self, tuple(context))

    def probabilities(self, reveal, hide, maps, thresholds, targets, *, convention, batch_size, context=()):
        """(N, K) probabilities of the target class for every image i and step k.

        Args:
          reveal, hide: float32 (N, H, W, C) arrays, or one value for every
            image broadcastable to (H, W, C) (a colour, a black image).
          maps: (N, H, W) saliency maps.
          thresholds: (N, K) from `step_thresholds`.
          targets: (N,) class ids.
          context: a multi-input model's other inputs, (N, ...) each.

        The images, maps and fills enter the compiled function once per call
        as tensors; each chunk of (image, step) jobs passes only indices,
        thresholds and targets, and is composed inside the graph.
        """
        maps = np.asarray(maps, np.float32)
        thresholds = np.asarray(thresholds, np.float32)
        n, k = thresholds.shape
        image_shape = tuple(np.broadcast_shapes(np.shape(reveal), np.shape(hide))[1:])
        shared = (_per_image(reveal, n, image_shape), _per_image(hide, n, image_shape), tf.constant(maps),
                  tf.constant(convention == "reference"), tuple(tf.constant(c) for c in context))
        score = self._compiled.get((image_shape, batch_size))
        image_of = np.repeat(np.arange(n, dtype=np.int32), k)
        target_of = np.repeat(np.asarray(targets, np.int32), k)
        flat_thresholds = thresholds.reshape(-1)
        out = np.empty(n * k, np.float64)
        chunk = batch_size * replicas(self.strategy)
        for start in range(0, n * k, chunk):
            jobs = slice(start, min(start + chunk, n * k))
            out[jobs] = score(image_of[jobs], flat_thresholds[jobs], target_of[jobs], *shared).numpy()
        return out.reshape(n, k)


class _Bound:
    """`RevealScorer.probabilities` with the other inputs of a batch's images filled in (`RevealScorer.bound`)."""

    def __init__(self, scorer, context):
        self.scorer, self.context = scorer, context

    def probabilities(self, *args, **kwargs):
        return self.scorer.probabilities(*args, context=self.context, **kwargs)


def _per_image(values, n, image_shape):
    """``values`` as a float32 tensor of n rows (one per image) or of 1 row (one for all images)."""
    values = np.asarray(values, np.float32)
    rows = n if values.ndim == 4 and values.shape[0] == n else 1
    return tf.constant(np.broadcast_to(values, (rows,) + image_shape))
