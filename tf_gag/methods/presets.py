"""The named methods: each a preset of five parts, one line apiece.

A preset names its source, backward rule, modification, interpretation and fold
(`tf_gag.methods.sources`, `rules`, `modifications`, `interpretations`,
`folds`); its options are those of its parts, with the paper's experimental
settings as defaults (n = 20 samples or steps, noise 0.15 x the image's value
range, p = 0.85), plus ``objective`` and, for every method that does not sample
noise already, ``noise_samples`` (> 0 runs it over that many noisy copies:
SmoothGrad of the method). The paper's ablation ``variant`` swaps the
interpretation and fold:

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
"""
from dataclasses import dataclass, field

from ..io.checks import check_choice
from .engine import Parts
from .folds import FOLDS
from .interpretations import INTERPRETATIONS
from .kernel import OBJECTIVES
from .modifications import MODIFICATIONS, GaussianNoise, Noised
from .rules import RULES
from .sources import SOURCES

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
    """A named method: which part fills each of the five slots, and option defaults of its own."""

    name: str
    summary: str
    source: str
    rule: str
    modification: str
    interpretation: str
    fold: str
    aliases: tuple = ()
    variants: bool = False
    defaults: dict = field(default_factory=dict)


PRESETS = {
    p.name: p
    for p in (
        Preset("vanilla_gradient", "d logit / d x (Simonyan et al.)", "input", "plain", "identity", "signed", "mean",
               ("vg", "gradient")),
        Preset("smoothgrad", "mean gradient over noisy copies", "input", "plain", "noise", "signed", "mean", ("sg",),
               variants=True),
        Preset("smoothgrad_squared", "mean squared gradient over noisy copies (SmoothGrad-Squared)", "input", "plain",
               "noise", "square", "mean", ("sg2", "squaregrad")),
        Preset("vargrad", "variance of gradients over noisy copies", "input", "plain", "noise", "signed", "variance",
               ("var",)),
        Preset("absolute_grad", "mean |gradient| over noisy copies (GAG with p = 0)", "input", "plain", "noise",
               "absolute", "mean", ("ag",)),
        Preset("guided_absolute_grad", "mean |gradient| guided by the gradient variance (the paper's GAG)", "input",
               "plain", "noise", "absolute", "guided", ("gag",)),
        Preset("integrated_gradients", "path integral from a baseline", "input", "plain", "straight", "signed", "mean",
               ("ig",), variants=True),
        Preset("smooth_ig", "Integrated Gradients averaged over noisy copies (SmoothGrad over IG)", "input", "plain",
               "straight", "signed", "mean", ("sig",), defaults={"noise_samples": 10, "steps": 10}),
        Preset("guided_ig", "Guided Integrated Gradients (adaptive path)", "input", "plain", "guided_path", "signed",
               "mean", ("gig",), variants=True),
        Preset("blur_ig", "Blur Integrated Gradients (path through blurs)", "input", "plain", "blur", "signed", "mean",
               ("big", "blurig"), variants=True),
        Preset("guided_backprop", "gradient through guided ReLUs (Springenberg et al.)", "input", "guided", "identity",
               "signed", "mean", ("gb",), variants=True),
        Preset("grad_cam", "Grad-CAM on a feature layer (Selvaraju et al.)", "layer", "plain", "identity", "signed",
               "mean", ("gradcam", "cam")),
        Preset("geometrically_guided_ig", "Geometrically Guided IG: per feature, the largest attribution over scaled "
               "(optionally ascended) inputs (Rahman et al.)", "input", "plain", "scaled_path", "signed", "select",
               ("ggig",)),
        Preset("rectified_gradients", "Rectified Gradients: input x gradient through importance-thresholded ReLUs "
               "(Kim et al.)", "input", "rectified", "times_input", "signed", "mean", ("rectgrad",), variants=True),
        Preset("rectified_gradients_nobias", "Rectified Gradients without the input multiplication (Brocki & Chung's "
               "input-bias fix)", "input", "rectified", "identity", "signed", "mean", ("rectgrad_nobias",),
               variants=True),
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


def slots(preset, variant):
    """{slot: part name} of a preset with a variant applied."""
    names = {s: getattr(preset, s) for s in ("source", "rule", "modification", "interpretation", "fold")}
    if variant is None:
        return names
    if not preset.variants:
        allowed = sorted(p.name for p in PRESETS.values() if p.variants)
        raise ValueError(f"variant: {preset.name} has no ablation variants; methods with variants: {allowed}")
    check_choice("variant", variant, VARIANTS)
    names["interpretation"], names["fold"] = VARIANTS[variant]
    if FOLDS[names["fold"]].min_samples > 1 and names["modification"] == "identity":
        names["modification"] = "noise"
    return names


def _classes(names):
    return {
        "source": SOURCES[names["source"]],
        "rule": RULES[names["rule"]],
        "modification": MODIFICATIONS[names["modification"]],
        "interpretation": INTERPRETATIONS[names["interpretation"]],
        "fold": FOLDS[names["fold"]],
    }


def option_defaults(preset, variant=None):
    """Every option the method (with this variant) accepts, with its default."""
    classes = _classes(slots(preset, variant))
    options = dict(COMMON_OPTIONS)
    for cls in classes.values():
        options.update(cls.options)
    if classes["modification"] is not GaussianNoise:
        options.update(Noised.options)
    options.update(preset.defaults)
    return options


def build_parts(preset, variant, options, black=None):
    """The method's `Parts` from options (every key of `option_defaults`), each checked by the part that takes it."""
    check_choice("objective", options["objective"], OBJECTIVES)
    classes = _classes(slots(preset, variant))

    def built(slot, **extra):
        cls = classes[slot]
        return cls(**{key: options[key] for key in cls.options}, **extra)

    mod_class = classes["modification"]
    modification = built("modification", **({"black": black} if mod_class.needs_black else {}))
    if "noise_samples" in options:  # a method without noise of its own, run over noisy copies when > 0
        noise = {key: options[key] for key in Noised.options}
        if Noised.check_options(**noise):
            modification = Noised(modification, **noise)
    fold = built("fold")
    if modification.n_jobs < fold.min_samples:
        name = "n_samples" if mod_class is GaussianNoise else "steps" if "steps" in mod_class.options else None
        name = name or "noise_samples"  # a single-job method samples only under noise
        raise ValueError(f"{name}: a variance needs at least {fold.min_samples} samples, got {modification.n_jobs}")
    return Parts(built("source"), built("rule"), modification, built("interpretation"), fold, options["objective"])
