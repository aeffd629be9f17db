"""A transformer's tokens read as a patch grid (tf_gag.tokens) and Grad-CAM's reshape of them, against numpy."""
import numpy as np
import pytest
import tensorflow as tf

from tf_gag.methods.sources import BoundLayer
from tf_gag.tokens import MAX_PREFIX, token_grid


@pytest.mark.parametrize("length, grid, expected", [
    (197, None, (1, 14, 14)),  # ViT-B/16 at 224: class token + 14 x 14
    (196, None, (0, 14, 14)),  # no class token (global-pool ViTs)
    (198, None, (2, 14, 14)),  # DeiT: class + distillation token
    (1 + 6 * 10, (6, 10), (1, 6, 10)),  # a non-square grid, known from the patch embedding
    (1 + 6 * 10, None, None),  # ... which no square explains
    (17, (5, 5), (1, 4, 4)),  # a patch grid that does not fit falls back to a square
    (4 + MAX_PREFIX, (2, 2), (MAX_PREFIX, 2, 2)),  # the known grid wins, up to MAX_PREFIX leading tokens
    (4 + MAX_PREFIX + 1, (2, 2), (4, 3, 3)),  # ... beyond: the square with the fewest leading tokens
    (3, None, None),
    (1, None, None),
])
def test_token_grid(length, grid, expected):
    assert token_grid(length, grid) == expected


def test_grad_cam_reads_tokens_as_the_patch_map_like_numpy():
    tokens = np.random.default_rng(0).normal(size=(2, 1 + 3 * 4, 5)).astype(np.float32)
    bound = BoundLayer((48, 64, 3), capture="t", tokens=(1, 3, 4))
    expected = tokens[:, 1:].reshape(2, 3, 4, 5)  # row-major: token 1 + r * 4 + c is patch (r, c)
    np.testing.assert_array_equal(bound.as_map(tf.constant(tokens)).numpy(), expected)
    with pytest.raises(ValueError, match="Grad-CAM needs tokens"):
        bound.wrt(None, tf.zeros((2, 3, 4, 5)))
