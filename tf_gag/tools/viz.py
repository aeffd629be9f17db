"""Pictures of saliency maps and metric curves (matplotlib, headless, PNG).

    >>> tf_gag.viz.save_png(tf_gag.viz.overlay(pixels[0], maps[0]), "cat.png")
    >>> fig = tf_gag.viz.grid(pixels, {"GAG": gag, "SmoothGrad": sg}, labels=names)
    >>> fig = tf_gag.viz.curves(result)          # RCAP steps, deletion and insertion

``pixels`` are photos as the eye sees them: (H, W, 3) or (N, H, W, 3) with
values 0-255 (or 0-1 floats). Saliency maps are (H, W) or (N, H, W) in [0, 1].
matplotlib is imported on first use and drawn through its object-oriented
API (``matplotlib.figure.Figure``, ``matplotlib.image.imsave``): no pyplot
state, no backend switch, nothing that needs a screen, and the caller's own
matplotlib setup is left as it was.
"""
import os

import numpy as np

from ..benchmark.figures import benchmark_figures  # noqa: F401  (tf_gag.viz.benchmark_figures: the tables' figures)
from ..io.checks import check_number, check_selection

DEFAULT_CMAP = "jet"


def _figure(rows, columns, figsize):
    """A new Figure and its (rows, columns) axes, outside pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, columns, squeeze=False)


def _as_rgb01(pixels, name="pixels"):
    """(..., H, W, 3) float RGB in [0, 1] from 0-255 values, 0-1 floats or grey (H, W)."""
    array = np.asarray(pixels, dtype=np.float64)
    if array.ndim < 2:
        raise ValueError(f"{name}: expected an (H, W, 3) photo, got shape {array.shape}")
    if array.ndim == 2 or array.shape[-1] == 1:
        array = np.repeat(array.reshape(array.shape[:2] + (1,)), 3, axis=-1)
    if array.shape[-1] not in (3, 4):
        raise ValueError(f"{name}: expected RGB (H, W, 3) or grey (H, W), got shape {array.shape}")
    array = array[..., :3]
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array / 255.0 if array.max() > 1.0 else array


def _as_map(saliency, name="saliency"):
    array = np.asarray(saliency, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{name}: expected one (H, W) map, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    low, high = array.min(), array.max()
    if low < 0 or high > 1:  # raw attributions: show them on the same [0, 1] scale as tf_gag's maps
        array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return array


def heatmap(saliency, cmap=DEFAULT_CMAP):
    """An (H, W) map in [0, 1] as a float RGB image (H, W, 3) in [0, 1]."""
    import matplotlib

    return matplotlib.colormaps[cmap](_as_map(saliency))[..., :3]


def _resize_like(saliency, height, width):
    if saliency.shape == (height, width):
        return saliency
    import tensorflow as tf

    return tf.image.resize(saliency[..., None], (height, width), method="bilinear").numpy()[..., 0]


def display_scale(saliency, percentile=99.0):
    """The map divided by its ``percentile``-th value and clipped to [0, 1], for display only.

    Gradient maps put most of their mass in few pixels; without this a handful
    of extreme pixels make the rest invisible. The scores never see it.
    """
    percentile = check_number("percentile", percentile, 0, 100, low_open=True)
    saliency = _as_map(saliency)
    top = np.percentile(saliency, percentile)
    return np.clip(saliency / top, 0.0, 1.0) if top > 0 else saliency


def overlay(photo, saliency, alpha=0.85, cmap=DEFAULT_CMAP, percentile=99.0):
    """The heatmap blended over the dimmed photo: uint8 (H, W, 3).

    The map is resized to the photo if their sizes differ and scaled by
    `display_scale`; each pixel's heat weight is ``alpha`` times its (display)
    saliency, so unimportant pixels show the photo.
    """
    alpha = check_number("alpha", alpha, 0, 1, what="a weight")
    rgb = _as_rgb01(photo, "photo")
    saliency = display_scale(_resize_like(_as_map(saliency), *rgb.shape[:2]), percentile)
    weight = alpha * saliency[..., None]
    blended = (1 - weight) * (0.7 * rgb) + weight * heatmap(saliency, cmap)
    return np.round(np.clip(blended, 0, 1) * 255).astype(np.uint8)


def save_png(image, path):
    """Write an (H, W, 3) uint8 or [0, 1] float image to ``path`` as PNG; returns ``path``."""
    import matplotlib.image

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: the folder {folder} does not exist")
    matplotlib.image.imsave(path, _as_rgb01(image, "image"), format="png")
    return path


def grid(pixels, maps, labels=None, *, alpha=0.85, cmap=DEFAULT_CMAP, percentile=99.0, cell_inches=2.4, path=None,
         dpi=120):
    """A figure: one row per photo, the photo then one overlay per method.

    Args:
      pixels: (N, H, W, 3) photos (0-255 or 0-1).
      maps: {column title: (N, H, W) maps}, in column order.
      labels: N strings written above each photo (e.g. the predicted class).
      path: when given, the figure is saved there as PNG (and closed).
    Returns the matplotlib Figure (None when saved to ``path``).
    """
    cell_inches = check_number("cell_inches", cell_inches, 0, low_open=True)
    photos = _as_rgb01(pixels, "pixels")
    if photos.ndim != 4:
        raise ValueError(f"pixels: expected (N, H, W, 3) photos, got shape {np.shape(pixels)}")
    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps: expected a non-empty {title: (N, H, W) maps} dict")
    n = len(photos)
    for title, values in maps.items():
        if len(values) != n:
            raise ValueError(f"maps[{title!r}]: {len(values)} maps for {n} photos")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels: {len(labels)} labels for {n} photos")
    columns = len(maps) + 1
    fig, axes = _figure(n, columns, (cell_inches * columns, cell_inches * n + 0.4))
    for row in range(n):
        axes[row, 0].imshow(photos[row])
        if labels is not None:
            axes[row, 0].set_title(str(labels[row]), fontsize=9)
        for col, (title, values) in enumerate(maps.items(), start=1):
            axes[row, col].imshow(overlay(photos[row], values[row], alpha, cmap, percentile))
            if row == 0:
                axes[row, col].set_title(title, fontsize=10, fontweight="bold")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.tight_layout()
    return _finish(fig, path, dpi)


def _finish(fig, path, dpi):
    """The figure, or None once saved to ``path`` at ``dpi`` dots per inch."""
    if path is None:
        return fig
    dpi = check_number("dpi", dpi, 0, low_open=True)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: the folder {folder} does not exist")
    fig.savefig(path, dpi=dpi)
    return None


def curves(results, *, path=None, dpi=120):
    """Metric curves of one or several `EvaluationResult`s, averaged over images.

    ``results`` is one result or {label: result} (e.g. one per method). Panels:
    RCAP's recovered-probability steps, and the deletion and insertion curves,
    each with its dataset score in the legend. Returns the Figure (None when
    saved to ``path``).
    """
    if not isinstance(results, dict):
        results = {"": results}
    panels = [name for name in ("rcap", "dauc", "iauc") if any(name in r.curves for r in results.values())]
    if not panels:
        raise ValueError("results: none has RCAP, DAUC or IAUC curves (evaluate with those metrics)")
    fig, axes = _figure(1, len(panels), (4.2 * len(panels), 3.4))
    titles = {"rcap": "RCAP: recovered probability", "dauc": "Deletion", "iauc": "Insertion"}
    for ax, name in zip(axes[0], panels):
        for label, result in results.items():
            if name not in result.curves:
                continue
            curve, done = result.curves[name], result.completed
            x = curve["recovered"] if name == "rcap" else curve["fraction"]
            y = np.nanmean(curve["probability"][done], axis=0)
            score = result.means()[name]
            ax.plot(np.asarray(x) * (100 if name == "rcap" else 1), y, marker="o", markersize=3,
                    label=f"{label} ({score:.3f})".strip())
        ax.set_title(titles[name], fontsize=10)
        ax.set_xlabel("pixels kept (%)" if name == "rcap" else "fraction of pixels " +
                      ("removed" if name == "dauc" else "inserted"))
        ax.set_ylabel("class probability")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, path, dpi)


def sanity_figure(result, measures=("spearman_abs", "spearman", "ssim"), *, path=None, dpi=120):
    """A `tf_gag.sanity.SanityResult` drawn as Adebayo et al. draw it: similarity to the original maps vs step.

    One panel per measure, one line per method; the first point is the
    original model (similarity 1), then each randomized depth or noise level.
    Returns the Figure (None when saved to ``path``).
    """
    titles = {"spearman_abs": "Spearman (absolute maps)", "spearman": "Spearman (signed maps)", "ssim": "SSIM"}
    measures = check_selection("measures", (measures,) if isinstance(measures, str) else measures,
                               f"measures from {list(titles)}")
    labels = ["original"] + [str(step) for step in result.steps]
    fig, axes = _figure(1, len(measures), (max(4.2, 0.28 * len(labels) + 2.0) * len(measures), 4.2))
    for ax, measure in zip(axes[0], measures):
        means = result.means(measure)
        for method, mean in means.items():
            ax.plot(range(len(labels)), np.concatenate([[1.0], mean]), marker="o", markersize=3, label=method)
        lowest = min([0.0] + [float(np.nanmin(m)) for m in means.values() if np.isfinite(m).any()])
        ax.set_title(f"{titles[measure]} — {result.check}", fontsize=10)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=75, ha="right", fontsize=6)
        ax.set_ylabel("similarity to the original maps")
        ax.set_ylim(min(lowest, 0.0) - 0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _finish(fig, path, dpi)
