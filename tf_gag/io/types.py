"""The types of what comes in and goes out, for the public API's type hints.

Aliases only (no TensorFlow import): a model is anything `tf_gag.load_model`
or `tf_gag.ModelAdapter` takes; images are arrays, tensors or a
``tf.data.Dataset``; targets are None, an int, ints or one-hot rows.
"""
import os
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

#: A Keras model, a loaded SavedModel, a callable returning logits, a `tf_gag.ModelAdapter`, or a path or zoo name.
ModelLike = Any
#: (N, H, W, C) or (H, W, C) numbers in the model's input space: a numpy array, a tf.Tensor or nested lists;
#: where a Dataset is accepted, a ``tf.data.Dataset`` of images[, labels[, masks]].
ImagesLike = Any
#: None (each image's top class), one class for all, one class per image, or (N, classes) one-hot rows.
TargetsLike = Union[None, int, Sequence[int], np.ndarray]
#: A registered method's name or alias, or a `tf_gag.Method`.
MethodLike = Any
#: A path on disk.
PathLike = Union[str, "os.PathLike[str]"]
#: ``on_progress(k)``: called with the forward+backward passes (or images) just finished.
Progress = Optional[Callable[[int], None]]
#: A multi-input model's other inputs: {input name: (N, ...) array}, or the array when there is one.
OtherInputs = Optional[Union[Mapping[str, Any], np.ndarray]]

#: The types a model can compute in (``precision=``), float32 first (the default); see `tf_gag.model.precision`.
PRECISIONS = ("float32", "bfloat16", "float16")
#: One of `PRECISIONS`, or None for the model's own (float32 unless it is already a reduced copy).
PrecisionLike = Optional[str]
