"""Saliency maps against ground-truth object masks: log-cosh Dice loss and MAE.

Both compare the continuous map p in [0, 1] with a mask y, per image; lower
is better.

* log-cosh Dice loss: ``dice = (2 * sum(y * p) + 1) / (sum(y) + sum(p) + 1)``,
  ``L = log(cosh(1 - dice))`` (smoothing 1, as the reference).
* MAE: ``mean(|p - y|)``. The paper's tables report its square root under the
  name MAE; tf_gag names that ``sqrt_mae``.

`LogCoshDice` and `MAE` are the metric objects; the functions score arrays.
"""
from dataclasses import dataclass

import tensorflow as tf

from ..io.checks import check_flag
from .base import Metric


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


class _AgainstMasks(Metric):
    """A metric of maps against ``evaluate``'s ``masks``; lower is better."""

    better = "lower"
    needs_masks = True


@dataclass(frozen=True)
class LogCoshDice(_AgainstMasks):
    """Log-cosh Dice loss against binary masks (result key ``log_cosh_dice``)."""

    name = "log_cosh_dice"
    binary_masks = True

    def score(self, batch):
        return log_cosh_dice(batch.maps, batch.masks), {}


@dataclass(frozen=True)
class MAE(_AgainstMasks):
    """Mean absolute error against masks in [0, 1] (result key ``mae``).

    Args:
      sqrt: score its square root instead, the value the paper's tables call
        MAE (result key ``sqrt_mae``).
    """

    sqrt: bool = False

    def __post_init__(self):
        check_flag("sqrt", self.sqrt)

    @property
    def name(self):
        return "sqrt_mae" if self.sqrt else "mae"

    def score(self, batch):
        return (sqrt_mae if self.sqrt else mae)(batch.maps, batch.masks), {}
