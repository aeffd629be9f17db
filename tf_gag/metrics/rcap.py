"""RCAP (ReCover And Predict), the paper's metric of localisation and visual noise.

For a map M, lower bound b and interval s (percent), j = (100 - b) / s steps
recover the top s, 2s, ..., (100 - b) percent of pixels (all channels) of the
image into a black image, and

    RCAP(M) = (1 / j) * sum_k  (sum of M over recovered pixels / sum of M)
                              * softmax_target(f(recovered image k))

The first factor is the visual-noise term, the second the localisation term;
higher is better. "Black" is black in pixel space, mapped into the model's
input space by its preprocessing. A map with sum 0 has no RCAP (NaN, reported
as undefined). `RCAP` is the metric object; `rcap` scores a batch.
"""
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ..io.checks import check_int
from .base import Metric
from .reveal import check_convention, revealed, step_thresholds


def check_steps(lower_bound, interval):
    """Validate RCAP's percent parameters; return the recovered fractions (j,)."""
    for name, value, example in (("lower_bound", lower_bound, 50), ("interval", interval, 10)):
        fraction = isinstance(value, float) and 0 < value < 1
        check_int(name, value, what=f"a whole percentage such as {example}",
                  note=" (a fraction? tf_gag takes percent)" if fraction else "")
    if not 0 <= lower_bound < 100:
        raise ValueError(f"lower_bound: expected a percentage in [0, 100), got {lower_bound}")
    if not 0 < interval <= 100 - lower_bound or (100 - lower_bound) % interval:
        raise ValueError(
            f"interval: expected a percentage that divides 100 - lower_bound = {100 - lower_bound}, got {interval}"
        )
    steps = (100 - lower_bound) // interval
    return np.array([k * interval / 100 for k in range(1, steps + 1)])


def rcap(scorer, images, maps, targets, black, *, lower_bound=50, interval=10, convention="paper",
         batch_size=32):
    """RCAP of each map and its per-step terms.

    Args:
      scorer: a `RevealScorer` over the model.
      images: float32 (N, H, W, C) in the model's input space.
      maps: (N, H, W) non-negative saliency maps.
      targets: (N,) class ids.
      black: the black image in the model's input space, broadcastable to an image.

    Returns a dict: ``rcap`` (N,), ``saliency_ratio`` and ``probability``
    (N, j) — the two factors of each step — and ``recovered`` (j,), the
    fraction of pixels each step recovers.
    """
    fractions = check_steps(lower_bound, interval)
    maps = tf.convert_to_tensor(maps, tf.float32)
    thresholds = step_thresholds(maps, fractions, convention)
    if convention == "reference":
        # The reference recovers every pixel above 0 when a threshold reaches the map's maximum of 1.
        thresholds = tf.where(thresholds < 1.0, thresholds, 0.0)
    masks = tf.cast(revealed(maps, thresholds, convention), tf.float64)
    maps64 = tf.cast(maps, tf.float64)[:, tf.newaxis]
    total = tf.reduce_sum(maps64, axis=[2, 3])
    ratio = tf.reduce_sum(masks * maps64, axis=[2, 3]) / tf.where(total > 0, total, np.nan)
    probability = scorer.probabilities(
        images, black, maps, thresholds.numpy(), targets, convention=convention, batch_size=batch_size
    )
    ratio = ratio.numpy()
    return {
        "rcap": np.mean(ratio * probability, axis=1),
        "saliency_ratio": ratio,
        "probability": probability,
        "recovered": fractions,
    }


@dataclass(frozen=True)
class RCAP(Metric):
    """RCAP (result key ``rcap``, higher is better).

    Args:
      lower_bound, interval: whole percentages; steps recover the top
        ``interval``, 2 ``interval``, ..., 100 - ``lower_bound`` percent of the
        pixels. The paper uses 50 and 10; mlxops-xai defaults to 70 and 30.
      convention: the tie rule at step thresholds (see `tf_gag.metrics.reveal`):
        ``"paper"`` (``M >= t``) or ``"reference"`` (``M > t``, the PyTorch
        reference's order statistic and its threshold clamp).

    Its curve: ``{"recovered": (j,), "probability": (N, j), "saliency_ratio": (N, j)}``,
    each step's fraction of pixels and its two factors.

        >>> result = tf_gag.evaluate(model, images, maps, metrics=[tf_gag.RCAP(lower_bound=40, interval=20)])
    """

    lower_bound: int = 50
    interval: int = 10
    convention: str = "paper"

    name = "rcap"
    better = "higher"
    curve_keys = ("probability", "saliency_ratio")

    def __post_init__(self):
        check_steps(self.lower_bound, self.interval)
        check_convention(self.convention)

    def curve_axis(self, height, width):
        return {"recovered": check_steps(self.lower_bound, self.interval)}

    def score(self, batch):
        out = rcap(batch.scorer, batch.images, batch.maps, batch.targets, batch.black, lower_bound=self.lower_bound,
                   interval=self.interval, convention=self.convention, batch_size=batch.batch_size)
        return out["rcap"], {key: out[key] for key in self.curve_keys}

    def undefined_warning(self, scores):
        """A map that sums to 0 has no RCAP: name the images, which the means leave out."""
        empty = np.nonzero(np.isnan(scores))[0].tolist()
        if empty:
            return (f"maps: the maps of image(s) {empty} sum to 0, so their RCAP is undefined (NaN); "
                    "the means leave them out")
        return None
