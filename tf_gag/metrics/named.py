"""Metric names as strings: each name's default metric object, and ``metrics=`` resolved to objects."""
from .auc import Deletion, Insertion
from .base import Metric
from .rcap import RCAP
from .segmentation import MAE, LogCoshDice

#: The default object of every named metric.
NAMED = {metric.name: metric for metric in (RCAP(), Deletion(), Insertion(), LogCoshDice(), MAE(), MAE(sqrt=True))}
#: Every named metric, with the direction that is better.
METRICS = {name: metric.better for name, metric in NAMED.items()}


def resolve(metrics):
    """A name, a metric object or a sequence of both -> a tuple of metric objects.

    A metric given twice (equal objects, or an object equal to a name's
    default) counts once; two different metrics with the same result key are
    refused, since one's scores would replace the other's.
    """
    if isinstance(metrics, (str, Metric)):
        metrics = (metrics,)
    expected = f"metrics: expected names from {list(NAMED)} or tf_gag.metrics objects"
    try:
        metrics = tuple(metrics)
    except TypeError:
        raise ValueError(f"{expected}, got {metrics!r}") from None
    if not metrics:
        raise ValueError(f"{expected}, got none")
    chosen = {}
    for metric in metrics:
        if isinstance(metric, str) and metric in NAMED:
            metric = NAMED[metric]
        elif not isinstance(metric, Metric):
            raise ValueError(f"{expected}, got {metric!r}")
        if metric.name in chosen and chosen[metric.name] != metric:
            raise ValueError(f"metrics: {chosen[metric.name]!r} and {metric!r} both give the result key "
                             f"{metric.name!r}; keep one")
        chosen[metric.name] = metric
    return tuple(chosen.values())
