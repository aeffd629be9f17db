"""Grad-CAM (Selvaraju et al., 2017) with the layer captured during the forward pass.

The target layer's output is recorded in the same forward pass that yields
the logits (no sub-model, so a layer inside a nested backbone works), its
gradient is averaged over space into channel weights, and
``ReLU(sum_k w_k A_k)`` is upsampled bilinearly to the input size. Feature
maps are taken to be channels-last (N, h, w, c), Keras' layout.
"""
import numpy as np
import tensorflow as tf

from ..errors import PartialResultError
from .kernel import class_scores


class GradCam:
    """Grad-CAM maps for a `ModelAdapter`'s Keras model.

    ``layer``: a layer name, a path through nested models
    ('backbone/out_relu'), a layer object, or None for the last layer that
    outputs a 4-D feature map in the forward pass (found on the first batch).
    """

    def __init__(self, adapter, layer=None, objective="logit"):
        if adapter.kind not in ("keras", "imported"):
            raise ValueError(
                "method: Grad-CAM needs a Keras model whose layers can be captured, or a model imported with "
                f"tf_gag.load_model; got a {adapter.kind} model"
            )
        self.adapter = adapter
        if adapter.kind == "imported":
            # The converter split the graph at one feature tensor: that is the layer Grad-CAM can use.
            name = adapter.metadata.get("gradcam", {}).get("tensor", "features")
            if layer not in (None, name):
                raise ValueError(f"layer: this imported model was split at {name!r} for Grad-CAM; got {layer!r}")
            self.layer = name
        else:
            self.layer = None if layer is None else adapter.find_layer(layer)
        self.objective = objective
        self._compiled = {}

    def _resolve_layer(self, sample):
        if self.layer is None:
            spatial = self.adapter.spatial_layers(sample)
            if not spatial:
                paths = [path for path, _ in self.adapter.layers()]
                raise ValueError(
                    "layer: the model has no layer with a 4-D (N, h, w, c) output for Grad-CAM; "
                    f"pass layer= one of {paths}"
                )
            self.layer = spatial[-1][1]
        return self.layer

    def _kernel(self, image_shape):
        key = tuple(image_shape)
        if key not in self._compiled:
            layer = self.layer

            @tf.function(
                input_signature=[
                    tf.TensorSpec((None,) + key, tf.float32),
                    tf.TensorSpec((None,), tf.int32),
                ]
            )
            def cam(images, targets):
                with tf.GradientTape() as tape:
                    tape.watch(images)
                    logits, activations = self.adapter.forward(images, capture=layer)
                    scores = class_scores(logits, targets, self.objective)
                grads = tape.gradient(scores, activations)
                if activations.shape.rank != 4:
                    raise ValueError(
                        f"layer: {getattr(layer, 'name', layer)!r} outputs rank {activations.shape.rank}, Grad-CAM needs "
                        "a 4-D (N, h, w, c) feature map"
                    )
                weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
                heat = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1, keepdims=True))
                return tf.image.resize(heat, key[:2], method="bilinear")

            self._compiled[key] = cam
        return self._compiled[key]

    def attributions(self, images, targets, *, batch_size, on_progress=None):
        """(N, H, W, 1) upsampled, non-negative Grad-CAM heatmaps."""
        self._resolve_layer(images[:1])
        kernel = self._kernel(images.shape[1:])
        result = np.zeros(images.shape[:3] + (1,), np.float32)
        done = np.zeros(len(images), bool)
        for start in range(0, len(images), batch_size):
            stop = min(start + batch_size, len(images))
            try:
                result[start:stop] = kernel(images[start:stop], targets[start:stop]).numpy()
            except (tf.errors.OpError, MemoryError) as error:
                raise PartialResultError.after_images("Grad-CAM", error, result, done) from error
            done[start:stop] = True
            if on_progress is not None:
                on_progress(stop - start)
        return result
