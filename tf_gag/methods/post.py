"""After the fold: how a method's raw attributions become one value per pixel (the ``post`` slot).

A post-fold stage maps (N, H, W, C) attributions (and the images they
explain) to (N, H, W) values; the maps are then min-max normalised to [0, 1]
(`tf_gag.ops.normalize_maps`) and, when asked, reversed
(`tf_gag.reverse_maps`). ``abs_sum`` (every built-in method) sums absolute
values over channels; ``xrai`` aggregates them over image regions
(`tf_gag.methods.xrai`, on the host). A stage runs on TF tensors
(``in_graph``: also inside serving graphs and replicas) or on the host.
"""
from .. import ops
from .part import Part
from .xrai import XRAI


class PostStage(Part):
    """Base: ``__call__(attributions, images) -> (N, H, W)``. ``in_graph``: its ops run inside a TF graph."""

    in_graph = True

    def __call__(self, attributions, images):
        raise NotImplementedError


class AbsSum(PostStage):
    """The sum of absolute values over channels (the paper's channel reduction)."""

    name = "abs_sum"

    def __call__(self, attributions, images):
        return ops.reduce_channels(attributions)


POST_STAGES = {cls.name: cls for cls in (AbsSum, XRAI)}
