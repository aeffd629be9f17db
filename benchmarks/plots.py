"""The plots of RESULTS.md, drawn from the result files the other benchmarks wrote.

    .venv/bin/python -m benchmarks.plots

Reads ``results/{tables,parity,performance,against_xplique}.json`` (whichever
exist) and writes beside them:

* ``table1.png``: RCAP, DAUC and IAUC of GAG against its quantile p;
* ``table2.png``: RCAP of every method of Table 2, reversed variants beside
  their originals;
* ``table3.png``: the +/-/A/G/GA ablation ratios per metric;
* ``speed.png``: speed-ups against mlxops-xai and xplique, and tf_gag's time
  over its unavoidable model passes, each with its target.

No measurement happens here: every bar is a number from a result file.
"""
import json
import os
import sys

from benchmarks.report import RESULTS


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


def table1(plt, tables):
    ps = sorted(tables["table1"], key=int)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, metric in zip(axes, ("rcap", "dauc", "iauc")):
        ax.plot([int(p) for p in ps], [tables["table1"][p][metric] for p in ps], marker="o")
        ax.set_xlabel("GAG quantile p (%)")
        ax.set_title(metric.upper() + (" (lower is better)" if metric == "dauc" else ""))
    fig.suptitle(f"Table 1 on {len(tables['images'])} images (EfficientNet-Lite0)")
    return _save(fig, "table1")


def table2(plt, tables):
    scores = tables["table2"]
    originals = [m for m in scores if not m.endswith("^R")]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    positions = range(len(originals))
    ax.bar([i - 0.2 for i in positions], [scores[m]["rcap"] for m in originals], width=0.4, label="method")
    reversed_ = [(i, scores[m + "^R"]["rcap"]) for i, m in enumerate(originals) if m + "^R" in scores]
    ax.bar([i + 0.2 for i, _ in reversed_], [v for _, v in reversed_], width=0.4, label="reversed (^R)")
    ax.set_xticks(list(positions), originals, rotation=30)
    ax.set_ylabel("RCAP (higher is better)")
    ax.legend()
    ax.set_title(f"Table 2: RCAP on {len(tables['images'])} images (EfficientNet-Lite0)")
    return _save(fig, "table2")


def table3(plt, tables):
    ratios = tables["table3"]
    variants = list(ratios)
    metrics = ("rcap", "dauc", "iauc")
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(metrics)
    for j, metric in enumerate(metrics):
        ax.bar([i + (j - 1) * width for i in range(len(variants))], [ratios[v][metric] for v in variants],
               width=width, label=metric.upper())
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(variants)), variants)
    ax.set_ylabel("variant / original (mean over methods)")
    ax.legend()
    ax.set_title("Table 3: the +/-/A/G/GA ablation")
    return _save(fig, "table3")


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
    if tables:
        written += [table1(plt, tables), table2(plt, tables), table3(plt, tables)]
    written.append(speed(plt, _load("parity"), _load("performance"), _load("against_xplique")))
    written = [w for w in written if w]
    print("wrote", *written)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
