"""What a metric object is, and the batch of images it scores.

A metric owns its options (checked when it is built, immutable after), its
result key ``name``, the direction that is ``better``, whether it compares
maps with ground-truth masks, how one batch is scored and how per-image
results make the dataset's value. `tf_gag.evaluate` runs any number of them
over the same batches (one alone: ``evaluate(..., metrics=[metric])``); a
metric never calls `evaluate` itself, so metrics sit below evaluation in the
flow.
"""
import abc

import numpy as np

from ..errors import ModelOutputError


class Batch:
    """One batch being scored: what every metric reads, and the work several metrics share.

    Attributes:
      scorer: a `RevealScorer` over the model (bound to the batch's other
        inputs), whose probabilities are checked to be finite (`FiniteScorer`).
      images: float32 (n, H, W, C) in the model's input space.
      maps: (n, H, W) non-negative saliency maps.
      targets: (n,) class ids.
      masks: (n, H, W) ground-truth masks, or None.
      black: (C,) black (pixel value 0) in the model's input space.
      batch_size: the most model calls at once.

    ``first`` is the index of the batch's first image among all the images
    scored, so an error about the model's outputs names the images as the user numbers them.
    """

    def __init__(self, scorer, images, maps, targets, masks, black, batch_size, first=0):
        self.scorer = FiniteScorer(scorer, first)
        self.images = images
        self.maps = maps
        self.targets = targets
        self.masks = masks
        self.black = black
        self.batch_size = batch_size
        self._shared = {}

    def shared(self, key, compute):
        """``compute()``, once per batch for every metric that asks with the same ``key``.

        Deletion with a blurred fill and Insertion read the same blurred
        copies of the images; the second gets the first's.
        """
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]


class FiniteScorer:
    """A scorer whose probabilities must be finite: NaN or Inf there is the model's output, named by image.

    Every metric that asks the model about composite images goes through
    ``probabilities``, so a model returning NaN or Inf for them stops the
    evaluation with a `ModelOutputError` instead of scoring NaN (which would
    read as an undefined score, e.g. a map that sums to 0).
    """

    def __init__(self, scorer, first=0):
        self.scorer, self.first = scorer, first

    def probabilities(self, *args, **kwargs):
        """The wrapped scorer's (n, K) probabilities, each row checked to be finite."""
        probability = self.scorer.probabilities(*args, **kwargs)
        ModelOutputError.require_finite(probability, self.first, composed=True)
        return probability


class Metric(abc.ABC):
    """Base of the metric objects; each is a frozen dataclass of its options.

    Class attributes: ``name`` (the result key), ``better`` (``"higher"`` or
    ``"lower"``), ``needs_masks`` and ``binary_masks`` (it compares maps with
    ground-truth masks, which must be 0/1), ``curve_keys`` (the (N, K) arrays
    of its curve in ``EvaluationResult.curves[name]``).
    """

    name = None
    better = None
    needs_masks = False
    binary_masks = False
    curve_keys = ()

    def curve_axis(self, height, width):
        """{key: (K,)}, the x-axis of the curve for (height, width) images.

        Options that must fit the image size are checked here, once per
        `evaluate` call, before the first batch is scored.
        """
        return {}

    @abc.abstractmethod
    def score(self, batch):
        """(scores (n,), {curve key: (n, K)}) of one `Batch`."""

    def dataset_value(self, scores, curve, completed):
        """The dataset's value: here the mean of the completed images' defined (not NaN) scores.

        ``scores`` are every image's (N,), ``curve`` is this metric's entry of
        ``EvaluationResult.curves`` (None without a curve), ``completed`` (N,)
        marks the images scored.
        """
        defined = scores[completed & ~np.isnan(scores)]
        return float(defined.mean()) if defined.size else float("nan")

    def undefined_warning(self, scores):
        """The text of a warning about undefined (NaN) scores the user should hear of, or None."""
        return None
