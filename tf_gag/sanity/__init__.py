"""Sanity checks for saliency methods: model randomization and model perturbation.

    >>> result = tf_gag.sanity.randomization(model, images, ["vg", "ig", "gb", "gag"], layers=8)
    >>> result.to_markdown()            # mean Spearman of |maps| per randomized depth and method
    >>> result.plot(path="cascading.png")
    >>> tf_gag.sanity.perturbation(model, images, ["vg", "gb"], noise=[0.005, 0.01])

See `tf_gag.sanity.checks` for what is re-drawn and how, and
`tf_gag.sanity.similarity` for the measures.
"""
from .checks import DEFAULT_METHODS, DEFAULT_NOISE, perturbation, randomization
from .result import SanityResult
from .similarity import SIMILARITIES, spearman, ssim

__all__ = [
    "DEFAULT_METHODS", "DEFAULT_NOISE", "SIMILARITIES", "SanityResult", "perturbation", "randomization", "spearman",
    "ssim",
]
