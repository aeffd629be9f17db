"""``precision=``: closed forms of the reduced-precision gradient, the float16 gradient scale, the refusals, and
that the user's model is never changed (also not while other threads explain it in float32)."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gag
from tests.reference import run_in_threads, small_mobilenet
from tf_gag.model import precision as precision_module

pytestmark = pytest.mark.filterwarnings("ignore:precision:UserWarning")


def to_bfloat16(values):
    """float32 values rounded to the nearest bfloat16 (ties to even), by bit arithmetic alone."""
    bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


def linear_model(weights):
    """(4, 4, 1) images -> Flatten -> Dense(3) with the given (16, 3) kernel: the input gradient of class c is
    kernel[:, c], whatever the image."""
    inputs = keras.Input((4, 4, 1))
    dense = keras.layers.Dense(3)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([weights, np.zeros(3, np.float32)])
    return model


@pytest.fixture
def weights():
    return np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)


@pytest.fixture
def images():
    return np.random.default_rng(1).normal(size=(2, 4, 4, 1)).astype(np.float32)


@pytest.mark.kernels
def test_the_gradient_is_the_kernel_rounded_to_the_precision(weights, images):
    model = linear_model(weights)
    for precision, rounded in (("float32", weights), ("bfloat16", to_bfloat16(weights)),
                               ("float16", weights.astype(np.float16).astype(np.float32))):
        got = tf_gag.attributions(model, images, "vanilla_gradient", [2, 0], precision=precision)
        np.testing.assert_array_equal(got[0].ravel(), rounded[:, 2], err_msg=precision)
        np.testing.assert_array_equal(got[1].ravel(), rounded[:, 0], err_msg=precision)
    assert not np.array_equal(to_bfloat16(weights), weights)  # the rounding is visible, so bfloat16 ran


@pytest.mark.kernels
def test_float16_scales_gradients_that_would_underflow(images):
    """Two Dense layers with weights near 1e-3 (normal float16 numbers): the input gradient, a product of two,
    is near 4e-6, a float16 subnormal (spacing 6e-8) that unscaled would keep a few bits. Scaled by 1024 it is
    normal and keeps float16's eleven: within a few float16 roundings of the exact product of the float16
    weights."""
    rng = np.random.default_rng(3)
    first, second = (rng.normal(size=shape).astype(np.float32) * 1e-3 for shape in ((16, 4), (4, 3)))
    inputs = keras.Input((4, 4, 1))
    hidden, head = keras.layers.Dense(4, use_bias=False), keras.layers.Dense(3, use_bias=False)
    model = keras.Model(inputs, head(hidden(keras.layers.Flatten()(inputs))))
    hidden.set_weights([first]), head.set_weights([second])
    got = tf_gag.attributions(model, images, "vanilla_gradient", 1, precision="float16")[0].ravel()
    halves = [w.astype(np.float16).astype(np.float64) for w in (first, second)]
    terms = halves[0] * halves[1][:, 1]
    exact = terms.sum(axis=1)
    assert np.abs(exact).max() < 6.1e-5  # subnormal in float16
    np.testing.assert_array_less(np.abs(got - exact), 8 * 2.0**-11 * np.abs(terms).sum(axis=1) + 1e-12)
    unscaled = exact.astype(np.float16).astype(np.float64)  # what rounding at float16's subnormal spacing keeps
    assert np.abs(unscaled - exact).max() > 10 * np.abs(got - exact).max()


def test_the_copy_computes_in_the_precision_and_the_model_is_untouched(weights):
    model = linear_model(weights)
    before = [w.copy() for w in model.get_weights()]
    adapter = tf_gag.ModelAdapter(model)
    copy = adapter.in_precision("bfloat16")
    assert copy.precision == "bfloat16" and copy.model is not model
    assert {layer.compute_dtype for layer in copy.model.layers[1:]} == {"bfloat16"}
    assert {layer.variable_dtype for layer in copy.model.layers[1:]} == {"float32"}
    assert adapter.in_precision("bfloat16") is copy  # made once
    assert adapter.in_precision("float32") is adapter
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)


@pytest.mark.parametrize("bad", ["bf16", "float64", "", 16])
def test_unknown_precisions_are_refused(weights, images, bad):
    with pytest.raises(ValueError, match=r"precision: expected one of \['float32', 'bfloat16', 'float16'\]"):
        tf_gag.Explainer(linear_model(weights), "vanilla_gradient", precision=bad)


def test_a_callable_with_fixed_types_is_refused(weights, images):
    model = linear_model(weights)
    with pytest.raises(ValueError, match="precision: a callable model computes in the types its own functions fix"):
        tf_gag.explain(lambda x: model(x), images, "vanilla_gradient", precision="bfloat16")


def test_the_relevance_composites_are_refused(weights, images):
    with pytest.raises(ValueError, match="precision: lrp_epsilon .* float32 only"):
        tf_gag.Explainer(linear_model(weights), "lrp_epsilon", precision="float16")


def test_evaluate_refuses_a_precision_the_explainer_does_not_have(weights, images):
    model = linear_model(weights)
    explainer = tf_gag.Explainer(model, "vanilla_gradient", precision="bfloat16")
    with pytest.raises(ValueError, match="precision: the Explainer's model computes in bfloat16"):
        tf_gag.evaluate(model, images, explainer, precision="float32")
    with pytest.raises(ValueError, match="precision: this adapter is already a bfloat16 copy"):
        explainer.adapter.in_precision("float16")


def test_a_device_without_kernels_is_refused(monkeypatch, weights):
    def no_kernels(dtype):
        raise tf.errors.NotFoundError(None, None, f"No registered 'Conv2D' OpKernel for '{dtype.name}'")

    monkeypatch.setattr(precision_module, "_CHECKED", {})
    monkeypatch.setattr(precision_module, "_probe", no_kernels)
    with pytest.raises(ValueError, match="precision: /CPU:0 has no bfloat16 kernels .*No registered 'Conv2D'"):
        tf_gag.Explainer(linear_model(weights), "vanilla_gradient", precision="bfloat16")


def test_a_device_without_native_arithmetic_warns(monkeypatch, weights):
    monkeypatch.setattr(precision_module, "_CHECKED", {})
    monkeypatch.setattr(precision_module, "_cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: [])
    with pytest.warns(UserWarning, match="precision: /CPU:0 runs bfloat16 without native arithmetic .*AVX-512 BF16"):
        precision_module.check_device("bfloat16")
    monkeypatch.setattr(precision_module, "_CHECKED", {})
    monkeypatch.setattr(precision_module, "_cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision_module.check_device("bfloat16")


def test_threads_explaining_in_float32_see_float32_while_another_explains_in_bfloat16(images):
    model = small_mobilenet(size=32)
    batch = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
    expected = {p: tf_gag.attributions(model, batch, "vanilla_gradient", 1, precision=p)
                for p in ("float32", "bfloat16")}
    assert not np.array_equal(expected["float32"], expected["bfloat16"])
    jobs = [(p, lambda p=p: tf_gag.Explainer(model, "vanilla_gradient", precision=p).attributions(batch, 1))
            for p in ("float32", "bfloat16", "float32")]  # a fresh explainer, copy and trace each call
    results = run_in_threads(jobs)
    for precision, got in results:
        np.testing.assert_array_equal(got, expected[precision], err_msg=precision)
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
