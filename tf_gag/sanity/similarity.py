"""How similar two batches of saliency maps are, per image, as batched TF ops.

The three measures of Adebayo et al. ("Sanity Checks for Saliency Maps",
NeurIPS 2018), computed between a model's maps and those of its randomized
or perturbed copy:

* ``spearman_abs``: Spearman rank correlation of the absolute maps;
* ``spearman``: Spearman rank correlation of the signed maps;
* ``ssim``: structural similarity (``tf.image.ssim``) of the absolute maps,
  each min-max normalised to [0, 1].

Ties get average ranks, as Spearman's coefficient defines them. A constant
map has no ranks to correlate: its Spearman correlation is reported as 0 (no
shared ordering), never NaN; `constant_maps` says where that happened.
"""
import tensorflow as tf

from .. import ops

#: The similarity measures, in the order results report them.
SIMILARITIES = ("spearman_abs", "spearman", "ssim")


def _average_ranks(values):
    """(N, P) -> (N, P) float64 ranks, ties sharing the mean of their positions."""
    ordered = tf.sort(values, axis=-1)
    low = tf.searchsorted(ordered, values, side="left")
    high = tf.searchsorted(ordered, values, side="right")
    return tf.cast(low + high, tf.float64) / 2.0


def spearman(a, b):
    """Per-image Spearman rank correlation of two (N, H, W) map batches: float64 (N,); 0 where a map is constant."""
    a, b = (tf.reshape(tf.convert_to_tensor(m, tf.float32), [tf.shape(m)[0], -1]) for m in (a, b))
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= tf.reduce_mean(ra, axis=-1, keepdims=True)
    rb -= tf.reduce_mean(rb, axis=-1, keepdims=True)
    scale = tf.sqrt(tf.reduce_sum(ra * ra, axis=-1) * tf.reduce_sum(rb * rb, axis=-1))
    return tf.where(scale > 0, tf.reduce_sum(ra * rb, axis=-1) / tf.where(scale > 0, scale, 1.0), 0.0)


def ssim(a, b):
    """Per-image SSIM of two (N, H, W) map batches after min-max normalising each map: float32 (N,).

    Uses ``tf.image.ssim`` (Gaussian window 11, sigma 1.5), the window
    shrunk to the map when a map is smaller than 11 pixels.
    """
    a, b = ops.normalize_maps(a), ops.normalize_maps(b)
    size = min(11, int(a.shape[1]), int(a.shape[2]))
    return tf.image.ssim(a[..., None], b[..., None], max_val=1.0, filter_size=size)


def constant_maps(maps):
    """(N,) bool: which (N, H, W) maps are constant (their Spearman correlation is reported as 0)."""
    maps = tf.convert_to_tensor(maps, tf.float32)
    return tf.reduce_max(maps, axis=[1, 2]) == tf.reduce_min(maps, axis=[1, 2])


def similarities(reference, other):
    """{measure: (N,) numpy} between two (N, H, W, C) attribution batches, for every measure in `SIMILARITIES`."""
    reference, other = tf.convert_to_tensor(reference, tf.float32), tf.convert_to_tensor(other, tf.float32)
    signed = [tf.reduce_sum(m, axis=-1) for m in (reference, other)]
    absolute = [ops.reduce_channels(m) for m in (reference, other)]
    return {
        "spearman_abs": spearman(*absolute).numpy(),
        "spearman": spearman(*signed).numpy(),
        "ssim": ssim(*absolute).numpy().astype("float64"),
    }
