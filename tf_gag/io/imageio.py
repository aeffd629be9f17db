"""Image files and encoded bytes -> pixel batches the models take.

One rule everywhere (the CLI, folders, `tf.data` pipelines, the serving
export): decode JPEG/PNG/BMP/GIF to RGB (or the model's channel count),
centre-crop to the model's aspect ratio, resize bilinearly to its (H, W).
Pixels stay 0-255 float32; the model's `Preprocessing` maps them into its
input space. TF ops only, so `fit` and `decode` also run inside graphs.
"""
import os
import re

import numpy as np
import tensorflow as tf

from .checks import check_int


def fit(image, height, width, method="bilinear"):
    """Centre-crop an (h, w, c) image to the aspect ratio of (height, width), then resize.

    ``method`` is `tf.image.resize`'s: "bilinear" for photos, "nearest" for
    label maps (no blended class ids). Every image read goes through here, so
    the size is checked here: whole numbers of pixels, at least 1.
    """
    height, width = check_int("height", height, 1), check_int("width", width, 1)
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    ratio = height / width
    crop_h = tf.cast(tf.minimum(h, w * ratio), tf.int32)
    crop_w = tf.cast(tf.minimum(w, h / ratio), tf.int32)
    top, left = (shape[0] - crop_h) // 2, (shape[1] - crop_w) // 2
    cropped = image[top : top + crop_h, left : left + crop_w]
    return tf.image.resize(cropped, (height, width), method=method)


def decode(encoded, height, width, channels=3):
    """Encoded image bytes (a scalar string tensor) -> float32 (height, width, channels) pixels 0-255."""
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    image = fit(image, height, width)
    image.set_shape((height, width, channels))
    return image


def list_images(paths):
    """The files named by ``paths``: files, and every non-hidden file of a folder (not recursed), sorted.

    Nothing is filtered by name, so a folder's non-image files are reported
    by `read_images` rather than silently ignored.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if not n.startswith(".")
                           and os.path.isfile(os.path.join(path, n)))
            found.extend(os.path.join(path, n) for n in names)
        elif os.path.exists(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"images: {path} does not exist")
    return found


def plain_reason(error):
    """TensorFlow's decode error without its graph-node wrapping: 'Unknown image file format. ...'."""
    text = str(getattr(error, "message", error)).splitlines()[0]
    text = re.sub(r"\{\{[^}]*\}\}", "", text)
    return re.sub(r"\s*\[Op:.*$", "", text).strip()


def read_images(paths, height, width, channels=3, *, on_error="skip"):
    """Read image files into float32 (N, height, width, channels) pixels 0-255.

    Args:
      paths: files and folders (a folder's image files are read in name order).
      on_error: ``"skip"`` reports each unreadable or non-image file by name
        in the returned ``skipped`` list and goes on; ``"fail"`` raises a
        ValueError naming the first one.
    Returns (pixels, names, skipped): the batch, the file paths read, and
    [(path, reason)] for the files skipped.
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error: expected 'skip' or 'fail', got {on_error!r}")
    images, names, skipped = [], [], []
    for path in list_images(paths):
        try:
            with open(path, "rb") as f:
                data = f.read()
            images.append(decode(tf.constant(data), height, width, channels).numpy())
            names.append(path)
        except (tf.errors.InvalidArgumentError, OSError) as error:
            reason = plain_reason(error)
            if on_error == "fail":
                raise ValueError(f"images: cannot read {path} as an image ({reason})") from None
            skipped.append((path, reason))
    if not images:
        raise ValueError(f"images: no readable image among {len(skipped)} file(s): {[p for p, _ in skipped][:5]}")
    return np.stack(images).astype(np.float32), names, skipped
