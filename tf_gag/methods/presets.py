"""The built-in methods: each a `Method` of named parts, one entry apiece, registered in this order.

`BUILTIN` is the only list of them: the registry (`tf_gag.methods.registry`)
registers it, and the public classes (``tf_gag.SmoothGrad``...), ``__all__``,
`tf_gag.list_methods` and the tests' method matrix are derived from it.
Options are those of the parts, with the paper's experimental settings as
defaults (n = 20 samples or steps, noise 0.15 x the image's value range,
p = 0.85), plus ``objective`` and, for every method that does not sample
noise already, ``noise_samples`` (> 0 runs it over that many noisy copies:
SmoothGrad of the method). The paper's ablation ``variant`` swaps the
interpretation and fold (`tf_gag.methods.method.VARIANTS`):

=======  ====================  ======================
variant  interpretation        fold
=======  ====================  ======================
``+``    positive part         mean
``-``    negative part         mean
``A``    absolute value        mean
``G``    signed                variance guide
``GA``   absolute value        variance guide
=======  ====================  ======================

A variance needs several samples: a ``G``/``GA`` variant of a single-sample
method (Guided Backprop) samples it under Gaussian noise (the ``n_samples``,
``noise_level`` and ``noise_range`` options).

No TensorFlow is imported here, so ``import tf_gag`` names the classes cheaply.
"""
from typing import NamedTuple, Tuple

from .method import Method


class Builtin(NamedTuple):
    """A built-in method: its name, its public class's name, its aliases and its parts."""

    name: str
    class_name: str
    aliases: Tuple[str, ...]
    method: Method


def _cam(weighting, summary, **extra):
    return Method(source="layer", cam=weighting, summary=summary, **extra)


BUILTIN = (
    Builtin("vanilla_gradient", "VanillaGradient", ("vg", "gradient"),
            Method(summary="d logit / d x (Simonyan et al.)")),
    Builtin("smoothgrad", "SmoothGrad", ("sg",),
            Method(modification="noise", summary="mean gradient over noisy copies", variants=True)),
    Builtin("smoothgrad_squared", "SmoothGradSquared", ("sg2", "squaregrad"),
            Method(modification="noise", interpretation="square",
                   summary="mean squared gradient over noisy copies (SmoothGrad-Squared)")),
    Builtin("vargrad", "VarGrad", ("var",),
            Method(modification="noise", fold="variance", summary="variance of gradients over noisy copies")),
    Builtin("absolute_grad", "AbsoluteGrad", ("ag",),
            Method(modification="noise", interpretation="absolute",
                   summary="mean |gradient| over noisy copies (GAG with p = 0)")),
    Builtin("guided_absolute_grad", "GuidedAbsoluteGrad", ("gag",),
            Method(modification="noise", interpretation="absolute", fold="guided",
                   summary="mean |gradient| guided by the gradient variance (the paper's GAG)")),
    Builtin("integrated_gradients", "IntegratedGradients", ("ig",),
            Method(modification="straight", summary="path integral from a baseline", variants=True)),
    Builtin("smooth_ig", "SmoothIG", ("sig",),
            Method(modification="straight", defaults={"noise_samples": 10, "steps": 10},
                   summary="Integrated Gradients averaged over noisy copies (SmoothGrad over IG)")),
    Builtin("guided_ig", "GuidedIG", ("gig",),
            Method(modification="guided_path", summary="Guided Integrated Gradients (adaptive path)", variants=True)),
    Builtin("blur_ig", "BlurIG", ("big", "blurig"),
            Method(modification="blur", summary="Blur Integrated Gradients (path through blurs)", variants=True)),
    Builtin("idgi", "IDGI", ("ig_idgi",),
            Method(modification="straight", defaults={"idgi": True},
                   summary="Integrated Decision Gradients over IG's straight path (Yang et al.)")),
    Builtin("guided_idgi", "GuidedIDGI", ("gig_idgi",),
            Method(modification="guided_path", defaults={"idgi": True},
                   summary="Integrated Decision Gradients over Guided IG's adaptive path")),
    Builtin("blur_idgi", "BlurIDGI", ("big_idgi",),
            Method(modification="blur", defaults={"idgi": True},
                   summary="Integrated Decision Gradients over BlurIG's blur path")),
    Builtin("xrai", "XRAI", (),
            Method(modification="straight", post="xrai", defaults={"baseline": "min_max", "trials": 2},
                   summary="XRAI: IG (from the image's min and max) aggregated over image regions grown greedily "
                           "(Kapishnikov et al.)")),
    Builtin("guided_backprop", "GuidedBackprop", ("gb",),
            Method(rule="guided", summary="gradient through guided ReLUs (Springenberg et al.)", variants=True)),
    Builtin("grad_cam", "GradCAM", ("gradcam", "cam"),
            _cam("grad_cam", "Grad-CAM on a feature layer (Selvaraju et al.)")),
    Builtin("grad_cam_plus_plus", "GradCAMPlusPlus", ("gradcam++", "grad_cam_pp"),
            _cam("grad_cam_pp", "Grad-CAM++: positive gradients weighted by higher-order terms (Chattopadhay et al.)")),
    Builtin("xgrad_cam", "XGradCAM", ("xgradcam",),
            _cam("xgrad_cam", "XGrad-CAM: gradients weighted by the activations' share (Fu et al.)")),
    Builtin("hires_cam", "HiResCAM", ("hirescam",),
            _cam("hires_cam", "HiResCAM: gradient x activation per pixel (Draelos & Carin)")),
    Builtin("layer_cam", "LayerCAM", ("layercam",),
            _cam("layer_cam", "LayerCAM: positive gradient x activation per pixel (Jiang et al.)")),
    Builtin("score_cam", "ScoreCAM", ("scorecam",),
            _cam("score_cam", "Score-CAM: channels weighted by the scores of masked images (Wang et al.)")),
    Builtin("geometrically_guided_ig", "GeometricallyGuidedIG", ("ggig",),
            Method(modification="scaled_path", fold="select",
                   summary="Geometrically Guided IG: per feature, the largest attribution over scaled (optionally "
                           "ascended) inputs (Rahman et al.)")),
    Builtin("deconvnet", "Deconvnet", ("deconv",),
            Method(rule="deconvnet", summary="gradient through ReLUs that pass its positive part (Zeiler & Fergus)")),
    Builtin("lrp_epsilon", "LRPEpsilon", ("lrp", "lrp_0"),
            Method(rule="lrp_epsilon", modification="relevance",
                   summary="LRP-epsilon at every Dense and convolution layer (epsilon=0: LRP-0; Bach et al.)")),
    Builtin("lrp_epsilon_plus", "LRPEpsilonPlus", ("epsilon_plus",),
            Method(rule="epsilon_plus", modification="relevance",
                   summary="LRP composite: z+ at convolutions, epsilon at Dense layers (zennit's EpsilonPlus)")),
    Builtin("lrp_epsilon_plus_flat", "LRPEpsilonPlusFlat", ("epsilon_plus_flat",),
            Method(rule="epsilon_plus_flat", modification="relevance",
                   summary="LRP composite: EpsilonPlus with the flat rule at the first layer")),
    Builtin("lrp_epsilon_gamma_box", "LRPEpsilonGammaBox", ("epsilon_gamma_box",),
            Method(rule="epsilon_gamma_box", modification="relevance",
                   summary="LRP composite: z^B at the first convolution, gamma at the others, epsilon at Dense "
                           "layers (zennit's EpsilonGammaBox)")),
    Builtin("lrp_epsilon_alpha2_beta1", "LRPEpsilonAlpha2Beta1", ("epsilon_alpha2_beta1",),
            Method(rule="epsilon_alpha2_beta1", modification="relevance",
                   summary="LRP composite: alpha2-beta1 at convolutions, epsilon at Dense layers")),
    Builtin("attn_lrp", "AttnLRP", ("attnlrp",),
            Method(rule="attn_lrp", modification="relevance",
                   summary="AttnLRP for transformers: softmax, uniform matmul and identity rules in attention, "
                           "norms and GELU, gamma at convolutions and Dense layers (Achtibat et al.)")),
    Builtin("cp_lrp", "CPLRP", ("cplrp",),
            Method(rule="cp_lrp", modification="relevance",
                   summary="AttnLRP with CP-LRP in attention: no relevance through the softmax (Ali et al.; "
                           "LXT's vision transformer recipe)")),
    Builtin("rectified_gradients", "RectifiedGradients", ("rectgrad",),
            Method(rule="rectified", modification="times_input", variants=True,
                   summary="Rectified Gradients: input x gradient through importance-thresholded ReLUs (Kim et al.)")),
    Builtin("rectified_gradients_nobias", "RectifiedGradientsNoBias", ("rectgrad_nobias",),
            Method(rule="rectified", variants=True,
                   summary="Rectified Gradients without the input multiplication (Brocki & Chung's input-bias fix)")),
)
