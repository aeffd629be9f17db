"""A method as a value: the part in each slot, its own option defaults, how it is described.

`Method` names the part in each slot of the flow (inputs -> model -> kernel ->
parts -> maps):

==================  ===============================================  ==========================
slot                decides                                          parts
==================  ===============================================  ==========================
``source``          whose gradient (the input or a layer)            `tf_gag.methods.sources`
``rule``            how gradients pass each layer                    `tf_gag.methods.rules`
``modification``    the inputs of the n jobs and their contributions `tf_gag.methods.modifications`
``interpretation``  how each contribution is read                    `tf_gag.methods.interpretations`
``fold``            how the n contributions combine, online          `tf_gag.methods.folds`
``cam``             a layer source's CAM weighting (None for input)  `tf_gag.methods.cams`
``post``            attributions -> one value per pixel              `tf_gag.methods.post`
==================  ===============================================  ==========================

A slot holds a registered part's name (``"noise"``), a part class
(``GaussianNoise``) or a configured part (``GaussianNoise(n_samples=8)``,
whose options are then fixed). Named parts and classes take their options
from the call (``explain(..., n_samples=8)``). A `Method` is accepted
wherever a method name is; `tf_gag.register_method` gives it a name.

This module holds declarations only and imports no TensorFlow, so
``import tf_gag`` can list the built-in methods (`tf_gag.methods.presets`)
without loading it; `tf_gag.methods.registry` resolves and checks them.
"""
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Tuple

#: The paper's ablation variants: variant -> (interpretation, fold) that replace the method's own.
VARIANTS = {
    "+": ("positive", "mean"),
    "-": ("negative", "mean"),
    "A": ("absolute", "mean"),
    "G": ("signed", "guided"),
    "GA": ("absolute", "guided"),
}

#: The slots of a method, in the order the flow runs them (``cam`` and ``post`` last: they read the layer's
#: activations and the folded attributions).
SLOTS = ("source", "rule", "modification", "interpretation", "fold", "cam", "post")


@dataclass(frozen=True)
class Method:
    """A saliency method composed of parts; see the module docstring for the slots.

    ``summary``: one line for `tf_gag.list_methods`. ``defaults``: option
    defaults of this method that differ from its parts' (SmoothIG's 10 noisy
    copies). ``variants``: whether the paper's ablation variants (``+``,
    ``-``, ``A``, ``G``, ``GA``) apply, which swap the interpretation and the
    fold. ``objective``: the differentiated score, ``"logit"`` or
    ``"neg_log_softmax"``; an option of every method.
    """

    source: Any = "input"
    rule: Any = "plain"
    modification: Any = "identity"
    interpretation: Any = "signed"
    fold: Any = "mean"
    cam: Any = None
    post: Any = "abs_sum"
    summary: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    variants: bool = False

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def slots(self) -> Tuple[Tuple[str, Any], ...]:
        """((slot, what fills it), ...) for every filled slot, in `SLOTS` order."""
        return tuple((slot, getattr(self, slot)) for slot in SLOTS if getattr(self, slot) is not None)

    def __hash__(self):
        return hash(tuple((slot, _key(part)) for slot, part in self.slots()) + (self.variants,))


def _key(part):
    """A hashable stand-in for a slot's content (configured parts are compared by identity)."""
    return part if isinstance(part, (str, type)) else id(part)
