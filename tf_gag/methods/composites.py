"""Rules chosen per layer: composites of relevance rules (LRP) and gradient rules, with a BatchNorm canonizer.

A `Composite` is a backward rule (the ``rule`` slot of a method) that maps
each layer of a Keras model to a rule, as zennit's composites do:

* ``layer_map``: (selector, rule) pairs; the first pair whose selector
  matches a layer gives its rule, and a layer no pair matches keeps its
  gradient (pooling by maximum, reshapes, padding, dropout...).
* ``first_map``: pairs tried first for the first weighted layer (Dense or
  convolution) the forward pass calls (the input layer's rules: flat, w^2,
  z^B).
* ``canonize``: a BatchNormalization that directly follows a weighted layer
  without activation is folded into it (`tf_gag.model.units.fold_batch_norm`)
  and passes relevance unchanged, so the weighted layer's rule sees the
  normalised output (zennit's SequentialMergeBatchNorm).

A selector is a layer kind (`tf_gag.model.units.KINDS`: ``"dense"``,
``"conv"``, ``"batch_norm"``, ``"activation"``, ``"avg_pool"``, ``"add"``,
``"scaling"``), ``"linear"`` (dense or conv), ``"*"`` (any layer),
``"name:<pattern>"`` (a shell pattern on the layer's path, such as
``"name:block_1*"``), a Keras layer class, or a function ``(path, layer) ->
bool``. A rule is a relevance rule (`tf_gag.methods.lrp`, by name or
configured) or a gradient rule (``"guided"``, ``"deconvnet"``,
``"plain"``: applied to the ops the layer creates).

A model imported through ONNX has no Keras layers: its units are found in
its flat graph (`tf_gag.model.flat_units`; BatchNorm is already folded
there), selected by kind, by ``name:`` on the unit's op name, by position,
or by a function called with ``(op name, None)``, and each rule replaces the
gradients of its unit's ops in tf_gag's own traced graph (`_assign_flat`).

How a rule reaches one Keras layer and nothing else: while tf_gag traces the
forward pass, each leaf layer's call goes through the composite
(`tf_gag.model.backends.around_calls`, for the tracing thread only). A
gradient rule is a gradient override map around that call. A relevance rule
replaces the layer's output by the same values behind a custom gradient that
receives the relevance at the output and returns the rule's relevance at the
inputs; the layer's own ops then get no gradient. The user's layers and
weights are never changed, and another thread calling the model meanwhile
sees plain layers.

The named composites are zennit's: `EpsilonPlus` (conv z+, dense epsilon),
`EpsilonGammaBox` (first conv z^B, conv gamma, dense epsilon),
`EpsilonAlpha2Beta1` (conv alpha2-beta1, dense epsilon), `EpsilonPlusFlat`
(first layer flat), and `EpsilonEverywhere` (LRP-epsilon, or LRP-0 with
epsilon 0). All share zennit's base map: activations and BatchNorm pass,
average pooling and residual sums split relevance by their inputs' shares
(norm), and, beyond zennit, input scaling layers pass.

For transformers, ``attention="attnlrp"`` or ``"cp"`` makes a composite run
in gradient x input form with AttnLRP's or CP-LRP's op rules
(`tf_gag.methods.attnlrp`): `AttnLRP` and `CPLRP` are the named ones, with
gamma at convolutions and Dense layers as in LXT's vision transformer example.
"""
import contextlib
import fnmatch
import warnings

import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2

from ..io.checks import check_choice, check_flag
from ..model.flat_units import flat_units, is_constant
from ..model.units import KINDS, WEIGHTED, fold_batch_norm, kind, unit
from . import attnlrp
from .lrp import RELEVANCE_RULES, AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, RelevanceRule, ZBox, ZPlus, stabilize
from .rules import RULES as GRADIENT_RULES
from .rules import BackwardRule

SELECTORS = tuple(KINDS) + ("linear", "*")


def _check_selector(selector):
    if callable(selector) or isinstance(selector, type):
        return selector
    if isinstance(selector, str) and (selector in SELECTORS or (selector.startswith("name:") and selector[5:])):
        return selector
    raise ValueError(f"layer_map: a selector is one of {list(SELECTORS)}, 'name:<pattern>', a Keras layer class or "
                     f"a function (path, layer) -> bool; got {selector!r}")


def _matches(selector, path, layer, layer_kind):
    """Whether ``selector`` picks the layer at ``path`` of kind ``layer_kind`` (an imported graph's unit: its op
    name as path and no layer object, so classes never pick it and functions get ``(name, None)``)."""
    if isinstance(selector, type):
        return isinstance(layer, selector)
    if callable(selector):
        return bool(selector(path, layer))
    if selector == "*":
        return True
    if selector.startswith("name:"):
        names = (path,) if layer is None else (path, layer.name)
        return any(fnmatch.fnmatchcase(name, selector[5:]) for name in names)
    if selector == "linear":
        return layer_kind in WEIGHTED
    return layer_kind == selector


def _check_rule(rule):
    """A configured relevance or gradient rule, from a rule, a rule class or a name (default options)."""
    if isinstance(rule, (RelevanceRule, BackwardRule)) and not isinstance(rule, Composite):
        return rule
    if isinstance(rule, type) and issubclass(rule, (RelevanceRule, BackwardRule)) and not issubclass(rule, Composite):
        return rule()
    if isinstance(rule, str) and rule in RELEVANCE_RULES:
        return RELEVANCE_RULES[rule]()
    if isinstance(rule, str) and rule in GRADIENT_RULES:
        return GRADIENT_RULES[rule]()
    raise ValueError(f"layer_map: a rule is a relevance rule {sorted(RELEVANCE_RULES)} or a gradient rule "
                     f"{sorted(GRADIENT_RULES)}, by name or configured; got {rule!r}")


def _pairs(name, pairs):
    try:
        pairs = [tuple(pair) for pair in pairs]
    except TypeError:
        raise ValueError(f"{name}: expected (selector, rule) pairs, got {pairs!r}") from None
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"{name}: expected (selector, rule) pairs, got {pairs!r}")
    return tuple((_check_selector(selector), _check_rule(rule)) for selector, rule in pairs)


def _layer_inputs(args, kwargs):
    inputs = args[0] if args else kwargs.get("inputs")
    return tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)


def _is_softmax(layer):
    activation = getattr(layer, "activation", None)
    return type(layer).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"


def _linked(inputs, output, backward):
    """``output``'s values behind a gradient that is ``backward(relevance at output)`` at ``inputs``."""

    @tf.custom_gradient
    def link(*xs):
        def grad(relevance):
            return backward(relevance)

        return tf.identity(output), grad

    return link(*inputs)


class _Trace:
    """One traced forward pass under a composite: which rule each layer call got, and the folds found."""

    def __init__(self, composite):
        self.composite = composite
        self.reached = 0
        self.first_seen = False
        self.linear = {}  # id(linked output) -> [Unit, BatchNorm layer or None]: weighted units a BN may follow
        self.unmatched = set()  # class names of layers with weights that no pair matched and no kind covers

    def around(self, path, layer, call, args, kwargs):
        rule = self._rule(path, layer)
        if rule is None:
            if kind(layer) is None and getattr(layer, "weights", None) and not self.composite.attention:
                self.unmatched.add(type(layer).__name__)  # attention rules cover attention, norms, einsums
            return call(*args, **kwargs)
        self.reached += 1
        if isinstance(rule, BackwardRule):
            with tf.compat.v1.get_default_graph().gradient_override_map(rule.overrides):
                return call(*args, **kwargs)
        inputs = _layer_inputs(args, kwargs)
        output = call(*args, **kwargs)
        if kind(layer) == "batch_norm" and self.composite.canonize and id(inputs[0]) in self.linear:
            self.linear[id(inputs[0])][1] = layer
            rule = Pass()  # its normalisation now sits in the weighted layer's kernel and bias
        softmax = _is_softmax(layer) and output.op.type == "Softmax"
        found = unit(layer, inputs, output.op.inputs[0] if softmax else output)
        if found is None or (rule.weighted and not found.weighted):
            raise ValueError(f"method: the {rule.name} relevance rule needs a Dense or convolution layer; "
                             f"{path!r} is a {type(layer).__name__}")
        record = [found, None]
        linked = _linked(found.inputs, found.output, lambda relevance: self._backward(record, rule, relevance))
        if found.weighted and found.linear_activation:
            self.linear[id(linked)] = record
        return tf.nn.softmax(linked) if softmax else linked

    def _rule(self, path, layer):
        if _is_softmax(layer) and kind(layer) == "activation":
            return None  # a final softmax is bypassed by the explained logits; elsewhere its gradient is kept
        if kind(layer) in WEIGHTED and not self.first_seen:
            self.first_seen = True
            for selector, rule in self.composite.first_map:
                if _matches(selector, path, layer, kind(layer)):
                    return rule
        for selector, rule in self.composite.layer_map:
            if _matches(selector, path, layer, kind(layer)):
                return rule
        return None

    def _backward(self, record, rule, signal):
        found, batch_norm = record
        if batch_norm is not None:
            found = fold_batch_norm(found, batch_norm)
        return _unit_backward(rule, found, signal, bool(self.composite.attention))


#: The stabiliser of the division by a unit's inputs in gradient x input form (LXT's, on zennit's hooks).
_INPUT_STABILIZER = 1e-10


def _unit_backward(rule, found, signal, gradient_form):
    """A relevance rule's backward signal at a unit's inputs, from the one at its output.

    Relevance form: the signal is the relevance. Gradient x input form
    (`tf_gag.methods.attnlrp`): relevance R = signal * output enters the rule,
    and each input's signal is its relevance divided by the input.
    """
    if not gradient_form:
        return rule.relevance(found, signal)
    shares = rule.relevance(found, signal * found.output)
    return tuple(share / stabilize(x, _INPUT_STABILIZER) for share, x in zip(shares, found.inputs))


@tf.RegisterGradient("TfGagRelevance")
def _relevance_gradient(op, relevance):
    """An imported graph's unit: its rule's relevance at the unit's inputs (None for its constant weights)."""
    rule, found, padding, gradient_form = op.graph._tf_gag_relevance[op.name]
    shares = list(_unit_backward(rule, found, relevance, gradient_form))
    if padding is not None:  # the unit took in the zero padding before it: the op's input is the padded tensor
        shares[0] = tf.pad(shares[0], padding)
    return shares + [None] * (len(op.inputs) - len(shares))


@tf.RegisterGradient("TfGagRelevancePass")
def _pass_gradient(op, relevance):
    """A constant scale or bias folded into the unit before it: relevance passes to the tensor, none to the
    constant."""
    return [None if is_constant(tensor) else relevance for tensor in op.inputs]


#: Ops of an imported graph that only the attention composites' rules cover (attention, normalisation, GELU):
#: warned about under the others.
_NO_RULE_OPS = ("BatchMatMul", "BatchMatMulV2", "Einsum", "Softmax", "Rsqrt", "Erf")


def _first_rule(pairs, found):
    """The rule of the first (selector, rule) pair that picks an imported graph's unit ``found``, or None."""
    return next((rule for selector, rule in pairs if _matches(selector, found.name, None, found.kind)), None)


def _override(op, name):
    op._set_attr("_gradient_op_type", attr_value_pb2.AttrValue(s=name.encode()))  # as gradient_override_map does


def _assign_attention(variant, ops):
    """Give ``ops`` AttnLRP's or CP-LRP's op rules (`tf_gag.methods.attnlrp`); the number of ops reached."""
    reached = 0
    for op in ops:
        name = attnlrp.rule_of(op, variant)
        if name is not None:
            _override(op, name)
            reached += 1
    return reached


def _assign_flat(composite, graph, ops):
    """Give the units among an imported graph's ``ops`` their rules (per op); the number of units reached."""
    table = getattr(graph, "_tf_gag_relevance", None)
    if table is None:
        table = graph._tf_gag_relevance = {}
    reached, first_seen = 0, False
    projections = attnlrp.projections(ops) if composite.attention else set()
    for found in flat_units(ops):
        if found.name in projections:
            continue  # LRP-0, the attention composites' rule for an attention's projections
        rule = None
        if found.kind in WEIGHTED and not first_seen:
            first_seen = True
            rule = _first_rule(composite.first_map, found)
        if rule is None:
            rule = _first_rule(composite.layer_map, found)
        if rule is None:
            continue
        reached += 1
        if isinstance(rule, BackwardRule):
            if found.op.type in rule.overrides:
                _override(found.op, rule.overrides[found.op.type])
            continue
        if rule.weighted != (found.kind in WEIGHTED):
            needs = "a Dense or convolution layer" if rule.weighted else "a layer without weights"
            raise ValueError(f"method: the {rule.name} relevance rule needs {needs}; {found.name!r} is a "
                             f"{found.op.type} op ({found.kind})")
        table[found.op.name] = (rule, found.unit, found.padding, bool(composite.attention))
        _override(found.op, "TfGagRelevance")
        for op in found.chain:
            _override(op, "TfGagRelevancePass")
    return reached


class Composite(BackwardRule):
    """Rules chosen per layer; see the module docstring. ``canonize``: fold BatchNorm into the layer before it.

    ``attention``: None, or ``"attnlrp"`` / ``"cp"`` for transformers: the
    composite then runs in gradient x input form with AttnLRP's or CP-LRP's
    rules at attention, normalisation and GELU ops (`tf_gag.methods.attnlrp`),
    and weighted layers that no pair matches get LRP-0.
    """

    name = "composite"
    options = {}
    nonlinearities = ()
    per_layer = True
    #: Its rules rebuild each layer's linear map from the float32 weights and fold BatchNorm statistics into them:
    #: float32 arithmetic, which a layer's bfloat16 or float16 inputs do not mix with.
    reduced_precision = False

    def __init__(self, layer_map, first_map=(), canonize=True, attention=None):
        self.layer_map = _pairs("layer_map", layer_map)
        self.first_map = _pairs("first_map", first_map)
        self.canonize = check_flag("canonize", canonize)
        self.attention = None if attention is None else check_choice("attention", attention, attnlrp.VARIANTS)

    def describe(self):
        shown = {key: getattr(self, key) for key in self.options}
        if type(self) is Composite:
            shown.update(layer_map=self.layer_map, first_map=self.first_map, canonize=self.canonize,
                         attention=self.attention)
        return shown

    def entering(self, x):
        """The model's input; in gradient x input form, its backward signal g leaves as relevance x * g."""
        return _linked((x,), x, lambda signal: (signal * x,)) if self.attention else x

    def leaving(self, logits):
        """The logits; in gradient x input form, the relevance R arriving there goes on as R / logits."""
        if not self.attention:
            return logits
        return _linked((logits,), logits, lambda relevance: (relevance / stabilize(logits, _INPUT_STABILIZER),))

    @property
    def overrides(self):
        return {}

    @contextlib.contextmanager
    def traced(self, layers=None, flat=False):
        if layers is None and not flat:
            raise ValueError(f"method: the {self.name} composite chooses a rule per layer and needs a Keras model "
                             "or a model imported with tf_gag.load_model (a TF callable has no layers to choose by)")
        reached = []
        graph = tf.compat.v1.get_default_graph()
        before = len(graph.get_operations())
        if layers is not None:
            trace = _Trace(self)
            with layers(trace.around):
                yield reached
            ops = graph.get_operations()[before:]
            units, unmatched = trace.reached, sorted(trace.unmatched)
        else:
            yield reached
            ops = graph.get_operations()[before:]
            units = _assign_flat(self, graph, ops)
            unmatched = [] if self.attention else sorted({op.type for op in ops if op.type in _NO_RULE_OPS})
        reached.extend([units + (_assign_attention(self.attention, ops) if self.attention else 0), unmatched])

    def check_reached(self, reached, kind_name):
        if not reached:
            return
        if reached[0] == 0:
            warnings.warn(f"method: the {self.name} composite matched no layer of this {kind_name} model, so its "
                          "gradient is the plain one", UserWarning, stacklevel=6)
        elif reached[1]:
            warnings.warn(f"method: the {self.name} composite has no rule for {reached[1]} in this {kind_name} "
                          "model: their gradient passes there, which neither conserves relevance nor follows an "
                          "LRP rule (for transformers, a composite with attention='attnlrp' or 'cp' has rules for "
                          "attention, normalisation and GELU)",
                          UserWarning, stacklevel=6)


def _base_map(stabilizer):
    """zennit's base map, plus input scaling: activations and BatchNorm pass, pooling and sums split by shares."""
    return [("activation", Pass()), ("add", Norm(stabilizer)), ("avg_pool", Norm(stabilizer)),
            ("batch_norm", Pass()), ("scaling", Pass())]


class EpsilonEverywhere(Composite):
    """LRP-epsilon at every Dense and convolution layer; ``epsilon=0`` is LRP-0 (gradient x input on bias-free
    ReLU networks)."""

    name = "lrp_epsilon"
    options = {"epsilon": 1e-6, "stabilizer": 1e-6, "canonize": True}

    def __init__(self, epsilon=1e-6, stabilizer=1e-6, canonize=True):
        self.epsilon, self.stabilizer = epsilon, stabilizer
        super().__init__(_base_map(stabilizer) + [("linear", Epsilon(epsilon))], canonize=canonize)


class EpsilonPlus(Composite):
    """z+ at convolutions, epsilon at Dense layers (zennit's EpsilonPlus)."""

    name = "epsilon_plus"
    options = {"epsilon": 1e-6, "stabilizer": 1e-6, "canonize": True}

    def __init__(self, epsilon=1e-6, stabilizer=1e-6, canonize=True):
        self.epsilon, self.stabilizer = epsilon, stabilizer
        super().__init__(_base_map(stabilizer) + [("conv", ZPlus(stabilizer)), ("dense", Epsilon(epsilon))],
                         canonize=canonize)


class EpsilonPlusFlat(Composite):
    """EpsilonPlus with the flat rule at the first weighted layer (zennit's EpsilonPlusFlat)."""

    name = "epsilon_plus_flat"
    options = EpsilonPlus.options

    def __init__(self, epsilon=1e-6, stabilizer=1e-6, canonize=True):
        self.epsilon, self.stabilizer = epsilon, stabilizer
        super().__init__(_base_map(stabilizer) + [("conv", ZPlus(stabilizer)), ("dense", Epsilon(epsilon))],
                         first_map=[("linear", Flat(stabilizer))], canonize=canonize)


class EpsilonGammaBox(Composite):
    """z^B at the first convolution, gamma at the other convolutions, epsilon at Dense layers (zennit's
    EpsilonGammaBox). ``low``/``high``: the input's bounds for z^B (None: each image's own, per channel)."""

    name = "epsilon_gamma_box"
    options = {"epsilon": 1e-6, "gamma": 0.25, "stabilizer": 1e-6, "low": None, "high": None, "canonize": True}

    def __init__(self, epsilon=1e-6, gamma=0.25, stabilizer=1e-6, low=None, high=None, canonize=True):
        box = ZBox(low, high, stabilizer)
        self.epsilon, self.gamma, self.stabilizer, self.low, self.high = epsilon, gamma, stabilizer, low, high
        super().__init__(_base_map(stabilizer) + [("conv", Gamma(gamma, stabilizer)), ("dense", Epsilon(epsilon))],
                         first_map=[("conv", box)], canonize=canonize)


class EpsilonAlpha2Beta1(Composite):
    """alpha2-beta1 at convolutions, epsilon at Dense layers (zennit's EpsilonAlpha2Beta1)."""

    name = "epsilon_alpha2_beta1"
    options = {"epsilon": 1e-6, "stabilizer": 1e-6, "canonize": True}

    def __init__(self, epsilon=1e-6, stabilizer=1e-6, canonize=True):
        self.epsilon, self.stabilizer = epsilon, stabilizer
        super().__init__(_base_map(stabilizer) + [("conv", AlphaBeta(2.0, 1.0, stabilizer)),
                                                  ("dense", Epsilon(epsilon))], canonize=canonize)


class AttnLRP(Composite):
    """AttnLRP for vision transformers (Achtibat et al. 2024): gamma at convolutions (the patch embedding) and
    Dense layers, AttnLRP's softmax, uniform-matmul and identity rules in attention, norms and GELU
    (`tf_gag.methods.attnlrp`); the LRP-0 of gradient x input everywhere else (attention projections, sums).
    The gammas are those of LXT's vision transformer example."""

    name = "attn_lrp"
    variant = "attnlrp"
    options = {"conv_gamma": 0.25, "dense_gamma": 0.1, "stabilizer": 1e-6}

    def __init__(self, conv_gamma=0.25, dense_gamma=0.1, stabilizer=1e-6):
        self.conv_gamma, self.dense_gamma, self.stabilizer = conv_gamma, dense_gamma, stabilizer
        super().__init__([("conv", Gamma(conv_gamma, stabilizer)), ("dense", Gamma(dense_gamma, stabilizer))],
                         canonize=False, attention=self.variant)


class CPLRP(AttnLRP):
    """AttnLRP with CP-LRP inside attention (Ali et al. 2022): no relevance through the softmax, the attention
    weights act as constants on the values; LXT's recipe for torchvision's vision transformers."""

    name = "cp_lrp"
    variant = "cp"


COMPOSITES = {cls.name: cls for cls in (EpsilonEverywhere, EpsilonPlus, EpsilonPlusFlat, EpsilonGammaBox,
                                        EpsilonAlpha2Beta1, AttnLRP, CPLRP)}
