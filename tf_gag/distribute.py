"""Split batched work across the replicas of a `tf.distribute` strategy.

tf_gag keeps the data loop on the host (it streams, checks and collects per
image) and hands each batch's TF work to the strategy: the rows are cut into
one consecutive part per replica (equal sizes; the last row is repeated to
fill the last part), each replica runs the compiled function on
its part, and the parts are gathered back in row order. Under
`MirroredStrategy` the replicas are this machine's devices; under
`MultiWorkerMirroredStrategy` every worker runs the same program over the
same batches, computes the parts of its own replicas, and the gather gives
every worker all rows.
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
    """``runner(*rows, *shared)``: ``fn`` over the rows split across replicas, gathered in order.

    ``rows`` are numpy arrays sharing their first dimension; ``shared`` are
    passed whole to every replica. Without a strategy, ``fn`` runs directly.
    """

    def __init__(self, strategy, fn, shared_count=0):
        self.strategy = strategy
        self.fn = fn
        self.shared_count = shared_count
        if strategy is not None:
            count = strategy.num_replicas_in_sync

            def replica_part(rows, shared):
                # Every replica receives the padded rows and takes its own consecutive part.
                i = tf.distribute.get_replica_context().replica_id_in_sync_group
                size = tf.shape(rows[0])[0] // count
                return fn(*(r[i * size : (i + 1) * size] for r in rows), *shared)

            self._run = tf.function(
                lambda rows, shared: strategy.gather(strategy.run(replica_part, args=(rows, shared)), axis=0),
                reduce_retracing=True,
            )

    def __call__(self, *args):
        if self.strategy is None:
            return self.fn(*args)
        split = len(args) - self.shared_count
        rows, shared = args[:split], args[split:]
        count, total = self.strategy.num_replicas_in_sync, len(rows[0])
        # Equal parts, the last row repeated to fill them: no replica gets an empty batch.
        size = -(-total // count)
        padded = tuple(np.concatenate([a, np.repeat(a[-1:], size * count - total, axis=0)]) for a in rows)
        return self._run(padded, tuple(shared))[:total]
