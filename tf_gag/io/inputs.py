"""Check and normalise the user's arguments (images, maps, masks, counts) before any heavy work."""
import numpy as np
import tensorflow as tf

from .checks import check_int, rows_where


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
    bad = rows_where(~np.isfinite(array))
    if bad:
        raise ValueError(f"images: NaN or Inf values in image(s) {bad}")
    return array


def check_batch_size(batch_size, name="batch_size"):
    """``batch_size`` as an int >= 1 (``name``: how the caller calls it, e.g. the CLI's ``--batch-size``)."""
    return check_int(name, batch_size, 1)


def check_seed(seed, name="seed"):
    """``seed`` as an int in [0, 2**31 - 1], the range of TensorFlow's int32 stateless seeds."""
    return check_int(name, seed, 0, 2**31 - 1)


def _as_per_image_array(values, name, num_images, height_width):
    """``values`` as a float (N, H, W) array matching the images, or a clear error."""
    if isinstance(values, tf.Tensor):
        values = values.numpy()
    array = np.asarray(values)
    if array.dtype == object or not (
        array.dtype == bool or np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"{name}: expected a numeric (N, H, W) array, got dtype {array.dtype}")
    if array.ndim == 2 and num_images == 1:
        array = array[np.newaxis]
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    expected = (num_images,) + tuple(height_width)
    if array.shape != expected:
        raise ValueError(f"{name}: expected shape {expected} (one (H, W) map per image), got {array.shape}")
    array = array.astype(np.float32)
    bad = rows_where(~np.isfinite(array))
    if bad:
        raise ValueError(f"{name}: NaN or Inf values in image(s) {bad}")
    return array


def as_map_batch(maps, num_images, height_width):
    """Saliency maps as float32 (N, H, W), checked against the images.

    Maps must be finite and non-negative (saliency magnitudes); an
    (N, H, W, 1) batch or a single (H, W) map for one image is accepted.
    """
    maps = _as_per_image_array(maps, "maps", num_images, height_width)
    negative = rows_where(maps < 0)
    if negative:
        raise ValueError(
            f"maps: expected non-negative saliency, got negative values in image(s) {negative}; "
            "reduce signed attributions first (e.g. their absolute value)"
        )
    return maps


def as_mask_batch(masks, num_images, height_width, *, binary):
    """Ground-truth masks as float32 (N, H, W) in [0, 1]; only 0 and 1 when ``binary``."""
    masks = _as_per_image_array(masks, "masks", num_images, height_width)
    if binary:
        bad = rows_where((masks != 0) & (masks != 1))
        if bad:
            raise ValueError(f"masks: expected binary masks (0 or 1 only), got other values in image(s) {bad}")
    else:
        bad = rows_where((masks < 0) | (masks > 1))
        if bad:
            raise ValueError(f"masks: expected values in [0, 1], got values outside in image(s) {bad}")
    return masks
