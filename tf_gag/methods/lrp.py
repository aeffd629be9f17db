"""Layer-wise relevance propagation rules: a layer's relevance at its output -> relevance at its inputs.

Each rule maps the relevance R arriving at one traced layer call (a
`tf_gag.model.units.Unit`) to the relevance of each of its inputs. With
x the layer's input, (W, b) its weights, z = x W + b its output before the
activation and J^T s the layer's linear map transposed (its input gradient
for output gradient s):

==============================  ==============================================================  ============
rule                            relevance at the input                                          zennit 0.5.1
==============================  ==============================================================  ============
``Epsilon(epsilon)``            x * J^T(R / (z + epsilon sign z))                               Epsilon
``Epsilon(0)`` (LRP-0)          x * J^T(R / z), 0 where z = 0                                   (Epsilon(0))
``Gamma(gamma)``                per output sign, W + gamma W+ for the agreeing terms (below)    Gamma
``AlphaBeta(alpha, beta)``      alpha * (positive share) - beta * (negative share)             AlphaBeta
``ZPlus()`` (alpha1beta0)       x+ * J+^T(R / z+) + x- * J-^T(R / z+)                          ZPlus
``Flat()``                      J1^T(R / z1) with x and W all ones, no bias                     Flat
``WSquare()``                   J^T(R / z) with x all ones, weights and bias squared            WSquare
``ZBox(low, high)``             x J^T s - l J+^T s - h J-^T s, s = R / (z - l W+ - h W-)        ZBox
``Norm()``                      x * J^T(R / z) of a layer without weights (pooling, sums)       Norm
``Pass()``                      R unchanged (activations, normalisations)                       Pass
==============================  ==============================================================  ============

Conventions are zennit's (0.5.1, the same in 1.0): the stabiliser adds
``epsilon * sign(z)`` with sign(0) = +1; z+ keeps the positive bias
(z+ = x+ W+ + b+ + x- W-, the negative inputs' terms without bias); Gamma
is zennit's generalised rule, which for outputs z > 0 uses
x+ (W + gamma W+) + (b + gamma b+) + x- (W + gamma W-) and for z < 0 the
mirror image, so it equals the original gamma rule on positive inputs.
ZBox's bounds keep the bias in all three terms (b, b+, b-).

A rule builds its ops while TensorFlow differentiates the traced forward
pass (`tf_gag.methods.composites`), from the unit's input tensors and
weights: J^T is ``tf.gradients`` of the unit's linear map, rebuilt with the
rule's weights.
"""
import numpy as np
import tensorflow as tf

from ..io.checks import check_finite_array, check_number
from .part import Part


def stabilize(z, epsilon):
    """``z + epsilon * sign(z)``, with sign(0) = +1 (zennit's stabiliser)."""
    return z + epsilon * tf.where(z >= 0, tf.ones_like(z), -tf.ones_like(z))


def _share(relevance, z, epsilon):
    """R / stabilize(z, epsilon); with epsilon 0 (LRP-0) a zero z receives 0 instead of a division by zero."""
    if epsilon == 0:
        return tf.math.divide_no_nan(relevance, z)
    return relevance / stabilize(z, epsilon)


def _transposed(unit, x, kernel, s):
    """J^T s: the unit's linear map at weights ``kernel`` (no bias), transposed, applied to ``s``."""
    x = tf.identity(x)  # a tensor of its own, so the gradient stops here
    (grad,) = tf.gradients(unit.linear(x, kernel, None), [x], grad_ys=[s])
    return grad


def _positive(t):
    return tf.maximum(t, 0.0)


def _negative(t):
    return tf.minimum(t, 0.0)


def _maybe(fn, bias):
    return None if bias is None else fn(bias)


class RelevanceRule(Part):
    """Base: ``relevance(unit, R) -> (R at each input)``. ``weighted``: the rule needs a unit with weights."""

    weighted = True

    def relevance(self, unit, relevance):
        raise NotImplementedError


def _stabilizer(value):
    return check_number("stabilizer", value, 0)


class Epsilon(RelevanceRule):
    """LRP-epsilon (Bach et al. 2015); ``epsilon=0`` is LRP-0 (zero denominators receive no relevance)."""

    name = "epsilon"
    options = {"epsilon": 1e-6}

    def __init__(self, epsilon=1e-6):
        self.epsilon = check_number("epsilon", epsilon, 0)

    def relevance(self, unit, relevance):
        (x,) = unit.inputs
        z = unit.linear(x, unit.kernel, unit.bias)
        return (x * _transposed(unit, x, unit.kernel, _share(relevance, z, self.epsilon)),)


class AlphaBeta(RelevanceRule):
    """LRP-alpha-beta (Bach et al. 2015): positive contributions times alpha, negative times beta (alpha - beta = 1)."""

    name = "alpha_beta"
    options = {"alpha": 2.0, "beta": 1.0, "stabilizer": 1e-6}

    def __init__(self, alpha=2.0, beta=1.0, stabilizer=1e-6):
        self.alpha = check_number("alpha", alpha, 0)
        self.beta = check_number("beta", beta, 0)
        if abs(self.alpha - self.beta - 1.0) > 1e-12:
            raise ValueError(f"alpha, beta: expected alpha - beta = 1 (relevance is conserved), got {alpha} and {beta}")
        self.stabilizer = _stabilizer(stabilizer)

    def _part(self, unit, x, relevance, signed, other):
        """x+ W^signed (+ bias^signed) + x- W^other: one share's relevance at the input."""
        kernel, bias = unit.kernel, unit.bias
        positive_in, negative_in = _positive(x), _negative(x)
        z = unit.linear(positive_in, signed(kernel), _maybe(signed, bias)) + unit.linear(negative_in, other(kernel),
                                                                                         None)
        s = relevance / stabilize(z, self.stabilizer)
        return (positive_in * _transposed(unit, positive_in, signed(kernel), s)
                + negative_in * _transposed(unit, negative_in, other(kernel), s))

    def relevance(self, unit, relevance):
        (x,) = unit.inputs
        out = self.alpha * self._part(unit, x, relevance, _positive, _negative)
        if self.beta:
            out = out - self.beta * self._part(unit, x, relevance, _negative, _positive)
        return (out,)


class ZPlus(AlphaBeta):
    """LRP-z+ (alpha 1, beta 0; Montavon et al. 2017), negative inputs allowed as in zennit."""

    name = "zplus"
    options = {"stabilizer": 1e-6}

    def __init__(self, stabilizer=1e-6):
        super().__init__(1.0, 0.0, stabilizer)


class Gamma(RelevanceRule):
    """LRP-gamma (Montavon et al. 2019), zennit's generalised form for inputs of either sign."""

    name = "gamma"
    options = {"gamma": 0.25, "stabilizer": 1e-6}

    def __init__(self, gamma=0.25, stabilizer=1e-6):
        self.gamma = check_number("gamma", gamma, 0)
        self.stabilizer = _stabilizer(stabilizer)

    def relevance(self, unit, relevance):
        (x,) = unit.inputs
        kernel, bias, gamma = unit.kernel, unit.bias, self.gamma

        def lifted(part):  # W + gamma * part(W)
            return lambda t: t + gamma * part(t)

        up, down = lifted(_positive), lifted(_negative)
        positive_in, negative_in = _positive(x), _negative(x)
        z = unit.linear(x, kernel, bias)
        out = 0.0
        for sign_mask, first, second in ((tf.cast(z > 0, z.dtype), up, down), (tf.cast(z < 0, z.dtype), down, up)):
            denominator = (unit.linear(positive_in, first(kernel), _maybe(first, bias))
                           + unit.linear(negative_in, second(kernel), None))
            s = sign_mask * relevance / stabilize(denominator, self.stabilizer)
            out = out + positive_in * _transposed(unit, positive_in, first(kernel), s) \
                + negative_in * _transposed(unit, negative_in, second(kernel), s)
        return (out,)


class _InputFree(RelevanceRule):
    """Base of the first-layer rules that ignore the input's values (x taken as ones): relevance by weights alone."""

    options = {"stabilizer": 1e-6}

    def __init__(self, stabilizer=1e-6):
        self.stabilizer = _stabilizer(stabilizer)

    def weights(self, unit):
        """(kernel, bias or None) the rule spreads relevance by."""
        raise NotImplementedError

    def relevance(self, unit, relevance):
        (x,) = unit.inputs
        ones = tf.ones_like(x)
        kernel, bias = self.weights(unit)
        s = relevance / stabilize(unit.linear(ones, kernel, bias), self.stabilizer)
        return (_transposed(unit, ones, kernel, s),)


class Flat(_InputFree):
    """The flat rule (Lapuschkin et al. 2019): relevance spread over the receptive field uniformly (first layers)."""

    name = "flat"

    def weights(self, unit):
        return tf.ones_like(unit.kernel), None


class WSquare(_InputFree):
    """The w^2 rule (Montavon et al. 2017): relevance by squared weights and bias, whatever the input (first layers)."""

    name = "w_square"

    def weights(self, unit):
        return tf.square(unit.kernel), _maybe(tf.square, unit.bias)


class ZBox(RelevanceRule):
    """The z^B (box) rule (Montavon et al. 2017) for inputs bounded by ``low`` and ``high`` (the first layer).

    ``low``/``high``: numbers or one per channel, in the model's input space;
    None takes each image's own per-channel minimum and maximum.
    """

    name = "zbox"
    options = {"low": None, "high": None, "stabilizer": 1e-6}

    def __init__(self, low=None, high=None, stabilizer=1e-6):
        what = "a finite number or one per channel (model input space), or None for each image's own bounds"
        self.low = None if low is None else check_finite_array("low", low, what)
        self.high = None if high is None else check_finite_array("high", high, what)
        if self.low is not None and self.high is not None and np.any(self.low > self.high):
            raise ValueError(f"low, high: expected low <= high, got {low!r} and {high!r}")
        self.stabilizer = _stabilizer(stabilizer)

    def describe(self):
        return {key: (value.tolist() if isinstance(value, np.ndarray) else value)
                for key, value in super().describe().items()}

    def _bound(self, given, x, reduce):
        if given is not None:
            return tf.broadcast_to(tf.constant(given, x.dtype), tf.shape(x))
        axes = list(range(1, x.shape.rank - 1))
        return tf.broadcast_to(reduce(x, axis=axes, keepdims=True), tf.shape(x))

    def relevance(self, unit, relevance):
        (x,) = unit.inputs
        low, high = self._bound(self.low, x, tf.reduce_min), self._bound(self.high, x, tf.reduce_max)
        kernel, bias = unit.kernel, unit.bias
        up, down = _positive(kernel), _negative(kernel)
        z = (unit.linear(x, kernel, bias) - unit.linear(low, up, _maybe(_positive, bias))
             - unit.linear(high, down, _maybe(_negative, bias)))
        s = relevance / stabilize(z, self.stabilizer)
        return (x * _transposed(unit, x, kernel, s) - low * _transposed(unit, low, up, s)
                - high * _transposed(unit, high, down, s),)


class Norm(RelevanceRule):
    """Relevance in proportion to each input's share of a layer without weights (average pooling, residual sums)."""

    name = "norm"
    options = {"stabilizer": 1e-6}
    weighted = False

    def __init__(self, stabilizer=1e-6):
        self.stabilizer = _stabilizer(stabilizer)

    def relevance(self, unit, relevance):
        s = relevance / stabilize(unit.output, self.stabilizer)
        return tuple(x * g for x, g in zip(unit.inputs, unit.transposed(s)))


class Pass(RelevanceRule):
    """Relevance passes unchanged (elementwise activations and normalisations)."""

    name = "pass"
    options = {}
    weighted = False

    def relevance(self, unit, relevance):
        (x,) = unit.inputs
        if x.shape.rank is not None and relevance.shape.rank is not None and x.shape[1:] != relevance.shape[1:]:
            raise ValueError(f"method: the pass rule needs a layer that keeps its input's shape; "
                             f"{unit.layer.name!r} maps {x.shape} to {relevance.shape}")
        return (relevance,)


RELEVANCE_RULES = {cls.name: cls for cls in (Epsilon, AlphaBeta, ZPlus, Gamma, Flat, WSquare, ZBox, Norm, Pass)}
