"""IDGI: Integrated Decision Gradients over any path method (Yang, Wang & Bilgic, CVPR 2023).

A path method walks points x_0 (the baseline) ... x_m = x (the image). IDGI
gives feature i, at each step, the share g_i^2 / sum_j g_j^2 of the step's
change in the score, f(x_{k+1}) - f(x_k), with g the gradient at x_k; the
attribution is the sum over the steps. The last point's gradient goes unused,
as in the authors' ``idgi.py``. The shares sum to 1 at every step, so the
attribution sums exactly to f(x) - f(x_0) (completeness, with no Riemann
error), and on a linear model it is the closed form
w_i^2 / ||w||^2 (f(x) - f(x_0)).

`IDGI` wraps a path modification (`StraightPath`: IG; `BlurPath`: BlurIG,
whose x_0 is the image blurred with ``max_sigma``; `GuidedPath`: Guided IG).
Its m = ``steps`` jobs run at the path fractions t_k = k / m, not at the
inner method's own points (IG's midpoints), so that x_0 and x_m are the
path's ends. A job's score comes back from the kernel beside its gradient;
f(x_{k+1}) is one more forward pass per job (`tf_gag.methods.jobs.Jobs.score`).
Guided IG's adaptive path runs on the host: its points are walked as Guided
IG walks them, plus one forward pass at the image. Contributions are m times
each step's share, so the fold's mean over the m jobs is the sum.
"""
import numpy as np
import tensorflow as tf

from ..io.checks import check_flag
from .modifications import Wrapping


class IDGI(Wrapping):
    """IDGI over the path modification ``inner`` (anything with ``path_point`` or ``points``)."""

    options = {"idgi": False}

    def __init__(self, inner):
        if not (hasattr(inner, "path_point") or hasattr(inner, "points")):
            raise ValueError(f"idgi: IDGI needs a path method (IG, Guided IG, BlurIG); {type(inner).__name__} walks "
                             "no path")
        super().__init__(inner)
        self.steps = inner.steps
        self.gradient_contributions = False  # a share of the score's change, not the gradient itself

    @staticmethod
    def check_options(idgi):
        """The validated ``idgi`` flag."""
        return check_flag("idgi", idgi)

    def describe(self):
        return {**self.inner.describe(), "idgi": True}

    def __repr__(self):
        return f"IDGI({self.inner!r})"

    def _fraction(self, jobs):
        return tf.cast(jobs.sample_index % self.steps, tf.float32) / self.steps

    def inputs(self, jobs):
        return self.inner.path_point(jobs, self._fraction(jobs))

    def contributions(self, jobs, result):
        following = self.inner.path_point(jobs, self._fraction(jobs) + 1.0 / self.steps)
        change = jobs.score(following, jobs.targets, jobs.context) - result.objective
        return self.steps * _shares(result.grads) * tf.reshape(change, [-1, 1, 1, 1])

    def walk(self, images, gradient_fn, seed):
        """Guided IG's path, walked as Guided IG walks it; each step's share of the score's change."""
        last = None  # (gradient, objective) at the previous point: its step ends at this point
        for _, grad, objective, _ in self.inner.points(images, gradient_fn):
            if last is not None:
                yield self._step(images.shape, last[0], objective - last[1])
            last = grad, objective
        _, final = gradient_fn(images.astype(np.float32))  # f(x_m): the path ends at the image
        yield self._step(images.shape, last[0], np.asarray(final, np.float64) - last[1])

    def _step(self, shape, grad, change):
        """One step's contributions from (B, features) float64 gradients and the (B,) change of the score."""
        square = grad**2
        total = square.sum(axis=1, keepdims=True)
        share = np.divide(square, total, out=np.zeros_like(square), where=total > 0)
        return (self.steps * share * change[:, None]).reshape(shape).astype(np.float32)


def _shares(grads):
    """g_i^2 / sum_j g_j^2 per job (0 where the gradient is 0 everywhere)."""
    square = tf.square(grads)
    total = tf.reduce_sum(square, axis=[1, 2, 3], keepdims=True)
    return tf.math.divide_no_nan(square, total)
