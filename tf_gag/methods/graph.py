"""A method's whole computation as TF ops: every sample of every image inside one graph.

The host-side `Pipeline` streams (image, sample) chunks and merges statistics
in Python, which keeps memory bounded on one device. Where the work must run
inside a graph instead - a TF Serving signature, a `tf.distribute` replica -
`graph_attributions` loops over the n samples with `tf.while_loop`, one batch
of N passes per iteration, merging moments with the same formulas
(`merge_moments`, `sample_variance`) and the same compiled step. Noise and
baselines come from the same stateless seeds, so an image's attributions equal
the host path's.
"""
import tensorflow as tf

from .aggregations import merge_moments, sample_variance
from .gradcam import GradCam


def graph_attributions(engine, seed, image_shape):
    """(images, targets) -> raw (N, H, W, C) attributions (Grad-CAM: (N, H, W, 1)) as TF ops.

    ``engine`` is an Explainer's `Pipeline` or `GradCam`; ``seed`` the
    stateless seed. Methods that choose each step on the host (Guided IG)
    cannot run in a graph: check ``modification.sequential`` first.
    """
    if isinstance(engine, GradCam):
        engine._resolve_layer(tf.zeros((1,) + tuple(image_shape)))
        return engine._kernel(image_shape)
    modification, aggregation = engine.modification, engine.aggregation
    modification.validate_image_shape(image_shape)  # also fixes shape-dependent settings (BlurIG's kernel)
    step = engine._kernel(image_shape)
    n, seed = modification.n_jobs, tf.constant(seed, tf.int32)

    def attributions(images, targets):
        params = modification.params(images)
        index = tf.range(tf.shape(images)[0], dtype=tf.int32)

        def sample(k):  # one sample of every image: a batch of N passes
            _, interpreted, contribution, _ = step(images, targets, params, index, tf.fill(tf.shape(index), k), seed)
            return interpreted, contribution

        total, mean = sample(tf.constant(0, tf.int32))
        m2 = tf.zeros_like(mean)

        def body(k, total, mean, m2):
            interpreted, contribution = sample(k)
            count = tf.cast(k, tf.float32)
            _, total, mean, m2 = merge_moments((count, total, mean, m2), (1.0, interpreted, contribution, 0.0))
            return k + 1, total, mean, m2

        _, total, mean, m2 = tf.while_loop(lambda k, *_: k < n, body, (tf.constant(1, tf.int32), total, mean, m2))
        variance = sample_variance(float(n), mean, m2) if n > 1 else tf.zeros_like(m2)
        return aggregation.finalize(total / n, variance if aggregation.needs_variance else None)

    return attributions
