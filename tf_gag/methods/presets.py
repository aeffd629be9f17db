"""The named methods: presets of modification x interpretation x aggregation.

Each preset names its three parts; its options are those of the parts it
uses, with the paper's experimental settings as defaults (n = 20 samples or
steps, noise 0.15 x the image's value range, p = 0.85). The paper's ablation
``variant`` swaps the interpretation and aggregation:

=======  ====================  ======================
variant  interpretation        aggregation
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
"""
from dataclasses import dataclass, field

from . import modifications as mods
from .aggregations import Mean, Variance, VarianceGuided
from .interpretations import INTERPRETATIONS

MODIFICATION_OPTIONS = {
    "identity": (mods.Identity, {}),
    "noise": (mods.GaussianNoise, {"n_samples": 20, "noise_level": 0.15, "noise_range": "image"}),
    "straight": (mods.StraightPath, {"steps": 20, "baseline": "zeros", "path_points": "midpoint", "trials": 1}),
    "blur": (
        mods.BlurPath,
        {"steps": 20, "max_sigma": 50.0, "grad_step": 0.01, "kernel_size": None, "reference_sign": False},
    ),
    "guided_path": (mods.GuidedPath, {"steps": 20, "fraction": 0.25, "max_dist": 0.1, "baseline": "zeros"}),
}

AGGREGATION_OPTIONS = {
    "mean": (Mean, {}),
    "variance": (Variance, {}),
    "guided": (VarianceGuided, {"p": 0.85, "guide": "scaled", "quantile_over": "image", "strict": False}),
}

VARIANTS = {
    "+": ("positive", "mean"),
    "-": ("negative", "mean"),
    "A": ("absolute", "mean"),
    "G": ("signed", "guided"),
    "GA": ("absolute", "guided"),
}

COMMON_OPTIONS = {"objective": "logit"}


@dataclass(frozen=True)
class Preset:
    """A named method: which parts it is made of."""

    name: str
    summary: str
    modification: str
    interpretation: str
    aggregation: str
    aliases: tuple = ()
    guided_relu: bool = False
    variants: bool = False
    extra_options: dict = field(default_factory=dict)


PRESETS = {
    p.name: p
    for p in (
        Preset("vanilla_gradient", "|d logit / d x| (Simonyan et al.)", "identity", "signed", "mean", ("vg", "gradient")),
        Preset("smoothgrad", "mean gradient over noisy copies", "noise", "signed", "mean", ("sg",), variants=True),
        Preset("vargrad", "variance of gradients over noisy copies", "noise", "signed", "variance", ("var",)),
        Preset("absolute_grad", "mean |gradient| over noisy copies (GAG with p = 0)", "noise", "absolute", "mean", ("ag",)),
        Preset(
            "guided_absolute_grad",
            "mean |gradient| guided by the gradient variance (the paper's GAG)",
            "noise",
            "absolute",
            "guided",
            ("gag",),
        ),
        Preset("integrated_gradients", "path integral from a baseline", "straight", "signed", "mean", ("ig",), variants=True),
        Preset("guided_ig", "Guided Integrated Gradients (adaptive path)", "guided_path", "signed", "mean", ("gig",), variants=True),
        Preset("blur_ig", "Blur Integrated Gradients (path through blurs)", "blur", "signed", "mean", ("big", "blurig"), variants=True),
        Preset(
            "guided_backprop",
            "gradient through guided ReLUs (Springenberg et al.)",
            "identity",
            "signed",
            "mean",
            ("gb",),
            guided_relu=True,
            variants=True,
        ),
        Preset("grad_cam", "Grad-CAM on a feature layer (Selvaraju et al.)", "gradcam", "", "", ("gradcam", "cam"), extra_options={"layer": None}),
    )
}

ALIASES = {alias: p.name for p in PRESETS.values() for alias in (p.name,) + p.aliases}


def resolve_method(method):
    """The preset for a method name or alias (case-insensitive)."""
    if not isinstance(method, str):
        raise TypeError(f"method: expected a method name (str), got {type(method).__name__}")
    key = method.strip().lower().replace("-", "_")
    if key not in ALIASES:
        raise ValueError(f"method: unknown method {method!r}; choose one of {sorted(ALIASES)}")
    return PRESETS[ALIASES[key]]


def parts_of(preset, variant):
    """(modification kind, interpretation name, aggregation kind) for a preset and variant."""
    if variant is None:
        return preset.modification, preset.interpretation, preset.aggregation
    if not preset.variants:
        allowed = sorted(p.name for p in PRESETS.values() if p.variants)
        raise ValueError(f"variant: {preset.name} has no ablation variants; methods with variants: {allowed}")
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    interpretation, aggregation = VARIANTS[variant]
    modification = preset.modification
    if aggregation == "guided" and modification == "identity":
        modification = "noise"
    return modification, interpretation, aggregation


def option_defaults(preset, variant=None):
    """Every option the method (with this variant) accepts, with its default."""
    if preset.modification == "gradcam":
        return {**COMMON_OPTIONS, **preset.extra_options}
    modification, _, aggregation = parts_of(preset, variant)
    return {**COMMON_OPTIONS, **MODIFICATION_OPTIONS[modification][1], **AGGREGATION_OPTIONS[aggregation][1]}


def build_parts(preset, variant, options, black=None):
    """Instantiate (modification, interpretation fn, aggregation) from validated options."""
    modification_kind, interpretation, aggregation_kind = parts_of(preset, variant)
    mod_class, mod_defaults = MODIFICATION_OPTIONS[modification_kind]
    mod_kwargs = {k: options[k] for k in mod_defaults}
    if modification_kind in ("straight", "guided_path"):
        mod_kwargs["black"] = black
    modification = mod_class(**mod_kwargs)
    agg_class, agg_defaults = AGGREGATION_OPTIONS[aggregation_kind]
    aggregation = agg_class(**{k: options[k] for k in agg_defaults})
    if aggregation.needs_variance and modification.n_jobs < 2:
        name = "n_samples" if modification_kind == "noise" else "steps"
        raise ValueError(f"{name}: a variance needs at least 2 samples, got {modification.n_jobs}")
    return modification, INTERPRETATIONS[interpretation], aggregation
