"""The plots of RESULTS.md, drawn from the result files the other benchmarks wrote.

    .venv/bin/python -m benchmarks.plots

Reads ``results/{tables,parity,performance,against_xplique}.json`` (whichever
exist) and writes beside them:

* ``table1.png``, ``table2.png``, ``table3.png``: Tables 1-3 drawn as
  ``tf-gag benchmark`` draws them (`tf_gag.viz.benchmark_figures`: GAG's
  RCAP, DAUC and IAUC against its quantile p; every method's RCAP, reversed
  variants beside their originals; the +/-/A/G/GA ablation ratios per metric),
  as ``benchmarks.tables`` also writes them;
* ``speed.png``: speed-ups against mlxops-xai and xplique, and tf_gag's time
  over its unavoidable model passes, each with its target.

No measurement happens here: every bar is a number from a result file.
"""
import json
import os
import sys

from benchmarks.report import RESULTS
from tf_gag.tools import viz


def _load(name):
    path = os.path.join(RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _save(fig, name):
    path = os.path.join(RESULTS, f"{name}.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def speed(plt, parity, performance, xplique):
    bars = []  # (label, value, target or None, higher_is_better)
    if parity:
        ours, theirs = parity["seconds_tf_gag"], parity["seconds_mlxops_xai"]
        for work in ours:  # the 1.5x target covers GAG, SmoothGrad, IG and RCAP
            target = 1.5 if work in ("guided_absolute_grad", "smoothgrad", "integrated_gradients", "rcap") else None
            bars.append((f"{work}\nvs mlxops-xai", theirs[work] / ours[work], target, True))
    if xplique:
        for row in xplique["rows"]:
            bars.append((f"{row['work']}\nvs xplique", row["speedup"], 1.0, True))
    if performance:
        for row in performance["rows"]:
            if row["work"].startswith("peak RSS"):
                continue
            bars.append((f"{row['work']}\nover its passes", float(row["ratio"]), float(row["target"]), False))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(bars) + 1))
    for i, (_label, value, target, higher) in enumerate(bars):
        if target is None:
            ax.barh(i, value, color="tab:gray")
            continue
        met = value >= target if higher else value <= target
        ax.barh(i, value, color="tab:green" if met else "tab:red")
        ax.plot([target, target], [i - 0.4, i + 0.4], color="black")
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ratio (black tick: target; green: met, red: missed, grey: no target)")
    ax.set_title("Speed")
    return _save(fig, "speed")


def main(argv=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    tables = _load("tables")
    if tables:  # the figures tf-gag benchmark draws (tf_gag.viz.benchmark_figures)
        written += [_save(figure, name) for name, figure in viz.benchmark_figures(tables).items()]
    written.append(speed(plt, _load("parity"), _load("performance"), _load("against_xplique")))
    written = [w for w in written if w]
    print("wrote", *written)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
