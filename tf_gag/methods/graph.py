"""A method's whole computation as TF ops: every sample of every image inside one graph.

The host-side `Pipeline` streams groups of images through the compiled step
chunk by chunk, which keeps memory bounded on one device. Where the work must
run inside a graph instead - a TF Serving signature, a `tf.distribute`
replica - `graph_attributions` loops over the n samples with `tf.while_loop`,
one batch of N passes per iteration, through the same compiled step and its
merge of the running statistics (`tf_gag.moments`). Noise and baselines come
from the same stateless seeds, so an image's attributions equal the host
path's.
"""
import tensorflow as tf

from . import moments
from .aggregations import attributions_of
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

        def body(k, statistics):  # one sample of every image: a batch of N passes
            merged = step(images, targets, params, index, tf.fill(tf.shape(index), k), seed, statistics)
            # The step's signature forgets static shapes; the loop needs them unchanged.
            return k + 1, tf.nest.map_structure(lambda new, old: tf.ensure_shape(new, old.shape), merged, statistics)

        _, statistics = tf.while_loop(lambda k, _: k < n, body, (tf.constant(0, tf.int32), moments.empty(images)))
        return attributions_of(aggregation, statistics)

    return attributions
