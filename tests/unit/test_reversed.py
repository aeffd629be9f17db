"""Reversed maps against a direct numpy construction."""
import numpy as np
import pytest

import tf_gag


def test_reverse_swaps_bottom_with_band_below_top(rng):
    maps = rng.permutation(100).astype(np.float32).reshape(1, 10, 10) / 99
    out = tf_gag.reverse_maps(maps, top=0.07, swap=0.10).numpy()
    flat, got = maps.ravel(), out.ravel()
    order = np.argsort(-flat, kind="stable")
    expected = flat.copy()
    band, bottom = order[7:17], order[90:100]
    expected[band], expected[bottom] = flat[bottom], flat[band]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[order[:7]], flat[order[:7]])  # the top stays


def test_reverse_rejects_overlapping_bands():
    with pytest.raises(ValueError, match="top \\+ 2 \\* swap"):
        tf_gag.reverse_maps(np.zeros((1, 4, 4)), top=0.5, swap=0.3)
