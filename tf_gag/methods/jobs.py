"""The job contract: one record per chunk of jobs, passed from the modification through the kernel to the fold.

A chunk is B jobs of a group of G images: job j is sample ``sample_index[j]``
(a noise draw, a path step) of image ``image_index[j]``. `Jobs` carries what
every part may need about those jobs; `Gradients` is what the kernel returns
for them. Parts read the fields they need by name instead of taking 7-9
positional parameters, and a part that needs more (the model's score along a
path, forward passes on masked inputs) finds it here without changing the
signatures of the others.
"""
from typing import Callable, NamedTuple, Optional

import tensorflow as tf


def class_scores(logits, targets, objective="logit"):
    """The scalar per row that is differentiated.

    ``"logit"`` is the paper's choice (pre-softmax class score);
    ``"neg_log_softmax"`` is what the reference code's Integrated Gradients
    differentiates (-log p_c), offered for comparison with its numbers.
    """
    if objective == "neg_log_softmax":
        logits = -tf.nn.log_softmax(logits, axis=-1)
    return tf.gather(logits, targets, axis=1, batch_dims=1)


class Jobs(NamedTuple):
    """A chunk of jobs, as the modification, source and fold see it (TF tensors, inside the compiled step)."""

    #: (G, H, W, C) the group's images.
    images: tf.Tensor
    #: The modification's per-image parameters (`Modification.params`), (G, ...) each.
    params: tuple
    #: (B,) int32: each job's image within the group.
    image_index: tf.Tensor
    #: (B,) int32: each job's sample (noise draw, path step, trial) of its image.
    sample_index: tf.Tensor
    #: () int32: the stateless seed of every random draw.
    seed: tf.Tensor
    #: (B,) int32: each job's target class.
    targets: tf.Tensor
    #: A multi-input model's other inputs, (B, ...) each, one row per job; () for one-input models.
    context: tuple = ()
    #: (B, H, W, C): the model inputs the modification made for the jobs (set once they are made).
    inputs: Optional[tf.Tensor] = None
    #: ``forward(x, context) -> (rows, classes)``: the model's logits on other inputs, a plain forward pass
    #: without gradient (IDGI's path points, Score-CAM's masked images); call it inside the compiled step.
    forward: Optional[Callable] = None
    #: The differentiated score: ``"logit"`` or ``"neg_log_softmax"`` (`tf_gag.methods.kernel.OBJECTIVES`).
    objective: str = "logit"

    def score(self, x, targets, context=()):
        """(rows,): the objective of ``targets`` on inputs ``x`` (``context``: their other inputs), by `forward`."""
        return class_scores(self.forward(x, context), targets, self.objective)

    def job_images(self):
        """(B, H, W, C): each job's image."""
        return tf.gather(self.images, self.image_index)

    def job_params(self):
        """The modification's parameters gathered per job, (B, ...) each."""
        return tuple(tf.gather(p, self.image_index) for p in self.params)


class Gradients(NamedTuple):
    """What the kernel returns for a chunk: each job's gradient and its scores."""

    #: d objective / d (input or captured layer), one row per job.
    grads: tf.Tensor
    #: What was differentiated with respect to: the inputs, or the layer's activations.
    values: tf.Tensor
    #: (B,): the differentiated score of each job's target (the target logit for the default objective).
    objective: tf.Tensor
    #: (B,): each job's target logit.
    logit: tf.Tensor
    #: (B,): each job's target probability (softmax of the logits).
    probability: tf.Tensor
