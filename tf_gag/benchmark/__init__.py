"""The paper's Tables 1-3 on a folder of images, resumable: the engine of ``tf-gag benchmark``.

    >>> tables = tf_gag.benchmark.run("/data/ImageNetS919", "efficientnet_lite0", "bench/")
    >>> tables = tf_gag.benchmark.run("photos/", "model.onnx", "bench/", methods="gag,sg,vg", resume=True)

* `plan` — which methods, options and metrics make each table (one `Unit` per row or cell group);
* `data` — the folder's images, masks and labels, batch by batch (ImageNet-S, or images with masks);
* `store` — the run's folder: its settings, one result file per unit and batch written atomically, resuming;
* `tables` — the stored scores as Tables 1-3 and Markdown (the figures are `tf_gag.viz.benchmark_figures`);
* `compute` — `run`: the plan over the data into the store, then the tables.

``benchmarks/tables.py`` runs it on the ten offline photos.
"""


def __getattr__(name):
    """`run` imports TensorFlow: like tf_gag's own names it loads on first use, so `tables` stays light."""
    if name == "run":
        from .compute import run

        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
