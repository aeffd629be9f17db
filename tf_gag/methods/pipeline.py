"""Run a modification x interpretation x aggregation over a batch of images.

Jobs are the (image, sample) pairs in image-major order; they are cut into
chunks of exactly ``batch_size`` forward+backward passes (the last one may be
shorter), so a chunk can hold several images or part of one. Each chunk's
per-image statistics merge into that image's `RunningStats`; an image is
finalised as soon as its last sample is in. Memory holds the chunk and the
statistics of the (at most ceil(batch_size / n) + 1) images in flight.
"""
import numpy as np
import tensorflow as tf

from ..errors import PartialResultError
from ..gradients import compile_gradients, compile_step
from .aggregations import RunningStats


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

    def _finish(self, stats, indices, result, done):
        mean = tf.stack([stats[i].mean_interpreted() for i in indices])
        variance = tf.stack([stats[i].variance() for i in indices]) if self.aggregation.needs_variance else None
        result[indices] = self.aggregation.finalize(mean, variance).numpy()
        done[indices] = True
        for i in indices:
            del stats[i]

    def _run_chunks(self, images, targets, batch_size, seed, result, done, on_progress):
        step = self._kernel(images.shape[1:])
        params = tuple(p.numpy() for p in self.modification.params(images))
        n = self.modification.n_jobs
        total = len(images) * n
        stats = {}
        seed = tf.constant(seed, tf.int32)
        for start in range(0, total, batch_size):
            jobs = np.arange(start, min(start + batch_size, total))
            owner = jobs // n
            touched = np.unique(owner)
            local = np.searchsorted(touched, owner).astype(np.int32)
            count, interpreted, mean, m2 = step(
                images[touched],
                targets[touched],
                tuple(p[touched] for p in params),
                local,
                (jobs % n).astype(np.int32),
                seed,
            )
            counts = count.numpy()
            for j, i in enumerate(touched):
                stats.setdefault(i, RunningStats()).merge(counts[j], interpreted[j], mean[j], m2[j])
            finished = [i for i in touched if stats[i].count == n]
            if finished:
                self._finish(stats, finished, result, done)
            if on_progress is not None:
                on_progress(len(jobs))

    def _run_sequential(self, images, targets, batch_size, result, done, on_progress):
        gradients = self._kernel(images.shape[1:])
        for start in range(0, len(images), batch_size):
            indices = list(range(start, min(start + batch_size, len(images))))
            chunk_targets = tf.constant(targets[indices])
            stats = {i: RunningStats() for i in indices}
            walk = self.modification.walk(images[indices], lambda x: gradients(x, chunk_targets))
            for contributions in walk:
                contributions = tf.constant(contributions)
                interpreted = self.interpretation(contributions)
                zeros = tf.zeros_like(contributions[0])
                for j, i in enumerate(indices):
                    stats[i].merge(1.0, interpreted[j], contributions[j], zeros)
                if on_progress is not None:
                    on_progress(len(indices))
            self._finish(stats, indices, result, done)
