"""Saliency maps against ground-truth object masks: log-cosh Dice loss and MAE.

Both compare the continuous map p in [0, 1] with a mask y, per image; lower
is better.

* log-cosh Dice loss: ``dice = (2 * sum(y * p) + 1) / (sum(y) + sum(p) + 1)``,
  ``L = log(cosh(1 - dice))`` (smoothing 1, as the reference).
* MAE: ``mean(|p - y|)``. The paper's tables report its square root under the
  name MAE; tf_gag names that ``sqrt_mae``.
"""
import tensorflow as tf


def _pair(maps, masks):
    return tf.convert_to_tensor(maps, tf.float64), tf.convert_to_tensor(masks, tf.float64)


def log_cosh_dice(maps, masks):
    """(N,) log-cosh Dice loss of (N, H, W) maps against binary (N, H, W) masks."""
    p, y = _pair(maps, masks)
    overlap = tf.reduce_sum(y * p, axis=[1, 2])
    dice = (2.0 * overlap + 1.0) / (tf.reduce_sum(y, axis=[1, 2]) + tf.reduce_sum(p, axis=[1, 2]) + 1.0)
    return tf.math.log(tf.math.cosh(1.0 - dice)).numpy()


def mae(maps, masks):
    """(N,) mean absolute error between (N, H, W) maps and masks."""
    p, y = _pair(maps, masks)
    return tf.reduce_mean(tf.abs(p - y), axis=[1, 2]).numpy()


def sqrt_mae(maps, masks):
    """(N,) square root of `mae`: the value the paper's tables call MAE."""
    return tf.sqrt(mae(maps, masks)).numpy()
