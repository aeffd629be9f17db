"""Metrics of saliency maps as batched TensorFlow ops; `tf_gag.evaluate` runs them.

* `rcap` — RCAP, the paper's metric (recover into black, predict).
* `auc` — Deletion and Insertion AUC (percentile and RISE schedules).
* `segmentation` — log-cosh Dice loss, MAE and the paper's sqrt(MAE) against masks.
* `reveal` — the shared machinery: thresholds from sorted maps, one tie rule,
  composite images built as masks and scored in batches.
"""
from .reveal import CONVENTIONS
from .segmentation import log_cosh_dice, mae, sqrt_mae

__all__ = ["CONVENTIONS", "log_cosh_dice", "mae", "sqrt_mae"]
