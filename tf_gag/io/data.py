"""`tf.data` input: a user's Dataset as checked numpy batches, streamed with bounded memory.

`explain` and `evaluate` take a `tf.data.Dataset` wherever they take an image
array. Its elements are one of

* ``image``
* ``(image, label)`` or ``(image, label, mask)``
* a dict with ``"image"`` and optionally ``"label"`` and ``"mask"`` (other keys,
  such as a file name, are ignored — except a multi-input model's other
  inputs, which are read by their input names),

with images (H, W, C) in the model's input space, labels class ids (scalar)
or one-hot rows, masks (H, W) or (H, W, 1). A Dataset that is already batched
(images of rank 4) is re-batched to ``batch_size``. Only ``batch_size``
images (plus one prefetched batch) are in memory at a time.
"""
import tensorflow as tf

_ROLES = ("image", "label", "mask")


def is_dataset(value):
    return isinstance(value, tf.data.Dataset)


def _expected():
    return "elements image, (image, label), (image, label, mask) or dicts with 'image'[, 'label', 'mask']"


def _roles(spec, extra):
    """(roles present, element -> {role: tensor}, the image's TensorSpec) for a Dataset's element spec.

    ``extra``: keys a dict element must also have (a multi-input model's other inputs).
    """
    if extra and not (isinstance(spec, dict) and all(name in spec for name in extra)):
        keys = sorted(spec) if isinstance(spec, dict) else "no keys (not dict elements)"
        raise ValueError(f"dataset: the model also takes {list(extra)}; expected dict elements with 'image' and "
                         f"those keys, got {keys}")
    if isinstance(spec, dict):
        if "image" not in spec:
            raise ValueError(f"dataset: expected {_expected()}; the dict elements have keys {sorted(spec)}")
        present = [role for role in _ROLES if role in spec] + list(extra)
        return present, lambda element: {role: element[role] for role in present}, spec["image"]
    if isinstance(spec, tuple):
        if not 1 <= len(spec) <= 3:
            raise ValueError(f"dataset: expected {_expected()}; the tuple elements have {len(spec)} parts")
        present = list(_ROLES[: len(spec)])
        return present, lambda *element: dict(zip(present, element)), spec[0]
    if isinstance(spec, tf.TensorSpec):
        return ["image"], lambda element: {"image": element}, spec
    raise TypeError(f"dataset: expected {_expected()}, got elements {spec}")


def batches(dataset, batch_size, extra=()):
    """Yield {role: numpy array} batches of at most ``batch_size`` images from ``dataset``.

    Roles are "image" always, "label" and "mask" when the elements have them,
    and the ``extra`` keys (a multi-input model's other inputs, required).
    A batch that cannot be read raises ValueError naming where the stream
    stopped; the batches yielded before it stay valid.
    """
    present, to_dict, image_spec = _roles(dataset.element_spec, tuple(extra))
    rank = image_spec.shape.rank
    if rank == 4:
        dataset = dataset.unbatch()
    elif rank != 3:
        raise ValueError(
            f"dataset: expected (H, W, C) images or (N, H, W, C) batches, got image shape {image_spec.shape}"
        )
    stream = iter(dataset.map(to_dict).batch(batch_size).prefetch(1))
    read = 0
    while True:
        try:
            batch = next(stream)
        except StopIteration:
            return
        except tf.errors.OpError as error:
            first = error.message.strip().splitlines()[0]
            hint = "; images of different sizes cannot be batched: resize them first" if "shape" in first else ""
            raise ValueError(f"dataset: reading the images after the first {read} failed: {first}{hint}") from None
        batch = {role: batch[role].numpy() for role in present}
        read += len(batch["image"])
        yield batch
