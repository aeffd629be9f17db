"""Backward rules: how gradients pass the model's nonlinearities (part 2 of a method).

``Plain`` is the ordinary gradient. ``Guided`` is Guided Backprop's rule
(Springenberg et al.): the gradient passes a ReLU/ReLU6 only where the forward
input was positive *and* the incoming gradient is positive (ReLU6 keeps its zero
derivative above 6).

A rule changes the gradients of the graph being traced and nobody else's. It
never touches ``tf.nn`` or the user's layers: while the model's forward pass is
traced into the method's own ``tf.function`` graph, the rule names a gradient
function for the ReLU ops of *that graph* (``Graph.gradient_override_map``), and
the kernel differentiates with ``tf.gradients``, which honours the override.
Another thread tracing the same model, or ``tf.nn.relu`` anywhere else, keeps the
plain gradient. The gradient functions are registered under names of their own
(``TfGag*``), which adds to TensorFlow's registry without changing any entry.

A model imported through ONNX runs restored functions whose ops cannot be
overridden from outside; for those, a rule names the twin function the converter
baked (``imported_function``), or refuses.
"""
import contextlib

import tensorflow as tf

from .part import Part


@tf.RegisterGradient("TfGagGuidedRelu")
def _guided_relu_gradient(op, grad):
    return grad * tf.cast(op.inputs[0] > 0, grad.dtype) * tf.cast(grad > 0, grad.dtype)


@tf.RegisterGradient("TfGagGuidedRelu6")
def _guided_relu6_gradient(op, grad):
    features = op.inputs[0]
    passing = tf.logical_and(features > 0, features < 6)
    return grad * tf.cast(passing, grad.dtype) * tf.cast(grad > 0, grad.dtype)


class BackwardRule(Part):
    """Base class: a rule with no overrides is the plain gradient.

    Subclasses set ``overrides`` ({op type: registered gradient name}) and, if
    imported models have a twin for the rule, ``imported_function``.
    """

    name = "plain"
    overrides = {}
    imported_function = "logits"


    @contextlib.contextmanager
    def traced(self):
        """Apply the rule to the ops created in the block, in the graph being traced.

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
        reached.append(sum(op.type in self.overrides for op in graph.get_operations()[before:]))

    def check_reached(self, reached, kind):
        """Raise if the rule found no op to apply to in a model of this ``kind``."""
        if self.overrides and reached and reached[0] == 0:
            types = "/".join(sorted(self.overrides))
            raise ValueError(
                f"method: the {self.name} backward rule found no {types} op in the traced forward pass of this "
                f"{kind} model, so its gradient would be the plain one. The rule needs the model's ReLUs in the "
                "traced graph: a Keras model, a TF callable, or a model imported with tf_gag.load_model."
            )


class Plain(BackwardRule):
    """The ordinary gradient."""


class Guided(BackwardRule):
    """Guided Backprop's rule at every ReLU and ReLU6 (Springenberg et al., 2015)."""

    name = "guided"
    overrides = {"Relu": "TfGagGuidedRelu", "Relu6": "TfGagGuidedRelu6"}
    imported_function = "guided_logits"


RULES = {"plain": Plain, "guided": Guided}
