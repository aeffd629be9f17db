"""One batch scored: its maps (explained here when a method was given), its masks checked, every metric run."""
import numpy as np

from ..io.inputs import as_mask_batch
from ..metrics.base import Batch
from ..model import Preprocessing


def black(preprocessing, channels):
    """Black (pixel value 0) in the model's input space; 0 when no preprocessing is known."""
    if preprocessing is None:
        return np.zeros((channels,), np.float32)
    if not isinstance(preprocessing, Preprocessing):
        raise TypeError(f"preprocessing: expected a tf_gag.Preprocessing, got {type(preprocessing).__name__}")
    return np.broadcast_to(preprocessing.to_model(0.0).numpy(), (channels,)).astype(np.float32)


class Scoring:
    """``scoring(batch) -> {metric name: (scores, curves)}`` for `EvalBatch` es, in order.

    ``explainer``: explains batches that come without maps. ``masks_checked``:
    the source's masks were checked already (arrays); a Dataset's are checked
    here, batch by batch. The metrics' curve axes and black are settled on
    the first batch (options that must fit the image size fail there), and
    given to ``scores``, the `tf_gag.evaluation.result.Scores` collecting them.
    """

    def __init__(self, metrics, scorer, explainer, adapter, preprocessing, batch_size, scores, masks_checked):
        self.metrics, self.scorer, self.explainer, self.adapter = metrics, scorer, explainer, adapter
        self.preprocessing, self.batch_size, self.scores = preprocessing, batch_size, scores
        self.masks_checked = masks_checked
        self.mask_metrics = [m.name for m in metrics if m.needs_masks]
        self.binary_masks = any(m.binary_masks for m in metrics)
        self.black = None

    def __call__(self, batch):
        height, width, channels = batch.images.shape[1:]
        if self.black is None:  # options that depend on the image size, checked once
            self.scores.axes = {m.name: m.curve_axis(height, width) for m in self.metrics}
            self.black = black(self.preprocessing or self.adapter.preprocessing, channels)
        maps = batch.maps
        if maps is None:
            others = {o.name: c for o, c in zip(self.adapter.other_inputs, batch.context)} if batch.context else None
            maps = self.explainer.explain(batch.images, batch.targets, inputs=others)
        masks = batch.masks
        if self.mask_metrics and not self.masks_checked:
            if masks is None:
                raise ValueError(f"masks: metrics {self.mask_metrics} need ground-truth masks; the dataset's "
                                 "elements have none (expected (image, label, mask) or a dict with 'mask')")
            masks = as_mask_batch(np.squeeze(masks, axis=-1) if masks.ndim == 4 else masks, len(batch.images),
                                  (height, width), binary=self.binary_masks)
        scored = Batch(self.scorer.bound(batch.context), batch.images, maps, batch.targets, masks, self.black,
                       self.batch_size, self.scores.count)
        return {m.name: m.score(scored) for m in self.metrics}
