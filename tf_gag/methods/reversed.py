"""Reversed ("misplaced") maps for the paper's Proposition 1.

`reverse_maps` keeps the top ``top`` fraction of each map's values in place
and swaps the values of the lowest ``swap`` fraction of pixels with the
``swap``-fraction band just below the kept top, rank for rank. The map's
value distribution (its visual noise) is unchanged while its Focus Area moves
from the object's surroundings onto background, so a good localisation
metric must score it lower. The paper's reference uses (7%, 10%) for SG, IG,
BlurIG and Guided IG on ImageNet and (3%, 10%) for Guided Backprop.
"""
from typing import Any

import numpy as np
import tensorflow as tf

from ..io.checks import check_number


def check_reverse(top, swap):
    """Validated (top, swap) fractions; the swapped bands must not overlap."""
    top = check_number("top", top, 0, 1, what="a fraction")
    swap = check_number("swap", swap, 0, 1, what="a fraction")
    if top + 2 * swap > 1.0 + 1e-12:
        raise ValueError(f"reverse: top + 2 * swap must be at most 1, got top={top}, swap={swap}")
    return top, swap


def reverse_maps(maps: Any, top: float = 0.07, swap: float = 0.10) -> tf.Tensor:
    """Reversed copies of (N, H, W) maps; see the module docstring.

    Ranks are by value, highest first, ties broken by pixel order. Requires
    ``top + 2 * swap <= 1`` so the swapped bands do not overlap.
    """
    top, swap = check_reverse(top, swap)
    maps = tf.convert_to_tensor(maps, tf.float32)
    if maps.shape.rank != 3:
        raise ValueError(f"maps: expected shape (N, H, W), got {tuple(maps.shape)}")
    n, h, w = maps.shape
    pixels = h * w
    kept = int(round(top * pixels))
    width = int(round(swap * pixels))
    rank_source = np.arange(pixels)
    band = np.arange(kept, kept + width)
    bottom = np.arange(pixels - width, pixels)
    rank_source[band], rank_source[bottom] = bottom, band
    flat = tf.reshape(maps, [-1, pixels])
    order = tf.argsort(flat, axis=1, direction="DESCENDING", stable=True)
    ranked = tf.gather(flat, order, batch_dims=1)
    moved = tf.gather(ranked, rank_source, axis=1)
    inverse = tf.argsort(order, axis=1, stable=True)
    return tf.reshape(tf.gather(moved, inverse, batch_dims=1), [-1, h, w])
