"""The benchmark's images, batch by batch: an ImageNet-S folder, or a folder of images with masks.

``DATA`` is one of:

* an ImageNet-S subset folder (``validation/<wnid>/*.JPEG`` beside
  ``validation-segmentation/<wnid>/*.png``; see `tf_gag.load_imagenet_s`):
  every photo has its object mask and its ImageNet-1k label;
* a folder of images: ``DATA/images/`` (or the image files in ``DATA``
  itself), optionally ``DATA/masks/<stem>.png`` (the object's pixels nonzero,
  the photo's size; images without one are left out of the mask metrics) and
  ``DATA/labels.json`` (``{"<stem>": class id}``; images without a label are
  explained for the model's top class).

Images are fitted to the model's input size as everywhere in tf_gag
(`tf_gag.imageio`: centre crop to its aspect ratio, bilinear resize; masks
nearest) and mapped by its preprocessing.
"""
import json
import math
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from ..io import imageio
from ..io.imagenet_s import SPLITS, load_imagenet_s

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
LABELS_FILE = "labels.json"


class Batch(NamedTuple):
    """Consecutive images of the data: names, (n, H, W, C) model inputs, labels (-1: none), masks, which have one."""

    names: list
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    masked: np.ndarray


def open_data(directory, model):
    """The source of ``directory``'s images for ``model`` (a `ModelAdapter`): ImageNet-S or a folder."""
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise FileNotFoundError(f"data: {directory} does not exist")
    if not os.path.isdir(directory):
        raise NotADirectoryError(f"data: {directory} is not a folder")
    height, width, channels = model.input_shape
    if height is None or width is None:
        raise ValueError("model: it does not state its input size, so the images cannot be fitted to it")
    if os.path.isdir(os.path.join(directory, SPLITS["validation"][0])):
        return ImageNetS(directory, model)
    return Folder(directory, model)


def batch_count(count, batch_size):
    """How many batches of ``batch_size`` hold ``count`` images."""
    return math.ceil(count / batch_size)


class ImageNetS:
    """ImageNet-S's validation split through `tf_gag.load_imagenet_s` (TFDS' ``data_dir``: $TFDS_DATA_DIR)."""

    has_masks = True

    def __init__(self, directory, model):
        height, width, _ = model.input_shape
        if height != width:
            raise ValueError(f"model: ImageNet-S photos are fitted to a square, but the model takes {height}x{width}")
        self.dataset = load_imagenet_s(directory, image_size=height, preprocessing=model.preprocessing)
        self.count = int(self.dataset.cardinality())

    def batches(self, batch_size, wanted):
        """Yield (index, `Batch`) for the batch indices in ``wanted`` (sorted), reading up to the last one."""
        wanted = set(wanted)
        for index, batch in enumerate(self.dataset.batch(batch_size).as_numpy_iterator()):
            if index in wanted:
                wanted.discard(index)
                yield index, Batch([n.decode() for n in batch["file_name"]], batch["image"],
                                   batch["label"].astype(np.int32), batch["mask"], np.ones(len(batch["label"]), bool))
            if not wanted:
                return


class Folder:
    """A folder of images with optional masks and labels (see the module docstring); reads only the batches asked."""

    def __init__(self, directory, model):
        self.model = model
        images = os.path.join(directory, "images")
        photos = images if os.path.isdir(images) else directory
        files = [p for p in imageio.list_images(photos) if os.path.basename(p) != LABELS_FILE]
        for path in files:
            if not path.lower().endswith(IMAGE_EXTENSIONS):
                raise ValueError(f"data: {path} is not an image file (expected {', '.join(IMAGE_EXTENSIONS)}); "
                                 "move it out of the folder")
        if not files:
            raise ValueError(f"data: {photos} holds no images")
        self.files = files
        self.stems = _stems(files, "images")
        self.count = len(files)
        masks = os.path.join(directory, "masks")
        self.masks = _by_stem(imageio.list_images(masks), set(self.stems), "masks") if os.path.isdir(masks) else {}
        self.has_masks = bool(self.masks)
        self.labels = _labels(os.path.join(directory, LABELS_FILE), set(self.stems))

    def batches(self, batch_size, wanted):
        """Yield (index, `Batch`) for each batch index in ``wanted``."""
        height, width, channels = self.model.input_shape
        for index in wanted:
            rows = range(index * batch_size, min((index + 1) * batch_size, self.count))
            images, masks = [], []
            for row in rows:
                photo = _decode(self.files[row], channels or 3)
                images.append(imageio.fit(photo, height, width).numpy())
                mask_path = self.masks.get(self.stems[row])
                masks.append(np.zeros((height, width), np.float32) if mask_path is None
                             else _mask(mask_path, photo.shape[:2], self.files[row], height, width))
            pixels = np.stack(images).astype(np.float32)
            if self.model.preprocessing is not None:
                pixels = self.model.preprocessing.to_model(pixels).numpy()
            names = [self.stems[row] for row in rows]
            yield index, Batch(names, pixels, np.array([self.labels.get(n, -1) for n in names], np.int32),
                               np.stack(masks), np.array([n in self.masks for n in names]))


def _stems(paths, folder):
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise ValueError(f"data: {folder}/ holds several files named {repeated[0]!r} (with different extensions); "
                         "file names without their extension must be unique")
    return stems


def _by_stem(paths, stems, folder):
    """{stem: path} of the mask files, each of which must belong to an image."""
    found = dict(zip(_stems(paths, folder), paths))
    strays = sorted(set(found) - stems)
    if strays:
        raise ValueError(f"data: {found[strays[0]]} has no image named {strays[0]!r} in the images")
    return found


def _labels(path, stems):
    """{stem: class id} from labels.json ({} without the file)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            labels = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"data: cannot read {path} as JSON ({error})") from None
    if not isinstance(labels, dict):
        raise ValueError(f"data: {path} should hold an object {{\"<image stem>\": class id}}, got "
                         f"{type(labels).__name__}")
    for stem, label in labels.items():
        if stem not in stems:
            raise ValueError(f"data: {path} labels {stem!r}, which is not an image of the folder")
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise ValueError(f"data: {path} gives {stem!r} the label {label!r}; expected a class id >= 0")
    return labels


def _decode(path, channels):
    """A file's (h, w, channels) uint8 pixels (channels 0: as stored), or a ValueError naming it."""
    try:
        with open(path, "rb") as f:
            return tf.io.decode_image(f.read(), channels=channels, expand_animations=False)
    except (tf.errors.InvalidArgumentError, OSError) as error:
        raise ValueError(f"data: cannot read {path} as an image ({imageio.plain_reason(error)})") from None


def _mask(path, size, photo, height, width):
    """The mask file as (height, width) float32 0/1 (nonzero in any channel = object), fitted like its photo."""
    decoded = _decode(path, 0)
    if tuple(decoded.shape[:2]) != tuple(size):
        raise ValueError(f"data: the mask {path} is {decoded.shape[1]}x{decoded.shape[0]} pixels but its image "
                         f"{photo} is {size[1]}x{size[0]}")
    mask = tf.cast(tf.reduce_any(decoded > 0, axis=-1, keepdims=True), tf.float32)
    return (imageio.fit(mask, height, width, "nearest").numpy()[..., 0] > 0.5).astype(np.float32)
