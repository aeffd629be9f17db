"""Deletion and Insertion AUC (Petsiuk et al., RISE, 2018).

Deletion removes a map's most salient pixels step by step and follows the
target-class probability down (DAUC, lower is better); insertion pastes the
most salient pixels of the photo into a blurred copy and follows it up (IAUC,
higher is better). Two step schedules:

* ``"percentile"`` (the paper's reference): ``steps`` steps at 0, 1/steps,
  ..., (steps-1)/steps of the pixels (10 steps: 0 %, 10 %, ..., 90 %).
* ``"rise"``: RISE's original, ``pixels_per_step`` pixels at a time over the
  whole range, from none to all.

AUC is the trapezoid area under the curve over the fraction of pixels
changed. The trapezoid is linear, so the area under the dataset-mean curve
(the reference's number) equals the mean of the per-image areas.
"""
import math
import numbers

import numpy as np

from .. import ops
from .reveal import step_thresholds

SCHEDULES = ("percentile", "rise")
DELETION_FILLS = ("zero", "black", "blur")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def check_schedule(schedule, steps, pixels_per_step):
    if schedule not in SCHEDULES:
        raise ValueError(f"auc_schedule: expected one of {list(SCHEDULES)}, got {schedule!r}")
    _positive_int("auc_steps", steps)
    if pixels_per_step is not None:
        _positive_int("pixels_per_step", pixels_per_step)


def check_blur(sigma, kernel_size, height, width):
    """Validate the insertion blur for (height, width) images (the padding mirrors the image)."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not sigma > 0:
        raise ValueError(f"blur_sigma: expected a number > 0, got {sigma!r}")
    if _positive_int("blur_kernel_size", kernel_size) % 2 == 0:
        raise ValueError(f"blur_kernel_size: expected an odd number of pixels, got {kernel_size}")
    limit = 2 * (min(height, width) - 1) + 1
    if kernel_size > limit:
        raise ValueError(
            f"blur_kernel_size: {kernel_size} px is too large for {height}x{width} images (at most {limit})"
        )


def fractions(schedule, steps, pixels_per_step, height, width):
    """The fractions of pixels changed at each step of a curve.

    ``pixels_per_step=None`` means one image row (RISE's 224 for 224 px).
    """
    if schedule == "percentile":
        return np.arange(steps) / steps
    pixels = height * width
    per_step = pixels_per_step or width
    return np.array([min(k * per_step, pixels) / pixels for k in range(math.ceil(pixels / per_step) + 1)])


def area(curves, x):
    """Trapezoid area of each curve (..., K) over the fractions ``x`` (K,)."""
    curves = np.asarray(curves, np.float64)
    return np.sum((curves[..., 1:] + curves[..., :-1]) * np.diff(x) / 2.0, axis=-1)


def blurred(images, sigma, kernel_size):
    """Gaussian-blurred copies (reflect padding, as torchvision's ``GaussianBlur``)."""
    radius = kernel_size // 2
    sigmas = np.full((len(images),), float(sigma), np.float32)
    return ops.gaussian_blur(images, sigmas, radius, padding="REFLECT").numpy()


def curves(scorer, reveal, hide, maps, targets, x, *, convention="paper", batch_size=32):
    """(N, K) target probabilities when the fractions ``x`` of each map's top pixels show ``reveal``.

    The other pixels show ``hide``. Deletion: reveal = the fill, hide = the
    image; insertion: reveal = the image, hide = its blurred copy.
    """
    thresholds = step_thresholds(maps, x, convention).numpy()
    return scorer.probabilities(reveal, hide, maps, thresholds, targets, convention=convention, batch_size=batch_size)
