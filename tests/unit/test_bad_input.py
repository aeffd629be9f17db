"""Bad input: one clear error naming the argument, raised before heavy work."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gag


@pytest.fixture(scope="module")
def small():
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(5)])
    return model, np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "images, error, match",
    [
        (np.zeros((2, 4, 4)), ValueError, r"images: the model expects \(H, W, C\)"),
        (np.zeros((4, 4)), ValueError, r"images: expected shape \(N, H, W, C\)"),
        (np.zeros((2, 4, 4, 1)), ValueError, r"channels differs"),
        (np.zeros((2, 5, 4, 3)), ValueError, r"height differs"),
        (np.zeros((0, 4, 4, 3)), ValueError, r"images: the batch is empty"),
        (np.array([[["a"]]]), TypeError, r"images: expected a numeric"),
        (np.zeros((1, 4, 4, 3), bool), TypeError, r"images: expected a numeric"),
        ("cat.jpg", TypeError, r"images: expected an \(N, H, W, C\) array"),
    ],
)
def test_bad_images(small, images, error, match):
    with pytest.raises(error, match=match):
        tf_gag.explain(small[0], images, "vg")


def test_nan_and_inf_images_name_the_image(small):
    images = small[1].copy()
    images[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"images: NaN or Inf values in image\(s\) \[1\]"):
        tf_gag.explain(small[0], images)
    images[1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        tf_gag.explain(small[0], tf.constant(images))


@pytest.mark.parametrize(
    "targets, error, match",
    [
        (5, ValueError, r"targets: class ids must lie in \[0, 4\].*\[5, 5\]"),
        (-1, ValueError, r"targets: class ids must lie in \[0, 4\]"),
        ([1, 2, 3], ValueError, r"targets: expected 2 class ids"),
        ([1.5, 2], TypeError, r"targets: class ids must be whole numbers"),
        (np.eye(5)[:2] * 2, ValueError, r"targets: one-hot rows"),
        (np.eye(4)[:2], ValueError, r"targets: one-hot targets must have shape \(2, 5\)"),
        (True, TypeError, r"targets: expected None"),
        (["a", "b"], TypeError, r"targets: expected integers"),
    ],
)
def test_bad_targets(small, targets, error, match):
    with pytest.raises(error, match=match):
        tf_gag.explain(small[0], small[1], "vg", targets)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "nope"}, r"method: unknown method 'nope'; choose one of"),
        ({"method": "gag", "n_sample": 5}, r"options: guided_absolute_grad does not take \['n_sample'\]"),
        ({"method": "gag", "batch_size": 0}, r"batch_size: expected an integer >= 1, got 0"),
        ({"method": "gag", "seed": -1}, r"seed: expected an integer"),
        ({"method": "gag", "p": 2}, r"p: expected a quantile in \[0, 1\]"),
        ({"method": "vargrad", "n_samples": 1}, r"n_samples: a variance needs at least 2 samples"),
        ({"method": "sg", "n_samples": 0}, r"n_samples: expected an integer >= 1"),
        ({"method": "sg", "noise_level": -1}, r"noise_level: expected a finite number >= 0"),
        ({"method": "vg", "variant": "GA"}, r"variant: vanilla_gradient has no ablation variants"),
        ({"method": "sg", "variant": "X"}, r"variant: expected one of"),
        ({"method": "sg", "reverse": (0.6, 0.3)}, r"reverse: top \+ 2 \* swap"),
        ({"method": "ig", "baseline": "black"}, r"baseline: 'black' needs the model's preprocessing"),
        ({"method": "ig", "objective": "loss"}, r"objective: expected one of"),
        ({"method": "blur_ig", "kernel_size": 4}, r"kernel_size: expected an odd integer"),
    ],
)
def test_bad_options(small, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tf_gag.Explainer(small[0], **kwargs)


def test_kernel_too_large_for_image(small):
    with pytest.raises(ValueError, match=r"kernel_size: 41 is too large for 4x4 images"):
        tf_gag.explain(small[0], small[1], "blur_ig", kernel_size=41)


def test_multi_input_model_without_its_other_inputs_or_with_two_images():
    a, b = keras.Input((4, 4, 3), name="a"), keras.Input((2,), name="b")
    out = keras.layers.Dense(2)(keras.layers.Concatenate()([keras.layers.Flatten()(a), b]))
    with pytest.raises(ValueError, match=r"inputs: the model also takes \['b'\] besides the image 'a'"):
        tf_gag.explain(keras.Model([a, b], out), np.zeros((1, 4, 4, 3)))
    c = keras.Input((4, 4, 3), name="c")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(a), keras.layers.Flatten()(c)])
    with pytest.raises(ValueError, match="image_input: the model's inputs are .*; name the image input"):
        tf_gag.explain(keras.Model([a, c], keras.layers.Dense(2)(joined)), np.zeros((1, 4, 4, 3)))


def test_not_a_model():
    with pytest.raises(TypeError, match="model: expected a keras.Model"):
        tf_gag.explain(42, np.zeros((1, 4, 4, 3)))


def test_constant_image_and_constant_map_are_not_nan(small):
    maps = tf_gag.explain(small[0], np.ones((2, 4, 4, 3), np.float32), "gag", n_samples=4)
    assert np.all(np.isfinite(maps))
    zero_model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2, kernel_initializer="zeros")]
    )
    maps = tf_gag.explain(zero_model, small[1], "vg")
    assert np.all(maps == 0)


def test_failed_chunk_keeps_finished_images():
    """A runtime failure in the second chunk keeps the first chunk's attributions."""

    def fragile(x):
        check = tf.debugging.assert_less(tf.reduce_max(x), 100.0, message="value too large")
        with tf.control_dependencies([check]):
            return tf.stack([tf.reduce_sum(x, axis=[1, 2, 3]), -tf.reduce_sum(x, axis=[1, 2, 3])], axis=1)

    images = np.ones((3, 2, 2, 1), np.float32)
    images[2] = 200.0
    with pytest.raises(tf_gag.PartialResultError, match="after 2 of 3 images") as info:
        tf_gag.attributions(fragile, images, "vg", 0, batch_size=2)
    np.testing.assert_array_equal(info.value.completed, [True, True, False])
    np.testing.assert_allclose(info.value.partial[:2], 1.0)


def _two_outputs():
    inputs = keras.Input((4, 4, 3))
    flat = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, [keras.layers.Dense(3)(flat), keras.layers.Dense(2)(flat)])


@pytest.mark.parametrize(
    "model, match",
    [
        (lambda x: tf.reduce_sum(x), r"model: returned shape \(\) \(0 dimensions\)"),
        (lambda x: {"logits": tf.reduce_sum(x, [1, 2]), "aux": x},
         r"model: returned a dict \{'logits': 'shape \(None, 3\)', 'aux': 'shape \(None, 4, 4, 3\)'\} \(several"),
        (lambda x: x, r"model: returned shape \(None, 4, 4, 3\) \(4 dimensions\)"),
        (lambda x: tf.reduce_sum(x, [1, 2])[:1], r"model: returned shape \(1, 3\) for a batch of 2 images"),
        (_two_outputs(), r"model: returned a list of \['shape \(None, 3\)', 'shape \(None, 2\)'\] \(several outputs\)"),
    ],
    ids=["scalar", "dict", "image", "wrong-batch", "two-outputs"],
)
@pytest.mark.parametrize("targets", [None, 1])
def test_outputs_that_are_not_one_classes_tensor_are_named(small, model, match, targets):
    _, x = small
    with pytest.raises(tf_gag.ModelOutputError, match=match):
        tf_gag.explain(model, x, "vg", targets)
    with pytest.raises(tf_gag.ModelOutputError, match=match):
        tf_gag.evaluate(model, x, "vg", targets, metrics=("dauc",))


# ----- numbers every option refuses: NaN, Inf, bools, strings, values a part cannot use


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "sg", "noise_level": float("inf")}, r"noise_level: expected a finite number >= 0, got inf"),
        ({"method": "sg", "noise_level": float("nan")}, r"noise_level: expected a finite number >= 0, got nan"),
        ({"method": "sg", "noise_level": "0.15"}, r"noise_level: expected a finite number >= 0, got '0.15'"),
        ({"method": "sg", "n_samples": True}, r"n_samples: expected an integer >= 1, got True"),
        ({"method": "sg", "noise_range": None}, r"noise_range: expected one of \['image', 'batch'\], got None"),
        ({"method": "vg", "noise_level": float("nan")}, r"noise_level: expected a finite number >= 0, got nan"),
        ({"method": "vg", "noise_range": "all"}, r"noise_range: expected one of \['image', 'batch'\], got 'all'"),
        ({"method": "vg", "noise_samples": False}, r"noise_samples: expected an integer >= 0, got False"),
        ({"method": "vg", "noise_samples": 0.0}, r"noise_samples: expected an integer >= 0, got 0.0"),
        ({"method": "gag", "p": float("nan")}, r"p: expected a quantile in \[0, 1\], got nan"),
        ({"method": "gag", "strict": "yes"}, r"strict: expected True or False, got 'yes'"),
        ({"method": "gag", "guide": 1}, r"guide: expected one of \['scaled', 'raw'\], got 1"),
        ({"method": "ig", "steps": 20.0}, r"steps: expected an integer >= 1, got 20.0"),
        ({"method": "ig", "baseline": [["a"]]},
         r"baseline: expected 'zeros', 'black', 'uniform', 'min_max' or an array"),
        ({"method": "ig", "baseline": np.full((4, 4, 3), np.inf)}, r"baseline: expected .* array of finite numbers"),
        ({"method": "ig", "baseline": np.full((4, 4, 3), 1e39)}, r"baseline: .*\(beyond the range of float32\)"),
        ({"method": "ig", "objective": None}, r"objective: expected one of \['logit', 'neg_log_softmax'\], got None"),
        ({"method": "gig", "fraction": float("nan")}, r"fraction: expected a number in \[0, 1\], got nan"),
        ({"method": "blur_ig", "max_sigma": float("inf")}, r"max_sigma: expected a finite number > 0, got inf"),
        ({"method": "blur_ig", "reference_sign": 1}, r"reference_sign: expected True or False, got 1"),
        ({"method": "rectgrad", "percentile": float("nan")}, r"percentile: expected a number in \[0, 100\], got nan"),
        ({"method": "gradcam", "layer": 3}, r"layer: expected None, a layer name or path, or a layer object, got 3"),
        ({"method": "sg", "variant": ["G"]}, r"variant: expected one of \['\+', '-', 'A', 'G', 'GA'\], got \['G'\]"),
        ({"method": "vg", "reverse": (float("nan"), 0.1)}, r"top: expected a fraction in \[0, 1\], got nan"),
        ({"method": "vg", "seed": 2**31}, r"seed: expected an integer in \[0, 2147483647\], got 2147483648"),
        ({"method": "vg", "batch_size": 8.0}, r"batch_size: expected an integer >= 1, got 8.0"),
    ],
)
def test_unusable_numbers_and_choices_are_refused_by_name(small, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tf_gag.Explainer(small[0], **kwargs)


@pytest.mark.parametrize("targets", [1.5, np.nan, [np.inf, 1.0]], ids=["fraction", "nan", "inf"])
def test_targets_that_are_no_whole_class_ids_are_refused(small, targets):
    with pytest.raises(TypeError, match=r"targets: class ids must be whole numbers"):
        tf_gag.explain(small[0], small[1], "vg", targets)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mean": float("nan")}, r"mean: expected a finite number or one per channel \(pixel units\), got nan"),
        ({"mean": []}, r"mean: expected a finite number or one per channel"),
        ({"std": "127.5"}, r"std: expected a finite non-zero number or one per channel"),
        ({"std": [1.0, 0.0, 1.0]}, r"std: expected non-zero values"),
        ({"std": np.inf}, r"std: expected a finite non-zero number"),
    ],
)
def test_preprocessing_refuses_what_the_mapping_cannot_use(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tf_gag.Preprocessing(**kwargs)


# ----- a multi-input model's other inputs


@pytest.fixture(scope="module")
def multi():
    """A model of an image 'a', a float32 pair 'b' and an int32 count 'c'; inputs that it takes as they are."""
    a, b, c = keras.Input((4, 4, 3), name="a"), keras.Input((2,), name="b"), keras.Input((1,), name="c", dtype="int32")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(a), b, keras.ops.cast(c, "float32")])
    model = keras.Model([a, b, c], keras.layers.Dense(3)(joined))
    images = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
    return model, images, {"b": np.zeros((2, 2)), "c": np.array([[1.0], [2.0]])}  # float64 b and whole-number c: fine


@pytest.mark.parametrize(
    "bad, error, match",
    [
        ({"b": np.array([["a", "b"], ["c", "d"]])}, TypeError, r"inputs: 'b' expected numbers for the model's float32 "
                                                              r"input, got dtype <U1"),
        ({"b": np.array([[object(), 1], [2, 3]], dtype=object)}, TypeError, r"inputs: 'b' expected numbers .* object"),
        ({"b": [[1, 2], [3]]}, TypeError, r"inputs: 'b' expected an array with one row per image, got ragged rows"),
        ({"b": np.array([[0.0, 0.0], [np.nan, 0.0]])}, ValueError, r"inputs: 'b' expected finite numbers, got NaN or "
                                                                   r"Inf in image\(s\) \[1\]"),
        ({"b": np.array([[0.0, 0.0], [0.0, -np.inf]])}, ValueError, r"inputs: 'b' expected finite numbers"),
        ({"b": np.array([[0.0, 1e39], [0.0, 0.0]])}, ValueError, r"inputs: 'b' expected numbers within the range of "
                                                                 r"the model's float32 input, .* image\(s\) \[0\]"),
        ({"c": np.array([[1.5], [2.0]])}, ValueError, r"inputs: 'c' expected whole numbers in \[-2147483648, "
                                                      r"2147483647\] for the model's int32 input, .* image\(s\) \[0\]"),
        ({"c": np.array([[1], [2**40]])}, ValueError, r"inputs: 'c' expected whole numbers .* image\(s\) \[1\]"),
    ],
    ids=["strings", "objects", "ragged", "nan", "inf", "beyond-float32", "fraction-for-int", "beyond-int32"],
)
@pytest.mark.parametrize("entry", ["explain", "attributions", "evaluate"])
def test_other_inputs_that_the_model_cannot_take_are_refused_by_name(multi, bad, error, match, entry):
    model, images, good = multi
    call = {
        "explain": lambda inputs: tf_gag.explain(model, images, "vg", inputs=inputs),
        "attributions": lambda inputs: tf_gag.attributions(model, images, "vg", 0, inputs=inputs),
        "evaluate": lambda inputs: tf_gag.evaluate(model, images, np.ones((2, 4, 4)), 0, metrics="dauc",
                                                   inputs=inputs),
    }[entry]
    assert np.all(np.isfinite(tf_gag.explain(model, images, "vg", inputs=good)))
    with pytest.raises(error, match=match):
        call({**good, **bad})


# ----- a model whose outputs or gradients are not finite


def _nan_above_50(x):
    """Logits (sum, -sum), with NaN logits and gradients for an image whose largest value exceeds 50."""
    total = tf.reduce_sum(x, axis=[1, 2, 3]) * tf.where(tf.reduce_max(x, axis=[1, 2, 3]) > 50.0, np.nan, 1.0)
    return tf.stack([total, -total], axis=1)


NAN_ON_THIRD = np.concatenate([np.ones((2, 2, 2, 1), np.float32), np.full((1, 2, 2, 1), 100.0, np.float32)])


def test_non_finite_logits_are_named_before_any_map_is_computed():
    with pytest.raises(tf_gag.ModelOutputError, match=r"model: expected finite outputs \(logits or probabilities\), "
                                                      r"got NaN or Inf for image\(s\) \[2\]"):
        tf_gag.explain(_nan_above_50, NAN_ON_THIRD, "vg")


def test_non_finite_attributions_name_the_model_outputs_when_they_are_the_cause():
    """Explicit targets probe two images; the third's NaN logits are found once its attributions are NaN."""
    with pytest.raises(tf_gag.ModelOutputError, match=r"model: expected finite outputs .* for image\(s\) \[2\]"):
        tf_gag.explain(_nan_above_50, NAN_ON_THIRD, "vg", 0)


def test_non_finite_gradients_of_finite_outputs_are_named():
    def square_roots(x):  # d sqrt|x| / dx is infinite at 0
        return tf.stack([tf.reduce_sum(tf.sqrt(tf.abs(x)), axis=[1, 2, 3]), tf.reduce_sum(x, axis=[1, 2, 3])], axis=1)

    images = np.ones((2, 2, 2, 1), np.float32)
    images[1, 0, 0, 0] = 0.0
    with pytest.raises(ValueError, match=r"model: expected finite gradients, got NaN or Inf attributions for "
                                         r"image\(s\) \[1\]; its outputs on the images are finite"):
        tf_gag.explain(square_roots, images, "vg", 0)
