"""Backward rules: how gradients pass the model's nonlinearities (part 2 of a method).

``Plain`` is the ordinary gradient. ``Guided`` is Guided Backprop's rule
(Springenberg et al.): the gradient passes a ReLU/ReLU6 only where the forward
input was positive *and* the incoming gradient is positive (ReLU6 keeps its zero
derivative above 6). ``Deconvnet`` passes the positive part of the incoming
gradient, whatever the forward input (Zeiler & Fergus). ``Rectified`` is Rectified Gradients' rule (Kim et al. 2019):
the gradient passes a ReLU only where its importance ``a * g`` exceeds a
threshold, by default the 98th percentile of the layer's importances per example.

A rule changes the gradients of the graph being traced and nobody else's. It
never touches ``tf.nn`` or the user's layers: while the model's forward pass is
traced into the method's own ``tf.function`` graph, the rule names a gradient
function for the ReLU ops of *that graph* (``Graph.gradient_override_map``), and
the kernel differentiates with ``tf.gradients``, which honours the override.
Another thread tracing the same model, or ``tf.nn.relu`` anywhere else, keeps the
plain gradient. The gradient functions are registered under names of their own
(``TfGag*``), which adds to TensorFlow's registry without changing any entry.

A model imported through ONNX runs restored functions whose ops cannot be
overridden from outside; a rule therefore runs on the flat copy of its logits
graph the converter writes (``logits.pb``), imported into tf_gag's graph under
the same override. Entries converted before that copy existed offer Guided
Backprop's baked twin (``imported_function``) and refuse the other rules.
"""
import contextlib
import threading
import warnings

import tensorflow as tf

from ..io.checks import check_flag, check_number
from .part import Part


@tf.RegisterGradient("TfGagGuidedRelu")
def _guided_relu_gradient(op, grad):
    return grad * tf.cast(op.inputs[0] > 0, grad.dtype) * tf.cast(grad > 0, grad.dtype)


@tf.RegisterGradient("TfGagGuidedRelu6")
def _guided_relu6_gradient(op, grad):
    features = op.inputs[0]
    passing = tf.logical_and(features > 0, features < 6)
    return grad * tf.cast(passing, grad.dtype) * tf.cast(grad > 0, grad.dtype)


@tf.RegisterGradient("TfGagDeconvnetRelu")
def _deconvnet_relu_gradient(op, grad):
    return grad * tf.cast(grad > 0, grad.dtype)


class BackwardRule(Part):
    """Base class: a rule with no overrides is the plain gradient.

    Subclasses set ``overrides`` ({op type: registered gradient name}) and, if
    imported models have a twin for the rule, ``imported_function``.
    """

    name = "plain"
    overrides = {}
    #: A twin function of models imported before the flat logits graph existed (format 1), or None.
    imported_function = None
    #: The nonlinearities the rule acts at; a forward pass with none of them gets the plain gradient.
    nonlinearities = ("Relu", "Relu6")
    #: Whether the rule is chosen per layer (a composite), so it needs the model's layers or flat graph.
    per_layer = False
    #: Whether the rule runs on a model computing in bfloat16 or float16 (`tf_gag.model.precision`).
    reduced_precision = True

    @contextlib.contextmanager
    def traced(self, layers=None, flat=False):
        """Apply the rule to the ops created in the block, in the graph being traced.

        ``layers`` and ``flat`` (unused here: this rule acts on every op of
        its types) tell rules chosen per layer (`tf_gag.methods.composites`)
        where the model's layers are: ``layers`` routes a Keras model's
        leaf-layer calls, ``flat`` says the block imports an imported model's
        flat graph, whose weighted ops are its layers.

        Yields a list that, after the block, holds how many ops the rule
        reached: a rule that reached none leaves the gradient plain, which
        `check_reached` turns into an error.
        """
        reached = []
        if not self.overrides:
            yield reached
            return
        if tf.executing_eagerly():
            raise RuntimeError(f"{self.name} backward rule: the forward pass must be traced inside a tf.function")
        graph = tf.compat.v1.get_default_graph()
        before = len(graph.get_operations())
        with graph.gradient_override_map(self.overrides):
            yield reached
        reached.append(sum(op.type in self.nonlinearities for op in graph.get_operations()[before:]))

    def entering(self, x):
        """The model's input ``x`` as the forward pass takes it; a rule whose backward signal is not a gradient
        (a composite in gradient x input form) turns it into relevance there."""
        return x

    def leaving(self, logits):
        """The forward pass's logits; a rule in gradient x input form turns the relevance arriving there into its
        backward signal."""
        return logits

    def check_reached(self, reached, kind):
        """Warn if the rule found no ReLU to act at in a model of this ``kind``: its gradient is then the plain one."""
        if self.overrides and reached and reached[0] == 0:
            warnings.warn(
                f"method: the {self.name} backward rule found no ReLU/ReLU6 op in the traced forward pass of this "
                f"{kind} model, so its gradient is the plain one. The rule acts at ReLUs traced into tf_gag's graph: "
                "a Keras model, a TF callable, or a model imported with tf_gag.load_model (a tf.saved_model.load "
                "object's functions are opaque).",
                UserWarning,
                stacklevel=6,
            )


class Plain(BackwardRule):
    """The ordinary gradient."""


class Guided(BackwardRule):
    """Guided Backprop's rule at every ReLU and ReLU6 (Springenberg et al., 2015)."""

    name = "guided"
    overrides = {"Relu": "TfGagGuidedRelu", "Relu6": "TfGagGuidedRelu6"}
    imported_function = "guided_logits"


class Deconvnet(BackwardRule):
    """Deconvnet's rule at every ReLU and ReLU6 (Zeiler & Fergus, 2014): the positive part of the incoming gradient,
    whatever the forward input (zennit's ReLUDeconvNet)."""

    name = "deconvnet"
    overrides = {"Relu": "TfGagDeconvnetRelu", "Relu6": "TfGagDeconvnetRelu"}


def _nearest_rank_threshold(importance, percentile):
    """Per example, the ``percentile``-th percentile of the importances with 'nearest' interpolation.

    The reference's rule: sort each example's d importances descending and
    take ``s[k]`` with ``k = round_half_even((d - 1) * (1 - percentile / 100))``.
    """
    flat = tf.reshape(importance, [tf.shape(importance)[0], -1])
    d = tf.shape(flat)[1]
    position = tf.cast(d - 1, tf.float64) * (1.0 - percentile / 100.0)
    k = tf.clip_by_value(tf.cast(tf.round(position), tf.int32), 0, d - 1)  # tf.round rounds half to even
    tau = tf.math.top_k(flat, k=k + 1, sorted=True).values[:, -1]
    return tf.reshape(tau, tf.concat([tf.shape(importance)[:1], tf.ones([tf.rank(importance) - 1], tf.int32)], 0))


def _rectify(activations, grad, percentile, threshold):
    """The incoming gradient where the importance ``a * g`` exceeds the threshold, 0 elsewhere."""
    importance = activations * grad
    tau = threshold if threshold is not None else _nearest_rank_threshold(importance, percentile)
    return grad * tf.cast(importance > tau, grad.dtype)


def _ring_zeroed(grad, data_format):
    """``grad`` of a 4-D conv output with its outer 1-pixel spatial ring set to 0 (all of a map under 3 pixels)."""
    spatial = (1, 2) if data_format.startswith("NH") else (2, 3)
    mask = tf.ones_like(grad)
    for axis in spatial:
        size = tf.shape(grad)[axis]
        index = tf.range(size)
        inside = tf.cast((index > 0) & (index < size - 1), grad.dtype)
        mask = mask * tf.reshape(inside, [-1 if a == axis else 1 for a in range(4)])
    return grad * mask


def _conv_input_gradient(op, grad, padding_trick):
    """Conv2D's gradient with respect to its input, the output gradient's ring zeroed first for SAME padding."""
    padding = op.get_attr("padding").decode()
    data_format = op.get_attr("data_format").decode()
    if padding_trick and padding == "SAME":
        grad = _ring_zeroed(grad, data_format)
    dx = tf.raw_ops.Conv2DBackpropInput(
        input_sizes=tf.shape(op.inputs[0]), filter=op.inputs[1], out_backprop=grad, strides=op.get_attr("strides"),
        padding=padding, explicit_paddings=op.get_attr("explicit_paddings"), data_format=data_format,
        dilations=op.get_attr("dilations"),
    )
    return dx, None  # the kernels' gradient is never asked for


_REGISTERED = set()
_REGISTER_LOCK = threading.Lock()


def _registered(name, gradient):
    """Register ``gradient`` under ``name`` once (TensorFlow's registry only adds: nothing else changes)."""
    with _REGISTER_LOCK:
        if name not in _REGISTERED:
            tf.RegisterGradient(name)(gradient)
            _REGISTERED.add(name)
    return name


class Rectified(BackwardRule):
    """Rectified Gradients' rule (Kim et al. 2019) at every ReLU and ReLU6.

    With ``a`` a ReLU's forward output and ``g`` the incoming (already
    rectified) gradient, the gradient passes where the importance ``a * g``
    exceeds ``threshold`` (strictly) and is 0 elsewhere, as in the reference
    code: no separate local derivative, since ``a = 0`` blocks dead units
    whenever the threshold is >= 0.

    Args:
      percentile: q in [0, 100]; the threshold is the q-th percentile of each
        example's importances over all the layer's units ('nearest' rank, as
        the reference). 98 by default. A small layer at a high q passes
        nothing: an all-zero map, never NaN.
      threshold: a constant threshold instead of the percentile (finite);
        ``threshold=0`` with ``padding_trick=False`` is exactly Guided Backprop.
      padding_trick: zero the gradient of every SAME-padded Conv2D output on its
        outer 1-pixel ring before the convolution's own backward (the
        reference's default); VALID and explicitly padded convolutions and
        depthwise convolutions are untouched.

    ReLU6 keeps its zero derivative above 6: saturated units pass nothing and
    their importance is taken as 0 (the incoming gradient is multiplied by the
    derivative before the importance is formed). Thresholds are computed per
    example inside the compiled graph, with no extra forward pass.
    """

    name = "rectified"
    options = {"percentile": 98.0, "threshold": None, "padding_trick": True}

    def __init__(self, percentile=98.0, threshold=None, padding_trick=True):
        self.percentile = check_number("percentile", percentile, 0, 100, note=" (the reference's is 98)")
        self.threshold = None if threshold is None else check_number(
            "threshold", threshold, note=" (or None to use the percentile)"
        )
        self.padding_trick = check_flag("padding_trick", padding_trick)
        key = f"q{self.percentile!r}" if self.threshold is None else f"t{self.threshold!r}"
        q, t = self.percentile, self.threshold
        self._overrides = {
            "Relu": _registered(f"TfGagRectifiedRelu_{key}", lambda op, g: _rectify(op.outputs[0], g, q, t)),
            "Relu6": _registered(
                f"TfGagRectifiedRelu6_{key}",
                lambda op, g: _rectify(op.outputs[0], g * tf.cast(op.inputs[0] < 6, g.dtype), q, t),
            ),
        }
        if padding_trick:
            self._overrides["Conv2D"] = _registered(
                "TfGagRingZeroedConv2D", lambda op, g: _conv_input_gradient(op, g, True)
            )

    @property
    def overrides(self):
        return self._overrides


RULES = {"plain": Plain, "guided": Guided, "deconvnet": Deconvnet, "rectified": Rectified}
