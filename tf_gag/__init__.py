"""tf_gag: gradient saliency maps for TensorFlow/Keras image classifiers.

Home of Guided AbsoluteGrad (GAG; Huang & Liu, "Guided AbsoluteGrad:
Magnitude of Gradients Matters to Explanation's Localization and Saliency")
and the methods it is compared with, each a preset of five parts (source x
backward rule x modification x interpretation x fold) run by one engine.

    >>> maps = tf_gag.explain(model, images)                  # GAG, (N, H, W) in [0, 1]
    >>> maps = tf_gag.explain(model, images, "smoothgrad", variant="GA")
    >>> tf_gag.list_methods()
    >>> result = tf_gag.evaluate(model, images, "gag")        # RCAP, DAUC, IAUC per image
    >>> result = tf_gag.evaluate(model, dataset, "gag")       # a tf.data.Dataset, streamed
    >>> result = tf_gag.evaluate(model, images, maps, metrics=[tf_gag.RCAP(lower_bound=40), "dauc"])
    >>> tf_gag.sanity.randomization(model, images, ["vg", "gb"], layers=8)  # sanity checks
"""
from . import metrics, sanity
from .api import (
    AbsoluteGrad,
    BlurIG,
    Explainer,
    GeometricallyGuidedIG,
    GradCAM,
    GuidedAbsoluteGrad,
    GuidedBackprop,
    GuidedIG,
    IntegratedGradients,
    RectifiedGradients,
    RectifiedGradientsNoBias,
    SmoothGrad,
    SmoothGradSquared,
    SmoothIG,
    VanillaGradient,
    VarGrad,
    attributions,
    explain,
    list_methods,
)
from .errors import PartialResultError
from .evaluation import EvaluationResult, evaluate
from .io import imageio
from .io.imagenet_s import load_imagenet_s
from .methods.reversed import reverse_maps
from .metrics import MAE, METRICS, RCAP, Deletion, Insertion, LogCoshDice
from .model import ModelAdapter, Preprocessing, load_model
from .tools import assets, viz
from .tools.serving import export_saved_model

__version__ = "0.1.0"

__all__ = [
    "AbsoluteGrad",
    "BlurIG",
    "Deletion",
    "EvaluationResult",
    "Explainer",
    "GeometricallyGuidedIG",
    "GradCAM",
    "GuidedAbsoluteGrad",
    "GuidedBackprop",
    "GuidedIG",
    "Insertion",
    "IntegratedGradients",
    "RectifiedGradients",
    "RectifiedGradientsNoBias",
    "LogCoshDice",
    "MAE",
    "METRICS",
    "ModelAdapter",
    "PartialResultError",
    "Preprocessing",
    "RCAP",
    "SmoothGrad",
    "SmoothGradSquared",
    "SmoothIG",
    "VanillaGradient",
    "VarGrad",
    "attributions",
    "assets",
    "evaluate",
    "explain",
    "export_saved_model",
    "imageio",
    "list_methods",
    "load_imagenet_s",
    "load_model",
    "metrics",
    "reverse_maps",
    "sanity",
    "viz",
]
