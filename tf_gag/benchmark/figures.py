"""The figures of a benchmark run's tables (`tf_gag.benchmark.run` writes them as table1.png ... beside tables.md).

Drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``): no
pyplot state, no backend switch. `tf_gag.viz.benchmark_figures` is this function.
"""
import os

from .plan import LABELS


def benchmark_figures(tables):
    """The tables of `tf_gag.benchmark.run` as figures: {"table1", "table2", "table3": Figure}, those with rows.

    * ``table1``: each of Table 1's metrics (RCAP, DAUC, IAUC) against GAG's quantile p;
    * ``table2``: every method's RCAP (the first metric, without RCAP), each reversed map beside its original;
    * ``table3``: the variants' ratios to their originals, per metric, with the line at 1.
    """
    from matplotlib.figure import Figure

    def panels(columns, figsize):  # a Figure outside pyplot and its row of axes
        fig = Figure(figsize=figsize)
        return fig, fig.subplots(1, columns, squeeze=False)

    model = os.path.basename(os.path.normpath(tables["settings"]["model"]))
    images = len(tables["images"])
    metrics = tables["settings"]["metrics"]
    curves = [m for m in metrics if m not in tables["mask_metrics"]]
    figures = {}
    if tables["table1"] and curves:
        ps = list(tables["table1"])
        fig, axes = panels(len(curves), (11 / 3 * len(curves), 3.2))
        for ax, metric in zip(axes[0], curves):
            ax.plot([int(p) for p in ps], [tables["table1"][p][metric] for p in ps], marker="o")
            ax.set_xlabel("GAG quantile p (%)")
            ax.set_title(f"{LABELS[metric]} ({tables['better'][metric]} is better)")
        fig.suptitle(f"Table 1 on {images} images ({model})")
        figures["table1"] = fig
    scores = tables["table2"]
    metric = "rcap" if "rcap" in metrics else metrics[0]
    originals = [m for m in scores if not m.endswith("^R")]
    fig, axes = panels(1, (9, 3.6))
    ax = axes[0][0]
    ax.bar([i - 0.2 for i in range(len(originals))], [scores[m][metric] for m in originals], width=0.4,
           label="method")
    reversed_ = [(i, scores[m + "^R"][metric]) for i, m in enumerate(originals) if m + "^R" in scores]
    if reversed_:
        ax.bar([i + 0.2 for i, _ in reversed_], [v for _, v in reversed_], width=0.4, label="reversed (^R)")
    ax.set_xticks(range(len(originals)))
    ax.set_xticklabels(originals, rotation=30)
    ax.set_ylabel(f"{LABELS[metric]} ({tables['better'][metric]} is better)")
    ax.legend()
    ax.set_title(f"Table 2: {LABELS[metric]} on {images} images ({model})")
    figures["table2"] = fig
    if tables["table3"]:
        variants, shown = list(tables["table3"]), curves or metrics
        fig, axes = panels(1, (8, 3.4))
        ax = axes[0][0]
        width = 0.8 / len(shown)
        for j, name in enumerate(shown):
            ax.bar([i + (j - (len(shown) - 1) / 2) * width for i in range(len(variants))],
                   [tables["table3"][v][name] for v in variants], width=width, label=LABELS[name])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants)
        ax.set_ylabel("variant / original (mean over methods)")
        ax.legend()
        ax.set_title("Table 3: the +/-/A/G/GA ablation")
        figures["table3"] = fig
    for fig in figures.values():
        fig.tight_layout()
    return figures
