"""Run a modification x interpretation x aggregation over a batch of images.

Images are taken ``batch_size`` at a time (a group). A group's jobs, its
(image, sample) pairs, run sample-major: sample 0 of every image, then
sample 1, ..., cut into chunks of exactly ``batch_size`` forward+backward
passes (the last one may be shorter). A chunk of a full group is one sample
of every image, so a random draw (noise, a baseline) is made once per chunk
and shared - as in the in-graph path (`methods.graph`). Each chunk's per-image
statistics merge into the group's running statistics (`tf_gag.moments`)
inside the compiled step; the group is finalised, in one batched op, when its
last sample is in. Memory holds the chunk and the statistics of one group,
whatever n is; a failure keeps the groups already finished.
"""
import numpy as np
import tensorflow as tf

from . import moments
from ..errors import PartialResultError
from .kernel import compile_gradients, compile_step
from .aggregations import attributions_of


class Pipeline:
    """One gradient method, ready to run on any batch of one image size."""

    def __init__(self, adapter, modification, interpretation, aggregation, *, guided=False, objective="logit"):
        self.adapter = adapter
        self.modification = modification
        self.interpretation = interpretation
        self.aggregation = aggregation
        self.guided = guided
        self.objective = objective
        self._compiled = {}

    def _forward(self, x):
        return self.adapter.forward(x, guided=self.guided)

    def _kernel(self, image_shape):
        key = tuple(image_shape)
        if key not in self._compiled:
            if self.modification.sequential:
                self._compiled[key] = compile_gradients(self._forward, key, self.objective)
            else:
                self._compiled[key] = compile_step(
                    self._forward,
                    self.modification,
                    self.interpretation,
                    self.aggregation.needs_variance,
                    key,
                    self.objective,
                )
        return self._compiled[key]

    def attributions(self, images, targets, *, batch_size, seed, on_progress=None):
        """Raw (N, H, W, C) float32 attributions for validated images and targets."""
        self.modification.validate_image_shape(images.shape[1:])
        result = np.zeros(images.shape, np.float32)
        done = np.zeros(len(images), bool)
        try:
            if self.modification.sequential:
                self._run_sequential(images, targets, batch_size, result, done, on_progress)
            else:
                self._run_chunks(images, targets, batch_size, seed, result, done, on_progress)
        except (tf.errors.OpError, MemoryError) as error:
            raise PartialResultError.after_images("computing attributions", error, result, done) from error
        return result

    def _run_chunks(self, images, targets, batch_size, seed, result, done, on_progress):
        step = self._kernel(images.shape[1:])
        params = tuple(p.numpy() for p in self.modification.params(images))
        n = self.modification.n_jobs
        seed = tf.constant(seed, tf.int32)
        for first in range(0, len(images), batch_size):
            group = np.arange(first, min(first + batch_size, len(images)))
            size, total = len(group), len(group) * n
            group_images = tf.constant(images[group])
            inputs = (group_images, tf.constant(targets[group]), tuple(p[group] for p in params))
            statistics = moments.empty(group_images)
            for start in range(0, total, batch_size):
                jobs = np.arange(start, min(start + batch_size, total))
                statistics = step(
                    *inputs, (jobs % size).astype(np.int32), (jobs // size).astype(np.int32), seed, statistics
                )
                if on_progress is not None:
                    on_progress(len(jobs))
            self._finish(statistics, group, result, done)

    def _run_sequential(self, images, targets, batch_size, result, done, on_progress):
        gradients = self._kernel(images.shape[1:])
        for start in range(0, len(images), batch_size):
            indices = np.arange(start, min(start + batch_size, len(images)))
            chunk_targets = tf.constant(targets[indices])
            statistics = moments.empty(images[indices])
            ones = tf.ones([len(indices)], tf.float32)
            walk = self.modification.walk(images[indices], lambda x: gradients(x, chunk_targets))
            for contributions in walk:
                contributions = tf.constant(contributions)
                step = (ones, self.interpretation(contributions), contributions, tf.zeros_like(contributions))
                statistics = moments.merge(statistics, step)
                if on_progress is not None:
                    on_progress(len(indices))
            self._finish(statistics, indices, result, done)

    def _finish(self, statistics, indices, result, done):
        """Finalise the images ``indices`` from their merged statistics, in one batch."""
        result[indices] = attributions_of(self.aggregation, statistics).numpy()
        done[indices] = True
