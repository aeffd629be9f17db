"""Metrics of saliency maps as batched TensorFlow ops; `tf_gag.evaluate` runs them.

Each metric is an object that owns its options (checked when built,
immutable), names its result key and better direction, and scores a batch;
called on its own it is `evaluate` with only it (`tf_gag.metrics.base`).
Strings name the default objects (``METRICS``).

* `RCAP` (`rcap`) — the paper's metric (recover into black, predict).
* `Deletion`, `Insertion` (`auc`) — Deletion and Insertion AUC (percentile and RISE schedules).
* `LogCoshDice`, `MAE` (`segmentation`) — log-cosh Dice loss, MAE and the paper's sqrt(MAE) against masks.
* `reveal` — the shared machinery: thresholds from sorted maps, one tie rule,
  composite images built as masks and scored in batches.
"""
from .auc import Deletion, Insertion
from .base import Metric
from .named import METRICS
from .rcap import RCAP
from .reveal import CONVENTIONS
from .segmentation import MAE, LogCoshDice, log_cosh_dice, mae, sqrt_mae

__all__ = ["CONVENTIONS", "Deletion", "Insertion", "LogCoshDice", "MAE", "METRICS", "Metric", "RCAP",
           "log_cosh_dice", "mae", "sqrt_mae"]
