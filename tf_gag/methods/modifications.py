"""How inputs are modified: part 3 of a method.

A modification turns an image into ``n_jobs`` model inputs and each input's
gradient into a *contribution* whose mean over the jobs is the method's
attribution:

=================  =====================================  ==========================
modification       input of job k                         contribution
=================  =====================================  ==========================
Identity           x                                      G
TimesInput         x                                      x * G
Relevance (LRP)    x                                      f_c(x) * G (G: relevance from 1)
GaussianNoise      x + sigma * eps_k                      G
StraightPath (IG)  b + alpha_k (x - b)                    G * (x - b)
BlurPath (BlurIG)  blur(x, s_k)                           -S * G * d blur / d s
GuidedPath         adaptive (sequential, Guided IG)       n * (x_k - x_{k-1}) * G
ScaledPath (GGIG)  b + (k+1)/n (x - b), optionally ascended  G * (x - b)
Noised(inner)      inner's job on x + sigma * eps_k       inner's, on that noisy x
=================  =====================================  ==========================

`Noised` composes noise with any modification (SmoothGrad over IG, BlurIG or
Guided IG, as PAIR's ``GetSmoothedMask`` and captum's ``NoiseTunnel`` do): each
of its ``noise_samples`` noisy copies runs the inner method's every job.

Each modification owns its options (``options``: name -> default) and checks
them when built; it is immutable afterwards (settings that depend on the image
size, such as BlurIG's kernel radius, are computed where they are used).

Randomness is stateless and depends only on (seed, k): every image draws the
same noise sequence, scaled by its own sigma, so an image's map never depends
on the other images of the batch or on its position there. A chunk draws
each of its distinct k once and shares the draw between its images.
"""
import math

import numpy as np
import tensorflow as tf

from .. import ops
from ..io.checks import check_choice, check_finite_array, check_flag, check_int, check_number
from .part import Part

NOISE_RANGES = ("image", "batch")


def _noise_settings(noise_level, noise_range):
    """The validated ``(noise_level, noise_range)`` every Gaussian noise takes (`GaussianNoise`, `Noised`)."""
    return check_number("noise_level", noise_level, 0), check_choice("noise_range", noise_range, NOISE_RANGES)


def _draws(draw, keys):
    """``draw(key)`` for every entry of ``keys`` (B,), each distinct key drawn once.

    Chunks hold the same sample index for many images; drawing per distinct
    index instead of per job divides the random-number work by the images
    a chunk shares.
    """
    distinct, position = tf.unique(keys)
    return tf.gather(tf.map_fn(draw, distinct, fn_output_signature=tf.float32), position)


class Modification(Part):
    """Base class. ``sequential`` modifications (Guided IG) are driven step by step.

    ``gradient_contributions``: a job's contribution is its gradient as it is
    (so the gradient may also be a layer's, for Grad-CAM). ``needs_black``:
    built with ``black``, black pixels in the model's input space (or None).
    """

    sequential = False
    #: Forward+backward passes one job costs (more than 1 when a job climbs before its gradient).
    passes_per_job = 1
    gradient_contributions = False
    needs_black = False
    n_jobs = 1


    def param_specs(self, image_shape):
        """TensorSpecs of the per-image parameters (first dimension G)."""
        return (tf.TensorSpec((None,), tf.float32),)

    def params(self, images):
        """Per-image parameters of an (N, H, W, C) batch: a tuple of (N, ...) float32 tensors.

        TF ops only, so the same code runs eagerly on a numpy batch and inside
        an exported serving graph (`tf_gag.export_saved_model`).
        """
        return (tf.zeros(tf.shape(images)[:1], tf.float32),)

    def validate_image_shape(self, image_shape):
        """Raise if this modification cannot run on images of this (H, W, C)."""

    def inputs(self, jobs):
        """(B, H, W, C): the model inputs of a chunk of `tf_gag.methods.jobs.Jobs`."""
        raise NotImplementedError

    def contributions(self, jobs, result):
        """Each job's contribution from the kernel's `Gradients` ``result`` (its gradient, as it is, by default)."""
        return result.grads


class Identity(Modification):
    """No modification: one job, the image itself (Vanilla Gradient, Guided Backprop)."""

    gradient_contributions = True

    def inputs(self, jobs):
        return jobs.job_images()


class TimesInput(Modification):
    """One job, the image itself; its contribution is input x gradient (Gradient x Input, RectGrad's last step).

    An attribution near 0 wherever the model-space input is near 0, whatever
    the gradient: black for [0, 1] inputs, mid-grey for ``x / 127.5 - 1``
    (the input bias Brocki & Chung point out).
    """

    def inputs(self, jobs):
        return jobs.job_images()

    def contributions(self, jobs, result):
        return result.grads * jobs.inputs


class Relevance(Modification):
    """One job, the image itself; its contribution is the relevance at the input (layer-wise relevance propagation).

    A relevance rule (`tf_gag.methods.composites`) passes relevance, not
    gradient, back from the explained score, starting from 1; every rule is
    linear in the relevance it receives, so the relevance that starts from the
    score's own value f_c(x), as LRP does, is the backward signal times
    f_c(x). It then sums to f_c(x) wherever the rules conserve relevance.
    """

    def inputs(self, jobs):
        return jobs.job_images()

    def contributions(self, jobs, result):
        return result.grads * tf.reshape(result.objective, [-1] + [1] * (result.grads.shape.rank - 1))


class GaussianNoise(Modification):
    """``x + eps_k``, ``eps_k ~ N(0, sigma^2)`` per element (SmoothGrad, VarGrad, GAG).

    sigma = ``noise_level * (max(x) - min(x))``; sample k draws eps_k with
    the stateless seed ``(seed, stream + k)`` (`Noised` uses its own stream). ``noise_range="image"`` (the
    default) takes the range of each image, so its noise never depends on the
    batch; ``"batch"`` takes it over all images of the call, as the reference
    code does, for comparison with its numbers.
    """

    options = {"n_samples": 20, "noise_level": 0.15, "noise_range": "image"}
    gradient_contributions = True

    def __init__(self, n_samples=20, noise_level=0.15, noise_range="image", stream=0):
        self.stream = int(stream)
        self.n_jobs = self.n_samples = check_int("n_samples", n_samples, 1)
        self.noise_level, self.noise_range = _noise_settings(noise_level, noise_range)

    def sigmas(self, images):
        """Each image's noise scale, (N,)."""
        images = tf.convert_to_tensor(images, tf.float32)
        span = tf.reduce_max(images, axis=[1, 2, 3]) - tf.reduce_min(images, axis=[1, 2, 3])
        if self.noise_range == "batch":
            span = tf.fill(tf.shape(span), tf.reduce_max(images) - tf.reduce_min(images))
        return tf.constant(self.noise_level, tf.float32) * span

    def params(self, images):
        return (self.sigmas(images),)

    def noisy(self, images, sigma, image_index, noise_index, seed):
        """``images[image_index] + sigma * eps_k`` for each job, k = ``noise_index``."""
        shape = tf.shape(images)[1:]
        offset = tf.constant(self.stream, tf.int32)
        noise = _draws(lambda k: tf.random.stateless_normal(shape, seed=tf.stack([seed, offset + k])), noise_index)
        return tf.gather(images, image_index) + tf.reshape(tf.gather(sigma, image_index), [-1, 1, 1, 1]) * noise

    def inputs(self, jobs):
        return self.noisy(jobs.images, jobs.params[0], jobs.image_index, jobs.sample_index, jobs.seed)


class StraightPath(Modification):
    """Integrated Gradients: the straight line from a baseline b to x.

    ``baseline``: ``"zeros"`` (the default: zeros in the model's input space),
    ``"black"`` (black pixels mapped through the model's preprocessing; needs
    one), ``"uniform"`` (uniform noise between each image's min and max, one
    draw per trial — the reference code's choice), ``"min_max"`` (two trials:
    the constant image at the image's min, then at its max — PAIR's XRAI
    "black and white" baselines; ``trials=2``), or an array of the image
    shape. ``path_points``: ``"midpoint"`` (alpha_k = (k + 1/2) / steps, the
    Riemann rule that makes completeness hold to O(1/steps^2)) or
    ``"linspace"`` (alpha = 0, 1/(steps-1), ..., 1, the reference's points).
    With ``trials`` > 1 each trial has its own random baseline; attributions
    are the mean over trials (the reference sums them: the same map after
    normalisation).
    """

    options = {"steps": 20, "baseline": "zeros", "path_points": "midpoint", "trials": 1}
    needs_black = True

    def __init__(self, steps=20, baseline="zeros", path_points="midpoint", trials=1, black=None):
        self.steps = check_int("steps", steps, 1)
        self.trials = check_int("trials", trials, 1)
        self.path_points = check_choice("path_points", path_points, ("midpoint", "linspace"))
        if self.path_points == "linspace" and self.steps < 2:
            raise ValueError(f"steps: path_points='linspace' needs steps >= 2, got {steps}")
        self.n_jobs = self.steps * self.trials
        if isinstance(baseline, str):
            check_choice("baseline", baseline, ("zeros", "black", "uniform", "min_max"))
            if baseline == "min_max" and self.trials != 2:
                raise ValueError(f"trials: baseline 'min_max' runs one trial from the image's min and one from its "
                                 f"max; expected trials=2, got {trials}")
            if baseline == "black" and black is None:
                raise ValueError(
                    "baseline: 'black' needs the model's preprocessing (ModelAdapter(..., "
                    "preprocessing=tf_gag.Preprocessing(mean, std))); none is known"
                )
            self.baseline = baseline
            self.baseline_array = None if baseline != "black" else np.asarray(black, np.float32)
        else:
            self.baseline = "array"
            self.baseline_array = check_finite_array(
                "baseline", baseline, "'zeros', 'black', 'uniform', 'min_max' or an array of finite numbers",
                np.float32
            )
            self.baseline_array.setflags(write=False)

    def validate_image_shape(self, image_shape):
        if self.baseline == "array":
            try:
                np.broadcast_to(self.baseline_array, image_shape)
            except ValueError:
                raise ValueError(
                    f"baseline: shape {self.baseline_array.shape} does not broadcast to the images' "
                    f"(H, W, C) = {tuple(image_shape)}"
                ) from None

    def param_specs(self, image_shape):
        return (tf.TensorSpec((None,) + tuple(image_shape), tf.float32), tf.TensorSpec((None, 2), tf.float32))

    def params(self, images):
        images = tf.convert_to_tensor(images, tf.float32)
        fixed = tf.zeros_like(images)
        if self.baseline_array is not None:
            fixed = fixed + self.baseline_array
        bounds = tf.stack([tf.reduce_min(images, axis=[1, 2, 3]), tf.reduce_max(images, axis=[1, 2, 3])], axis=1)
        return fixed, bounds

    def _alphas(self, step):
        step = tf.cast(step, tf.float32)
        if self.path_points == "midpoint":
            return (step + 0.5) / self.steps
        return step / (self.steps - 1)

    def _baselines(self, jobs):
        fixed, bounds = jobs.job_params()
        if self.baseline == "min_max":  # trial 0 from the image's min, trial 1 from its max
            extreme = tf.where(jobs.sample_index // self.steps == 0, bounds[:, 0], bounds[:, 1])
            return fixed + tf.reshape(extreme, [-1, 1, 1, 1])
        if self.baseline != "uniform":
            return fixed
        trial = jobs.sample_index // self.steps
        shape = tf.shape(jobs.images)[1:]
        seed = jobs.seed
        unit = _draws(lambda t: tf.random.stateless_uniform(shape, seed=tf.stack([seed, 1_000_003 + t])), trial)
        low, high = tf.reshape(bounds[:, 0], [-1, 1, 1, 1]), tf.reshape(bounds[:, 1], [-1, 1, 1, 1])
        return low + (high - low) * unit

    def inputs(self, jobs):
        baselines = self._baselines(jobs)
        alpha = tf.reshape(self._alphas(jobs.sample_index % self.steps), [-1, 1, 1, 1])
        return baselines + alpha * (jobs.job_images() - baselines)

    def contributions(self, jobs, result):
        return result.grads * (jobs.job_images() - self._baselines(jobs))

    def path_point(self, jobs, fraction):
        """The point ``b + t (x - b)`` at path fraction t = ``fraction`` (B,) of each job's line (IDGI)."""
        baselines = self._baselines(jobs)
        return baselines + tf.reshape(fraction, [-1, 1, 1, 1]) * (jobs.job_images() - baselines)


class BlurPath(Modification):
    """BlurIG (Xu et al., 2020): the path from x to a heavily blurred x.

    Sigmas s_k = k * max_sigma / steps (k = 0 .. steps-1); the derivative of
    the blurred image with respect to sigma is a forward finite difference
    with ``grad_step``. Contributions are ``-max_sigma * G * d blur/d s``, so
    their mean is the Riemann sum of the path integral and attributions sum to
    about f(x) - f(blur(x, max_sigma)) (completeness). ``reference_sign=True``
    drops the minus sign, as the reference code does. ``kernel_size`` is the
    blur kernel's width: None (default) covers 3 sigma, capped by the image
    size; the reference uses a fixed 41.
    """

    options = {"steps": 20, "max_sigma": 50.0, "grad_step": 0.01, "kernel_size": None, "reference_sign": False}

    def __init__(self, steps=20, max_sigma=50.0, grad_step=0.01, kernel_size=None, reference_sign=False):
        self.n_jobs = self.steps = check_int("steps", steps, 1)
        self.max_sigma = check_number("max_sigma", max_sigma, 0, low_open=True)
        self.grad_step = check_number("grad_step", grad_step, 0, low_open=True)
        if kernel_size is not None:
            kernel_size = check_int("kernel_size", kernel_size, 1)
            if kernel_size % 2 == 0:
                raise ValueError(f"kernel_size: expected an odd integer, got {kernel_size}")
        self.kernel_size = kernel_size
        self.reference_sign = check_flag("reference_sign", reference_sign)

    def validate_image_shape(self, image_shape):
        self.radius(image_shape)

    def radius(self, image_shape):
        """The blur kernel's radius for images of this (H, W, ...): 3 sigma, or ``kernel_size``, within the image."""
        limit = min(image_shape[0], image_shape[1]) - 1
        if self.kernel_size is None:
            return max(0, min(int(math.ceil(3 * (self.max_sigma + self.grad_step))), limit))
        if self.kernel_size // 2 > limit:
            raise ValueError(
                f"kernel_size: {self.kernel_size} is too large for {image_shape[0]}x{image_shape[1]} "
                f"images (at most {2 * limit + 1})"
            )
        return self.kernel_size // 2

    def _sigmas(self, sample_index):
        return tf.cast(sample_index, tf.float32) * (self.max_sigma / self.steps)

    def inputs(self, jobs):
        radius = self.radius(jobs.images.shape[1:3])
        return ops.gaussian_blur(jobs.job_images(), self._sigmas(jobs.sample_index), radius)

    def contributions(self, jobs, result):
        sigma = self._sigmas(jobs.sample_index) + self.grad_step
        further = ops.gaussian_blur(jobs.job_images(), sigma, self.radius(jobs.images.shape[1:3]))
        d_blur = (further - jobs.inputs) / self.grad_step
        sign = 1.0 if self.reference_sign else -1.0
        return sign * self.max_sigma * result.grads * d_blur

    def path_point(self, jobs, fraction):
        """The point at path fraction t = ``fraction`` (B,) from the blurred image (t = 0: sigma = max_sigma) to
        the image (t = 1), blurred with sigma = (1 - t) max_sigma (IDGI)."""
        radius = self.radius(jobs.images.shape[1:3])
        return ops.gaussian_blur(jobs.job_images(), (1.0 - fraction) * self.max_sigma, radius)


def _one_baseline(method, baseline):
    """Refuse the baselines that need several trials ('uniform', 'min_max') for a path from one baseline."""
    if isinstance(baseline, str) and baseline in ("uniform", "min_max"):
        raise ValueError(f"baseline: {method} takes 'zeros', 'black' or an array, not {baseline!r}")


class GuidedPath(Modification):
    """Guided IG (Kapishnikov et al., 2021): an adaptive path from a baseline to x.

    At each of ``steps`` steps the features with the smallest |gradient|
    (a ``fraction`` of those not yet at their target) move first, while every
    feature stays within ``max_dist`` (in path fraction) of the straight
    line's schedule. Defaults are the paper's experiment (steps = 20,
    max_dist = 0.1); PAIR-code's library defaults are 200 and 0.02. The path
    depends on the gradients, so steps run one after another (images of a
    chunk still share each batched gradient call). Computed in float64 numpy,
    like the PAIR implementation it follows.
    """

    options = {"steps": 20, "fraction": 0.25, "max_dist": 0.1, "baseline": "zeros"}
    needs_black = True
    sequential = True
    _EPSILON = 1e-9

    def __init__(self, steps=20, fraction=0.25, max_dist=0.1, baseline="zeros", black=None):
        self.n_jobs = self.steps = check_int("steps", steps, 1)
        self.fraction = check_number("fraction", fraction, 0, 1)
        self.max_dist = check_number("max_dist", max_dist, 0, 1)
        _one_baseline("Guided IG", baseline)
        self._line = StraightPath(steps=1, baseline=baseline, black=black)
        self.baseline = baseline

    def validate_image_shape(self, image_shape):
        self._line.validate_image_shape(image_shape)

    def baselines(self, images):
        """(N, H, W, C) float64 starting points of the path."""
        return self._line.params(images)[0].numpy().astype(np.float64)

    def walk(self, images, gradient_fn, seed):
        """Yield each step's contributions for a chunk of images (sequentially).

        ``gradient_fn(x)`` returns (gradients, objectives) at the float32
        inputs x; the path is deterministic, so ``seed`` is unused.
        """
        for x, grad, _, x_new in self.points(images, gradient_fn):
            yield (self.steps * (x_new - x) * grad).reshape(images.shape).astype(np.float32)

    def points(self, images, gradient_fn):
        """Yield ``(x_k, gradient at x_k, objective at x_k, x_{k+1})`` of each step, (B, features) float64 rows."""
        shape = images.shape
        target = images.reshape(len(images), -1).astype(np.float64)
        base = self.baselines(images).reshape(len(images), -1)
        total = np.abs(target - base).sum(axis=1)
        x = base.copy()
        for step in range(self.steps):
            grad, objective = gradient_fn(x.reshape(shape).astype(np.float32))
            grad = np.asarray(grad, np.float64).reshape(len(images), -1)
            x_new = self._advance(x, target, base, grad, step, total)
            yield x, grad, np.asarray(objective, np.float64), x_new
            x = x_new

    def _advance(self, x, target, base, grad_actual, step, total):
        """One Guided IG step for every row of x (vectorised over the chunk)."""
        steps = self.steps
        x = x.copy()
        grad = grad_actual.copy()
        alpha = (step + 1.0) / steps
        alpha_min, alpha_max = max(alpha - self.max_dist, 0.0), min(alpha + self.max_dist, 1.0)
        x_min = base + (target - base) * alpha_min
        x_max = base + (target - base) * alpha_max
        l1_target = total * (1.0 - (step + 1.0) / steps)
        active = total > 0
        diff = target - base
        while active.any():
            rows = active[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                x_alpha = np.where(diff != 0, (x - base) / np.where(diff != 0, diff, 1.0), alpha_max)
            x = np.where(rows & (x_alpha < alpha_min), x_min, x)
            l1_current = np.abs(x - target).sum(axis=1)
            close = np.abs(l1_current - l1_target) <= np.maximum(
                self._EPSILON, self._EPSILON * np.maximum(np.abs(l1_current), np.abs(l1_target))
            )
            active &= ~close
            if not active.any():
                break
            rows = active[:, None]
            grad = np.where(rows & (x == x_max), np.inf, grad)
            magnitude = np.abs(grad)
            threshold = np.quantile(magnitude, self.fraction, axis=1, method="lower")
            selected = rows & (magnitude <= threshold[:, None]) & np.isfinite(grad)
            l1_selected = (np.abs(x - x_max) * selected).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                gamma = np.where(l1_selected > 0, (l1_current - l1_target) / l1_selected, np.inf)
            full = gamma > 1.0
            x = np.where(selected & full[:, None], x_max, x)
            partial = selected & ~full[:, None]
            x = np.where(partial, x + (x_max - x) * np.where(np.isfinite(gamma), gamma, 0.0)[:, None], x)
            active &= full
        return x


class ScaledPath(Modification):
    """Geometrically Guided IG's points (Rahman, Lewis & Plis): scaled versions of the input, optionally ascended.

    Point k is ``b + alpha_k (x - b)`` with ``alpha_k = (k + 1) / points`` (the
    last point is x itself) and ``baseline`` b black by default (black pixels
    through the model's preprocessing; 0 when none is known, the library's
    rule for pixel inputs). With ``ascent_steps`` > 0 each point first climbs
    the target score: ``ascent_steps`` steps of ``x <- x + ascent_step_size * G``
    in input space (the workshop paper's "gradient ascent at each interpolation
    point as a guide"), the points then run one after another on the host. A
    job's contribution is the gradient at its (ascended) point, times ``x - b``
    when ``times_delta`` (default), so a `Select` fold keeps per feature the
    point with the largest attribution. On a linear model every choice gives
    ``w * (x - b)``. The paper's body was not available: the ascent's form,
    the defaults and ``times_delta`` are this library's reading (REFERENCE §9).
    """

    options = {"points": 20, "baseline": "black", "ascent_steps": 0, "ascent_step_size": 0.01, "times_delta": True}
    needs_black = True

    def __init__(self, points=20, baseline="black", ascent_steps=0, ascent_step_size=0.01, times_delta=True,
                 black=None):
        self.n_jobs = self.points = check_int("points", points, 1)
        self.ascent_steps = check_int("ascent_steps", ascent_steps, 0)
        self.ascent_step_size = check_number("ascent_step_size", ascent_step_size, 0)
        self.times_delta = check_flag("times_delta", times_delta)
        if isinstance(baseline, str) and baseline == "black" and black is None:
            baseline = "zeros"  # no preprocessing known: inputs are pixels and black is 0
        _one_baseline("Geometrically Guided IG", baseline)
        self._line = StraightPath(steps=1, baseline=baseline, black=black)
        self.baseline = baseline
        self.sequential = self.ascent_steps > 0
        self.passes_per_job = self.ascent_steps + 1

    def validate_image_shape(self, image_shape):
        self._line.validate_image_shape(image_shape)

    def param_specs(self, image_shape):
        return self._line.param_specs(image_shape)

    def params(self, images):
        return self._line.params(images)

    def _alphas(self, sample_index):
        return tf.reshape((tf.cast(sample_index, tf.float32) + 1.0) / self.points, [-1, 1, 1, 1])

    def inputs(self, jobs):
        baselines = jobs.job_params()[0]
        return baselines + self._alphas(jobs.sample_index) * (jobs.job_images() - baselines)

    def contributions(self, jobs, result):
        if not self.times_delta:
            return result.grads
        return result.grads * (jobs.job_images() - jobs.job_params()[0])

    def walk(self, images, gradient_fn, seed):
        """With the ascent: each point climbs ``ascent_steps`` gradient steps, then yields its contribution."""
        base = self._line.params(images)[0].numpy()
        delta = images - base
        for k in range(self.points):
            x = base + (k + 1.0) / self.points * delta
            for _ in range(self.ascent_steps):
                x = x + self.ascent_step_size * np.asarray(gradient_fn(x.astype(np.float32))[0])
            grads = np.asarray(gradient_fn(x.astype(np.float32))[0])
            yield (grads * delta if self.times_delta else grads).astype(np.float32)


class Wrapping(Modification):
    """A modification over an ``inner`` one (`Noised`, `tf_gag.methods.idgi.IDGI`): the inner's jobs, its
    per-image parameters and image checks, its way of running (sequential or not) and its passes per job."""

    def __init__(self, inner):
        self.inner = inner
        self.n_jobs = inner.n_jobs
        self.sequential = inner.sequential
        self.passes_per_job = inner.passes_per_job
        self.gradient_contributions = inner.gradient_contributions

    def validate_image_shape(self, image_shape):
        self.inner.validate_image_shape(image_shape)

    def param_specs(self, image_shape):
        return self.inner.param_specs(image_shape)

    def params(self, images):
        return self.inner.params(images)


class Noised(Wrapping):
    """Noise over any modification: the inner method on ``noise_samples`` noisy copies of each image.

    Job ``j`` is the inner job ``j % inner.n_jobs`` on noisy copy ``j //
    inner.n_jobs``: ``x + sigma * eps_k`` with sigma as in `GaussianNoise`
    (``noise_level`` times the image's value range) and eps_k drawn from its
    own stateless stream, so copy k is the same for every image and batch. The
    fold's mean is then the mean over copies of the inner method's map
    (SmoothGrad of that method); another fold runs over all copies' jobs
    together (a variance over copies and steps, a selection across both). The
    inner method's per-image parameters (a baseline, a value range) are those
    of the clean image.
    """

    options = {"noise_samples": 0, "noise_level": 0.15, "noise_range": "image"}

    def __init__(self, inner, noise_samples, noise_level=0.15, noise_range="image"):
        if isinstance(inner, (GaussianNoise, Noised)):
            raise ValueError("noise_samples: the method already samples Gaussian noise; use its n_samples")
        super().__init__(inner)
        self.noise_samples = check_int("noise_samples", noise_samples, 1)
        self.noise = GaussianNoise(self.noise_samples, noise_level, noise_range, stream=2_000_003)
        self.noise_level, self.noise_range = self.noise.noise_level, self.noise.noise_range
        self.n_jobs = self.noise_samples * inner.n_jobs

    @staticmethod
    def check_options(noise_samples, noise_level, noise_range):
        """The validated ``noise_samples`` (0: no noise), with the other two checked even when they go unused."""
        _noise_settings(noise_level, noise_range)
        return check_int("noise_samples", noise_samples, 0)

    def describe(self):
        return {**self.inner.describe(), **super().describe()}

    def __repr__(self):
        return f"Noised({self.inner!r}, noise_samples={self.noise_samples}, noise_level={self.noise_level})"

    def param_specs(self, image_shape):
        return (tf.TensorSpec((None,), tf.float32),) + tuple(self.inner.param_specs(image_shape))

    def params(self, images):
        return (self.noise.sigmas(images),) + tuple(self.inner.params(images))

    def _inner_jobs(self, jobs):
        """The jobs as the inner method sees them: each job's noisy copy is its own image, with the clean
        image's inner parameters and the inner job index."""
        noisy = self.noise.noisy(jobs.images, jobs.params[0], jobs.image_index,
                                 jobs.sample_index // self.inner.n_jobs, jobs.seed)
        return jobs._replace(
            images=noisy, params=jobs.job_params()[1:], image_index=tf.range(tf.size(jobs.image_index)),
            sample_index=jobs.sample_index % self.inner.n_jobs,
        )

    def inputs(self, jobs):
        return self.inner.inputs(self._inner_jobs(jobs))

    def contributions(self, jobs, result):
        return self.inner.contributions(self._inner_jobs(jobs), result)

    def walk(self, images, gradient_fn, seed):
        """Sequential inner methods (Guided IG): the inner walk on each noisy copy in turn."""
        sigma = self.noise.sigmas(images)
        index = tf.range(len(images), dtype=tf.int32)
        for k in range(self.noise_samples):
            noisy = self.noise.noisy(images, sigma, index, tf.fill([len(images)], k), tf.constant(seed, tf.int32))
            yield from self.inner.walk(noisy.numpy(), gradient_fn, seed)


MODIFICATIONS = {
    "identity": Identity,
    "times_input": TimesInput,
    "relevance": Relevance,
    "noise": GaussianNoise,
    "straight": StraightPath,
    "blur": BlurPath,
    "guided_path": GuidedPath,
    "scaled_path": ScaledPath,
}
