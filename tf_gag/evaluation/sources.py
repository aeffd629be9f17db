"""Where `evaluate`'s batches come from: arrays cut into batches, or a Dataset read batch by batch.

Each batch is an `EvalBatch`: the images, their targets, their maps (None when
the method explains them while scoring), their ground-truth masks (None
without) and a multi-input model's other inputs.
"""
from typing import NamedTuple, Optional, Tuple

import numpy as np

from ..io import data
from ..io.inputs import as_image_batch
from ..io.targets import resolve_targets


class EvalBatch(NamedTuple):
    """One batch to score."""

    images: np.ndarray
    targets: np.ndarray
    maps: Optional[np.ndarray]
    masks: Optional[np.ndarray]
    context: Tuple[np.ndarray, ...]


def array_batches(images, targets, maps, masks, context, batch_size):
    """`EvalBatch` es of ``batch_size`` rows of checked (N, ...) arrays (``maps``, ``masks`` may be None)."""
    for start in range(0, len(images), batch_size):
        rows = slice(start, start + batch_size)
        yield EvalBatch(images[rows], targets[rows], None if maps is None else maps[rows],
                        None if masks is None else masks[rows], tuple(c[rows] for c in context))


def dataset_batches(dataset, adapter, batch_size):
    """`EvalBatch` es of a Dataset: its labels (or the top classes) as targets, its masks, its other inputs."""
    names = [o.name for o in adapter.other_inputs]
    for batch in data.batches(dataset, batch_size, extra=names):
        images = as_image_batch(batch["image"], adapter.input_shape)
        context = adapter.check_inputs({name: batch[name] for name in names} or None, len(images))
        logits = adapter.predict_logits(images, batch_size, warn=False, context=context)
        adapter.require_logits(logits)
        ids = resolve_targets(batch.get("label"), len(images), logits.shape[1],
                              predicted=lambda logits=logits: logits.argmax(axis=1))
        yield EvalBatch(images, ids, None, batch.get("mask"), context)
