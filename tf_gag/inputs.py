"""Check and normalise the user's ``images`` argument before any heavy work."""
import numpy as np
import tensorflow as tf


def as_image_batch(images, expected_shape=None):
    """Return ``images`` as a float32 (N, H, W, C) numpy array, or raise a clear error.

    Accepts a numpy array, a tf.Tensor or anything array-like, of shape
    (N, H, W, C) or a single (H, W, C) image. Integer inputs are converted to
    float32. ``expected_shape`` is the model's (H, W, C) with None for free
    dimensions.
    """
    if isinstance(images, (str, bytes)) or images is None:
        raise TypeError(f"images: expected an (N, H, W, C) array or tensor, got {type(images).__name__}")
    if isinstance(images, tf.Tensor):
        images = images.numpy()
    array = np.asarray(images)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"images: expected a numeric (integer or float) array, got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[np.newaxis]
    if array.ndim != 4:
        raise ValueError(
            f"images: expected shape (N, H, W, C) or a single (H, W, C) image, got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError("images: the batch is empty (N = 0)")
    if array.shape[1] < 1 or array.shape[2] < 1 or array.shape[3] < 1:
        raise ValueError(f"images: every dimension must be at least 1, got shape {array.shape}")
    if expected_shape is not None:
        for axis, (want, got) in enumerate(zip(expected_shape, array.shape[1:])):
            if want is not None and want != got:
                raise ValueError(
                    f"images: the model expects (H, W, C) = {tuple(expected_shape)}, got "
                    f"{array.shape[1:]} ({('height', 'width', 'channels')[axis]} differs)"
                )
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.unique(np.nonzero(~finite)[0]).tolist()
        raise ValueError(f"images: NaN or Inf values in image(s) {bad}")
    return array
