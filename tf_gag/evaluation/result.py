"""What `evaluate` returns (`EvaluationResult`) and how per-batch scores become one (`Scores`)."""
import collections.abc

import numpy as np

from ..io.collect import Collector


class EvaluationResult(collections.abc.Mapping):
    """Per-image scores of each metric, with curves, means and a table.

    ``result["rcap"]`` is the (N,) float64 array of per-image scores (NaN
    where a score is undefined or its image was not reached). ``curves`` holds
    each curve metric's x-axis and (N, K) values:
    ``curves["rcap"] = {"recovered", "probability", "saliency_ratio"}``,
    ``curves["dauc"] / curves["iauc"] = {"fraction", "probability"}``.
    ``targets`` are the class ids scored; ``completed`` marks the images done
    (a partial result of a Dataset holds only the images done); ``metrics``
    are the metric objects, by result key.
    """

    def __init__(self, scores, curves, targets, completed, metrics):
        self.metrics = metrics
        self.scores = scores
        self.curves = curves
        self.targets = targets
        self.completed = completed

    def __getitem__(self, name):
        return self.scores[name]

    def __iter__(self):
        return iter(self.scores)

    def __len__(self):
        return len(self.scores)

    def undefined(self):
        """{metric: number of completed images whose score is undefined (NaN)}."""
        return {name: int(np.sum(np.isnan(s[self.completed]))) for name, s in self.scores.items()}

    def means(self):
        """{metric: dataset value} over the completed images, as each metric defines it.

        Most are the mean of the defined scores; DAUC and IAUC are the area
        under the dataset-mean curve (the reference's number).
        """
        return {name: metric.dataset_value(self.scores[name], self.curves.get(name), self.completed)
                for name, metric in self.metrics.items()}

    def table(self):
        """A plain-text table: metric, better direction, dataset value, images scored."""
        means, undefined = self.means(), self.undefined()
        done = int(self.completed.sum())
        lines = [f"{'metric':<14} {'better':<7} {'value':>8}  images", "-" * 40]
        for name in self.scores:
            note = f"{done - undefined[name]}" + (f" ({undefined[name]} undefined)" if undefined[name] else "")
            lines.append(f"{name:<14} {self.metrics[name].better:<7} {means[name]:>8.4f}  {note}")
        return "\n".join(lines)

    def to_dict(self):
        """JSON-ready: per-image scores (None for NaN), means, targets and curves as lists."""

        def plain(array):
            return [None if isinstance(v, float) and np.isnan(v) else v for v in np.asarray(array).tolist()]

        return {
            "means": {k: (None if np.isnan(v) else v) for k, v in self.means().items()},
            "scores": {k: plain(v) for k, v in self.scores.items()},
            "targets": self.targets.tolist(),
            "completed": self.completed.tolist(),
            "curves": {
                name: {key: np.where(np.isnan(v), None, v).tolist() for key, v in curve.items()}
                for name, curve in self.curves.items()
            },
        }

    def __repr__(self):
        return f"EvaluationResult({len(self.targets)} images)\n{self.table()}"


class Scores(Collector):
    """Per-batch scores and curves, joined into one `EvaluationResult` at the end (or at a failure)."""

    def __init__(self, metrics, targets=None, total=None):
        self.metrics = metrics
        self.known_targets = targets  # every image's target, when known before scoring (arrays)
        self.total = total  # the number of images, when known before scoring (arrays)
        self.axes = {}  # each metric's curve axis, once the image size is known
        self.parts = []
        self.targets = []
        self.count = 0

    def add(self, part, batch):
        """``part``: {metric name: (scores (n,), {curve key: (n, K)})} of one `EvalBatch`."""
        self.parts.append(part)
        self.targets.append(np.asarray(batch.targets, np.int32))
        self.count += len(batch.targets)

    def partial(self):
        result = self.result()
        return result, result.completed.copy()

    def result(self):
        """The images scored so far; with a known ``total``, NaN rows (not completed) pad it to ``total`` images."""
        size = self.count if self.total is None else self.total
        pad = size - self.count

        def joined(values, width=None):
            shape = (pad,) if width is None else (pad, width)
            return np.concatenate([np.asarray(v, np.float64) for v in values] + [np.full(shape, np.nan)])

        scores, curves = {}, {}
        for metric in self.metrics:
            name = metric.name
            scores[name] = joined([part[name][0] for part in self.parts])
            if metric.curve_keys:
                axis = self.axes.get(name, {})
                width = len(next(iter(axis.values()))) if axis else 0
                curves[name] = {**axis, **{key: joined([part[name][1][key] for part in self.parts], width)
                                           for key in metric.curve_keys}}
        if self.known_targets is not None:
            targets = self.known_targets
        else:
            targets = np.concatenate(self.targets + [np.full((pad,), -1, np.int32)]).astype(np.int32)
        completed = np.arange(size) < self.count
        return EvaluationResult(scores, curves, targets, completed, {m.name: m for m in self.metrics})
