"""How a transformer's token sequence reads as a patch grid, for Grad-CAM on vision transformers.

A ViT's activations are tokens (N, k + h*w, c): ``k`` leading tokens (class,
distillation or register tokens) then one token per patch of an h x w grid.
Grad-CAM drops the leading tokens and reads the rest as an (N, h, w, c) map.
Pure Python: tf_gag's ONNX converter imports it in its child process too.
"""
import math

#: The most leading (non-patch) tokens a token grid may carry.
MAX_PREFIX = 8


def token_grid(length, grid=None):
    """(k, h, w) reading ``length`` tokens as ``k`` leading tokens then an h x w patch grid, or None.

    ``grid``: the (h, w) of the patch embedding when known (the last feature
    map convolutions made); without it, or when it does not fit, the patches
    must make a square of side > 1, with as few leading tokens as possible.
    """
    if grid is not None and 0 <= length - grid[0] * grid[1] <= MAX_PREFIX:
        return (length - grid[0] * grid[1], *grid)
    for prefix in range(max(min(MAX_PREFIX, length - 1) + 1, 0)):
        side = math.isqrt(length - prefix)
        if side > 1 and side * side == length - prefix:
            return (prefix, side, side)
    return None
