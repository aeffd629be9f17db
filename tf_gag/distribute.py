"""Split batched work across the replicas of a `tf.distribute` strategy, chunk for chunk as one device does.

tf_gag keeps the data loop on the host (it streams, checks and collects per
image) and hands the TF work to the strategy. Equality with one device holds
by construction: the rows are cut into the same consecutive parts of
``part_size`` rows that a single device runs one after another (the last part
may be shorter), each replica runs the same compiled function on one whole
part, so every part meets the same kernels with the same shapes, and the parts
are gathered back in row order. A float32 kernel's rounding depends on the
shapes it sees, so cutting the rows any other way (equal shares per replica,
say) would make the results depend on the number of replicas.

Under `MirroredStrategy` the replicas are this machine's devices; under
`MultiWorkerMirroredStrategy` every worker runs the same program over the same
rows, computes the parts of its own replicas, and the gather gives every
worker all rows. A round with fewer parts than replicas gives the idle
replicas a copy of its first part, whose results are dropped.
"""
import numpy as np
import tensorflow as tf


def check_strategy(strategy):
    """``strategy`` if it is None or a `tf.distribute.Strategy`, else a clear error."""
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            "strategy: expected a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()) or None, "
            f"got {type(strategy).__name__}"
        )
    return strategy


def replicas(strategy):
    """How many replicas a batch is split across (1 without a strategy)."""
    return 1 if strategy is None else strategy.num_replicas_in_sync


class SplitRunner:
    """``runner(*rows, *shared)``: ``fn`` over consecutive parts of ``part_size`` rows, one part per replica.

    ``rows`` are numpy arrays sharing their first dimension, at most
    ``part_size`` × replicas rows a call; ``shared`` are passed whole to
    every replica. ``fn`` returns one output row per input row. Without a
    strategy, ``fn`` runs directly on the rows (the caller's one part).
    """

    def __init__(self, strategy, fn, part_size, shared_count=0):
        self.strategy = strategy
        self.fn = fn
        self.part_size = int(part_size)
        self.shared_count = shared_count
        if strategy is not None:
            size = self.part_size

            def replica_part(rows, starts, lengths, shared):
                # Every replica receives all the rows and runs its own part at its true length.
                i = tf.distribute.get_replica_context().replica_id_in_sync_group
                start, length = starts[i], lengths[i]
                out = fn(*(r[start : start + length] for r in rows), *shared)
                # Padded to part_size rows so that every replica hands the gather the same shape.
                return tf.pad(out, [[0, size - length]] + [[0, 0]] * (out.shape.rank - 1))

            self._run = tf.function(
                lambda rows, starts, lengths, shared: strategy.gather(
                    strategy.run(replica_part, args=(rows, starts, lengths, shared)), axis=0
                ),
                reduce_retracing=True,
            )

    def __call__(self, *args):
        if self.strategy is None:
            return self.fn(*args)
        split = len(args) - self.shared_count
        rows, shared = args[:split], args[split:]
        count, total, size = self.strategy.num_replicas_in_sync, len(rows[0]), self.part_size
        if total > size * count:
            raise ValueError(f"rows: at most {size * count} rows per call ({count} parts of {size}), got {total}")
        parts = -(-total // size)
        starts = np.array([size * i if i < parts else 0 for i in range(count)], np.int32)
        lengths = np.array([min(size, total - size * i) if i < parts else min(size, total) for i in range(count)],
                           np.int32)
        gathered = self._run(rows, starts, lengths, tuple(shared))
        return tf.concat([gathered[size * i : size * i + lengths[i]] for i in range(parts)], axis=0)
