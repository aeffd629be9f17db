"""What goes out, batch by batch: results collected in order and kept when a batch fails.

`explain` on a Dataset and `evaluate` both run a batch source through a
computation and collect the results. `run_batches` is that loop, once: a
batch that fails (reading it or computing it) raises a `PartialResultError`
holding everything the batches before it finished (the collector's
`~Collector.partial`), so nothing already computed is lost. A user error
(ValueError, TypeError) before any result is raised as it is: there is
nothing to keep.
"""
from typing import Any, Callable, Iterable, Tuple

import numpy as np

from ..errors import PartialResultError
from .types import Progress


class Collector:
    """Where batch results go. ``count``: images finished so far."""

    count = 0

    def add(self, output: Any, batch: Any) -> None:
        """Keep one batch's ``output``; advances ``count`` by the batch's images."""
        raise NotImplementedError

    def partial(self) -> Tuple[Any, np.ndarray]:
        """(the output so far, completed mask over its images), for a `PartialResultError`."""
        raise NotImplementedError


def run_batches(batches: Iterable[Any], compute: Callable[[Any], Any], collector: Collector, what: str,
                size: Callable[[Any], int], on_progress: Progress = None) -> Collector:
    """``collector.add(compute(batch), batch)`` for each batch, in order; see the module docstring.

    ``size(batch)`` is its number of images (for messages and ``on_progress``,
    called after each batch). Returns ``collector``.
    """
    iterator = iter(batches)
    while True:
        batch = None
        try:
            batch = next(iterator, None)
            if batch is None:
                return collector
            output = compute(batch)
        except Exception as error:
            done = collector.count
            if done == 0 and isinstance(error, (ValueError, TypeError)):
                raise  # a user error before any result: nothing to keep
            where = f"the batch of images {done}..{done + size(batch) - 1}" if batch is not None else f"image {done} on"
            partial, completed = collector.partial()
            raise PartialResultError(
                f"{what}: {where} failed ({type(error).__name__}: {error}); the {done} images before it are in "
                ".partial",
                partial,
                completed,
            ) from error
        collector.add(output, batch)
        if on_progress is not None:
            on_progress(size(batch))
