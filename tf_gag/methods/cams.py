"""CAM weightings: how a layer source's activations and gradients become a coarse map.

A layer source (`tf_gag.methods.sources.Layer`) captures a layer's
activations A (N, h, w, K) and the gradient g = d score / d A. A CAM weighting
turns them into the coarse heat map ReLU(sum_k weight_k A_k) (or a per-pixel
variant), which the source then upsamples bilinearly to the image size. The
formulas follow pytorch-grad-cam (``grad-cam`` 1.5.7; REFERENCE §10), whose
epsilons they keep:

===============  ==============================================================
``grad_cam``     weight_k = mean_hw g_k (Selvaraju et al. 2017)
``grad_cam_pp``  alpha = g^2 / (2 g^2 + (sum_hw A_k) g^3 + 1e-6), 0 where g = 0;
                 weight_k = sum_hw alpha ReLU(g) (Chattopadhay et al. 2018)
``xgrad_cam``    weight_k = sum_hw g_k A_k / (sum_hw A_k + 1e-7) (Fu et al. 2020)
``hires_cam``    ReLU(sum_k g_k A_k) per pixel (Draelos & Carin 2020)
``layer_cam``    ReLU(sum_k ReLU(g_k) A_k) per pixel (Jiang et al. 2021)
``score_cam``    weight = softmax over k of the target logit on x * M_k, M_k = A_k
                 upsampled and min-max normalised (Wang et al. 2020, as
                 pytorch-grad-cam computes it); no gradient is used
===============  ==============================================================

A weighting works on any captured tensor the source reads as a map: a CNN
layer, an imported model's feature tensor, or a vision transformer's token
grid. Each is a part with its own options; `CAMS` names them.
"""
import numpy as np
import tensorflow as tf

from ..io.checks import check_choice, check_int
from .part import Part


class CAMWeighting(Part):
    """Base: ``heat(grads, activations, jobs) -> (B, h, w, 1)``, the coarse map before upsampling.

    A weighting that reads only activations (Score-CAM) leaves the gradient
    unused, and the compiled step prunes its backward pass.
    """

    def heat(self, grads, activations, jobs):
        """The rectified coarse map of each job from (B, h, w, K) gradients and activations."""
        return tf.nn.relu(tf.reduce_sum(self.weights(grads, activations, jobs) * activations, axis=-1, keepdims=True))

    def weights(self, grads, activations, jobs):
        """(B, 1, 1, K) channel weights (or (B, h, w, K) per-pixel ones)."""
        raise NotImplementedError


def _spatial_sum(x):
    return tf.reduce_sum(x, axis=[1, 2], keepdims=True)


class GradCAM(CAMWeighting):
    """Grad-CAM: each channel weighted by its spatially averaged gradient."""

    name = "grad_cam"

    def weights(self, grads, activations, jobs):
        return tf.reduce_mean(grads, axis=[1, 2], keepdims=True)


class GradCAMPlusPlus(CAMWeighting):
    """Grad-CAM++: positive gradients weighted by the second/third-order alpha (pytorch-grad-cam's form, with g
    in place of exp(score) derivatives)."""

    name = "grad_cam_pp"

    def weights(self, grads, activations, jobs):
        square = tf.square(grads)
        alpha = square / (2.0 * square + _spatial_sum(activations) * square * grads + 1e-6)
        alpha = tf.where(grads != 0.0, alpha, 0.0)
        return _spatial_sum(alpha * tf.nn.relu(grads))


class XGradCAM(CAMWeighting):
    """XGrad-CAM: gradients weighted by the activations' share of the channel's total."""

    name = "xgrad_cam"

    def weights(self, grads, activations, jobs):
        return _spatial_sum(grads * activations / (_spatial_sum(activations) + 1e-7))


class HiResCAM(CAMWeighting):
    """HiResCAM: gradient times activation per pixel, summed over channels (Grad-CAM's map when g is constant over
    the map, as behind global average pooling)."""

    name = "hires_cam"

    def weights(self, grads, activations, jobs):
        return grads


class LayerCAM(CAMWeighting):
    """LayerCAM: positive gradient times activation per pixel, summed over channels."""

    name = "layer_cam"

    def weights(self, grads, activations, jobs):
        return tf.nn.relu(grads)


def _align_corners(size, new_size):
    """(new_size, size) matrix of bilinear upsampling with aligned corners (``UpsamplingBilinear2d``'s rule).

    Output i samples input position i (size - 1) / (new_size - 1), so both
    corner pixels map onto each other exactly.
    """
    position = np.arange(new_size) * ((size - 1) / max(new_size - 1, 1))
    low = np.minimum(np.floor(position).astype(int), size - 1)
    high = np.minimum(low + 1, size - 1)
    weight = position - low
    matrix = np.zeros((new_size, size), np.float64)
    np.add.at(matrix, (np.arange(new_size), low), 1.0 - weight)
    np.add.at(matrix, (np.arange(new_size), high), weight)
    return tf.constant(matrix, tf.float32)


class ScoreCAM(CAMWeighting):
    """Score-CAM: each channel weighted by the model's score on the image masked by that channel.

    M_k is A_k upsampled to the input size (bilinear with aligned corners, as
    pytorch-grad-cam's ``UpsamplingBilinear2d``) and min-max normalised (+1e-8);
    the masked input is ``x * M_k`` in the model's input space.
    ``convention``: ``"library"`` (default) weights the channels as
    pytorch-grad-cam does, by the softmax over the K channels of the target's
    logits; ``"paper"`` (Wang et al. 2020) by the target's softmax probability
    on ``x * M_k`` minus its probability on a zero input (the baseline).
    ``mask_batch``: masked images per forward pass; the K masks of all jobs of
    a chunk are cut into batches of that size, across masks and images. Costs
    K forward passes per image
    and no gradient.
    """

    name = "score_cam"
    options = {"convention": "library", "mask_batch": 32}

    def __init__(self, convention="library", mask_batch=32):
        self.convention = check_choice("convention", convention, ("library", "paper"))
        self.mask_batch = check_int("mask_batch", mask_batch, 1)

    def weights(self, grads, activations, jobs):
        inputs = jobs.inputs
        rows_up = _align_corners(activations.shape[1], inputs.shape[1])
        columns_up = _align_corners(activations.shape[2], inputs.shape[2])
        jobs_count, channels = tf.shape(activations)[0], tf.shape(activations)[3]
        total = jobs_count * channels
        batch = self.mask_batch

        def body(start, scores):
            rows = tf.range(start, tf.minimum(start + batch, total))
            job, channel = rows // channels, rows % channels
            maps = tf.gather_nd(tf.transpose(activations, [0, 3, 1, 2]), tf.stack([job, channel], axis=1))
            masks = tf.einsum("Hh,mhw,Ww->mHW", rows_up, maps, columns_up)[..., None]
            low = tf.reduce_min(masks, axis=[1, 2, 3], keepdims=True)
            high = tf.reduce_max(masks, axis=[1, 2, 3], keepdims=True)
            masked = tf.gather(inputs, job) * ((masks - low) / (high - low + 1e-8))
            logits = jobs.forward(masked, tuple(tf.gather(c, job) for c in jobs.context))
            targets = tf.gather(jobs.targets, job)
            if self.convention == "paper":
                logits = tf.nn.softmax(logits, axis=-1)
            return start + batch, scores.write(start // batch, tf.gather(logits, targets, axis=1, batch_dims=1))

        count = (total + batch - 1) // batch
        scores = tf.TensorArray(tf.float32, size=count, infer_shape=False, element_shape=tf.TensorShape([None]))
        _, scores = tf.while_loop(lambda start, _: start < total, body, (tf.constant(0, tf.int32), scores))
        scores = tf.reshape(scores.concat(), [jobs_count, channels])
        if self.convention == "library":
            weights = tf.nn.softmax(scores, axis=-1)
        else:
            baseline = tf.nn.softmax(jobs.forward(tf.zeros_like(inputs), jobs.context), axis=-1)
            weights = scores - tf.gather(baseline, jobs.targets, axis=1, batch_dims=1)[:, None]
        return tf.reshape(weights, [jobs_count, 1, 1, channels])


CAMS = {cls.name: cls for cls in (GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, ScoreCAM)}
