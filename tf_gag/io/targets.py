"""Resolve the user's ``targets`` argument into one class id per image."""
import numpy as np


def resolve_targets(targets, num_images, num_classes, predicted=None):
    """Per-image class ids (int32, shape (N,)) from ``targets``.

    Args:
      targets: None (each image's top class, ``predicted``), an int (the same
        class for all), a sequence of N ints, or an (N, classes) one-hot array.
      num_images: N.
      num_classes: the model's number of outputs, for range checks.
      predicted: callable returning the (N,) top classes, used when targets is None.
    """
    if targets is None:
        return np.asarray(predicted(), dtype=np.int32)
    if isinstance(targets, (bool, np.bool_)):
        raise TypeError(f"targets: expected None, an int, N ints or one-hot rows, got {targets!r}")
    arr = np.asarray(targets)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"targets: expected integers or a one-hot array, got dtype {arr.dtype}")
    if arr.ndim == 0:  # one class for every image, checked as N ids
        arr = np.full((num_images,), arr)
    if arr.ndim == 2:
        if arr.shape != (num_images, num_classes):
            raise ValueError(
                f"targets: one-hot targets must have shape ({num_images}, {num_classes}), got {arr.shape}"
            )
        if not (np.all((arr == 0) | (arr == 1)) and np.all(arr.sum(axis=1) == 1)):
            raise ValueError("targets: one-hot rows must hold exactly one 1 and zeros elsewhere")
        arr = arr.argmax(axis=1)
    elif arr.ndim == 1:
        if arr.shape[0] != num_images:
            raise ValueError(f"targets: expected {num_images} class ids (one per image), got {arr.shape[0]}")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise TypeError(f"targets: class ids must be whole numbers, got {arr.tolist()}")
    else:
        raise ValueError(f"targets: expected a scalar, (N,) or (N, classes) array, got shape {arr.shape}")
    bad = (arr < 0) | (arr >= num_classes)
    if np.any(bad):
        raise ValueError(
            f"targets: class ids must lie in [0, {num_classes - 1}] for this model, got {arr[bad].tolist()}"
        )
    return arr.astype(np.int32)
