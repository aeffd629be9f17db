"""Small batched TensorFlow ops shared by the methods and the metrics.

Every op here works on a whole batch at once and runs on whatever device
TensorFlow placed its inputs on.
"""
import numpy as np
import tensorflow as tf


def sort(values, axis=-1):
    """``values`` sorted ascending along ``axis``.

    ``tf.sort`` everywhere except on an eager CPU tensor, which numpy sorts
    (the same values in the same order): TensorFlow's CPU sort runs as a full
    ``top_k`` and takes about 12 times as long (30 ms against 2.5 ms for 16
    maps of 224 x 224 on this project's 2-core machine), which showed as
    most of RCAP's and GAG's overhead beyond their model passes. Inside
    graphs (serving, replicas) and on accelerators it stays ``tf.sort``.
    """
    values = tf.convert_to_tensor(values)
    if tf.executing_eagerly() and tf.DeviceSpec.from_string(values.device).device_type == "CPU":
        return tf.constant(np.sort(values.numpy(), axis=axis))
    return tf.sort(values, axis=axis)


def quantile(values, q, axis=-1):
    """The ``q``-quantile (0 <= q <= 1) of ``values`` along ``axis``.

    Linear interpolation between the two nearest order statistics, the rule
    numpy's ``np.quantile`` uses by default (and the reference code's
    ``torch.quantile``). The reduced axis is dropped.
    """
    values = tf.convert_to_tensor(values)
    values = sort(values, axis=axis)
    n = tf.shape(values)[axis]
    position = tf.cast(q, values.dtype) * tf.cast(n - 1, values.dtype)
    lower = tf.cast(tf.floor(position), tf.int32)
    upper = tf.minimum(lower + 1, n - 1)
    weight = position - tf.cast(lower, values.dtype)
    low = tf.gather(values, lower, axis=axis)
    high = tf.gather(values, upper, axis=axis)
    return low + weight * (high - low)


def reduce_channels(attributions):
    """(N, H, W, C) attributions -> (N, H, W) by summing absolute values over channels."""
    return tf.reduce_sum(tf.abs(attributions), axis=-1)


def normalize_maps(maps):
    """Min-max normalise each (H, W) map of an (N, H, W) batch to [0, 1].

    A constant map has no range; it becomes all zeros (the reference code
    produces NaN there and then replaces NaN by 0, so the outcome is the same
    without a NaN ever existing).
    """
    maps = tf.convert_to_tensor(maps, tf.float32)
    low = tf.reduce_min(maps, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(maps, axis=[1, 2], keepdims=True)
    span = high - low
    return tf.where(span > 0, (maps - low) / tf.where(span > 0, span, 1.0), 0.0)


def gaussian_kernels_1d(sigmas, radius):
    """One normalised 1-D Gaussian kernel of length ``2 * radius + 1`` per sigma.

    A sigma of 0 gives the identity kernel (a single 1 in the centre).
    Returns (len(sigmas), 2 * radius + 1).
    """
    sigmas = tf.reshape(tf.cast(sigmas, tf.float32), [-1, 1])
    offsets = tf.cast(tf.range(-radius, radius + 1), tf.float32)[tf.newaxis, :]
    safe = tf.maximum(sigmas, 1e-12)
    weights = tf.exp(-0.5 * tf.square(offsets / safe))
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    identity = tf.cast(tf.equal(offsets, 0.0), tf.float32)
    return tf.where(sigmas > 1e-6, weights, identity)


def gaussian_blur(images, sigmas, radius, padding="SYMMETRIC"):
    """Blur each image of an (B, H, W, C) batch with its own Gaussian sigma.

    Separable convolution with a kernel truncated at ``radius`` pixels.
    ``padding="SYMMETRIC"`` mirrors with the edge pixel repeated, like
    ``scipy.ndimage.gaussian_filter(mode="reflect")``; ``"REFLECT"`` mirrors
    without repeating it, like torchvision's ``GaussianBlur``. ``radius``
    must be smaller than both H and W (the padding mirrors the image).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    kernels = gaussian_kernels_1d(sigmas, radius)  # (B, K)
    # Fold batch into channels so every image gets its own depthwise kernel.
    folded = tf.transpose(images, [1, 2, 0, 3])
    folded = tf.reshape(folded, [1, height, width, batch * channels])
    per_channel = tf.repeat(kernels, channels, axis=0)  # (B*C, K)
    k = 2 * radius + 1
    column = tf.reshape(tf.transpose(per_channel), [k, 1, -1, 1])
    row = tf.reshape(tf.transpose(per_channel), [1, k, -1, 1])
    padded = tf.pad(folded, [[0, 0], [radius, radius], [0, 0], [0, 0]], mode=padding)
    folded = tf.nn.depthwise_conv2d(padded, column, [1, 1, 1, 1], "VALID")
    padded = tf.pad(folded, [[0, 0], [0, 0], [radius, radius], [0, 0]], mode=padding)
    folded = tf.nn.depthwise_conv2d(padded, row, [1, 1, 1, 1], "VALID")
    out = tf.reshape(folded, [height, width, batch, channels])
    return tf.transpose(out, [2, 0, 1, 3])
