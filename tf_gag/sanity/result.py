"""`SanityResult`: per-step, per-method, per-image similarities of a sanity check, with means, tables and plots."""
import json
import warnings
from dataclasses import dataclass, field

import numpy as np

from .similarity import SIMILARITIES


@dataclass
class SanityResult:
    """What a sanity check measured.

    Attributes:
      check: ``"cascading"``, ``"independent"`` (model randomization) or
        ``"perturbation"``.
      steps: what changed at each step: the layer randomized (cascading: down
        to and including it, from the top) or the relative noise level.
      methods: the method labels, in the order given.
      scores: {measure: {method: float64 (steps, N)}} for each measure in
        `tf_gag.sanity.SIMILARITIES`; NaN where a step was not reached, and
        for an image whose original map is constant (nothing to compare; a
        warning names it, and `means` leaves it out).
      targets: the (N,) class ids explained, the original model's.
      constant: {method: (steps, N) bool}: where a changed model's map was
        constant (its Spearman correlations are then 0).
      prediction_change: perturbation only: per step, the largest change of
        an image's explained-class probability (the predicted classes never
        change; the check refuses noise that changes them).
    """

    check: str
    steps: list
    methods: list
    scores: dict
    targets: np.ndarray
    constant: dict
    prediction_change: list = field(default_factory=list)

    def means(self, measure="spearman_abs"):
        """{method: (steps,) mean over images of ``measure``}."""
        if measure not in SIMILARITIES:
            raise ValueError(f"measure: expected one of {list(SIMILARITIES)}, got {measure!r}")
        with warnings.catch_warnings():  # a step where every image is undefined has NaN for its mean
            warnings.simplefilter("ignore", RuntimeWarning)
            return {method: np.nanmean(values, axis=1) for method, values in self.scores[measure].items()}

    def to_markdown(self, measure="spearman_abs"):
        """A Markdown table: one row per step, one column per method, the mean ``measure`` over images."""
        means = self.means(measure)
        head = f"| {self.check} step | " + " | ".join(self.methods) + " |"
        rows = [head, "|" + "---|" * (len(self.methods) + 1)]
        for k, step in enumerate(self.steps):
            rows.append(f"| {step} | " + " | ".join(f"{means[m][k]:.3f}" for m in self.methods) + " |")
        return "\n".join(rows)

    def to_dict(self):
        """Everything as JSON-ready Python values."""
        return {
            "check": self.check,
            "steps": [str(s) if not isinstance(s, float) else s for s in self.steps],
            "methods": list(self.methods),
            "targets": np.asarray(self.targets).tolist(),
            "scores": {k: {m: np.asarray(v).tolist() for m, v in per.items()} for k, per in self.scores.items()},
            "means": {k: {m: v.tolist() for m, v in self.means(k).items()} for k in SIMILARITIES},
            "constant": {m: np.asarray(v).tolist() for m, v in self.constant.items()},
            "prediction_change": list(self.prediction_change),
        }

    def to_json(self, path):
        """Write `to_dict` to ``path``."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    def plot(self, measures=SIMILARITIES, *, path=None):
        """A Figure like Adebayo et al.'s: mean similarity vs step, one line per method (`tf_gag.viz.sanity_figure`)."""
        from ..tools import viz

        return viz.sanity_figure(self, measures, path=path)
