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
`Deletion` and `Insertion` are the metric objects.
"""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import ops
from ..io.checks import check_choice, check_int, check_number
from .base import Metric
from .reveal import check_convention, step_thresholds

SCHEDULES = ("percentile", "rise")
DELETION_FILLS = ("zero", "black", "blur")


def check_schedule(schedule, steps, pixels_per_step):
    """Validate the step schedule: its name, ``steps`` and ``pixels_per_step`` (None: one image row)."""
    check_choice("schedule", schedule, SCHEDULES)
    check_int("steps", steps, 1)
    if pixels_per_step is not None:
        check_int("pixels_per_step", pixels_per_step, 1)


def check_fill(fill):
    check_choice("fill", fill, DELETION_FILLS)


def check_blur(sigma, kernel_size):
    """Validate the Gaussian blur of the insertion background."""
    check_number("blur_sigma", sigma, 0, low_open=True)
    if check_int("blur_kernel_size", kernel_size, 1) % 2 == 0:
        raise ValueError(f"blur_kernel_size: expected an odd number of pixels, got {kernel_size}")


def check_blur_fits(kernel_size, height, width):
    """Refuse a blur kernel larger than its reflect padding allows on (height, width) images."""
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


class _AreaUnderCurve(Metric):
    """What Deletion and Insertion share: the step schedule, the blur, the tie rule and the dataset's AUC.

    Its curve: ``{"fraction": (K,), "probability": (N, K)}``, the fraction of
    pixels changed at each step and the target's probability there. A
    subclass says whether it ``blurs`` (reads the blurred copies).
    """

    curve_keys = ("probability",)

    def __post_init__(self):
        check_schedule(self.schedule, self.steps, self.pixels_per_step)
        check_blur(self.blur_sigma, self.blur_kernel_size)
        check_convention(self.convention)

    def _fractions(self, height, width):
        return fractions(self.schedule, self.steps, self.pixels_per_step, height, width)

    def curve_axis(self, height, width):
        if self.blurs:
            check_blur_fits(self.blur_kernel_size, height, width)
        return {"fraction": self._fractions(height, width)}

    def _background(self, batch):
        """The batch's blurred copies, shared with any other metric of the same blur."""
        return batch.shared(("blur", self.blur_sigma, self.blur_kernel_size),
                            lambda: blurred(batch.images, self.blur_sigma, self.blur_kernel_size))

    def _scored(self, batch, reveal, hide):
        """(areas, curve) when each step shows ``reveal`` on the top pixels and ``hide`` elsewhere."""
        x = self._fractions(*batch.images.shape[1:3])
        probability = curves(batch.scorer, reveal, hide, batch.maps, batch.targets, x, convention=self.convention,
                             batch_size=batch.batch_size)
        return area(probability, x), {"probability": probability}

    def dataset_value(self, scores, curve, completed):
        """The area under the dataset-mean curve (the reference's number; by linearity the mean of the areas)."""
        rows = curve["probability"][completed]
        return float(area(rows.mean(axis=0), curve["fraction"])) if len(rows) else float("nan")


@dataclass(frozen=True)
class Deletion(_AreaUnderCurve):
    """Deletion AUC (result key ``dauc``, lower is better): delete the most salient pixels first.

    Args:
      steps: the ``"percentile"`` schedule's number of steps (reference: 10).
      schedule: ``"percentile"`` (0, 1/steps, ... of the pixels) or ``"rise"``
        (``pixels_per_step`` pixels at a time over the whole range; default one row).
      pixels_per_step: the ``"rise"`` schedule's step.
      fill: what deleted pixels become: ``"zero"`` (0 in the model's input
        space, the dataset mean colour of a mean/std model; reference),
        ``"black"`` or ``"blur"`` (the Gaussian-blurred image).
      blur_sigma, blur_kernel_size: that blur (only ``fill="blur"`` uses it).
      convention: the tie rule at step thresholds, as for `RCAP`.
    """

    steps: int = 10
    schedule: str = "percentile"
    pixels_per_step: Optional[int] = None
    fill: str = "zero"
    blur_sigma: float = 16.0
    blur_kernel_size: int = 33
    convention: str = "paper"

    name = "dauc"
    better = "lower"

    def __post_init__(self):
        super().__post_init__()
        check_fill(self.fill)

    @property
    def blurs(self):
        return self.fill == "blur"

    def score(self, batch):
        if self.blurs:
            fill = self._background(batch)
        elif self.fill == "black":
            fill = batch.black
        else:
            fill = np.zeros_like(batch.black)
        return self._scored(batch, fill, batch.images)


@dataclass(frozen=True)
class Insertion(_AreaUnderCurve):
    """Insertion AUC (result key ``iauc``, higher is better): paste the most salient pixels into a blurred copy.

    Args:
      steps, schedule, pixels_per_step, convention: as for `Deletion`.
      blur_sigma, blur_kernel_size: the background's Gaussian blur (reference:
        16 and 33 px, reflect padding).
    """

    steps: int = 10
    schedule: str = "percentile"
    pixels_per_step: Optional[int] = None
    blur_sigma: float = 16.0
    blur_kernel_size: int = 33
    convention: str = "paper"

    name = "iauc"
    better = "higher"
    blurs = True

    def score(self, batch):
        return self._scored(batch, batch.images, self._background(batch))
