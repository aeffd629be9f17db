"""`export_saved_model`: a TF Serving SavedModel that returns saliency beside predictions.

Signatures (N images per request):

* ``serving_default``  ``images`` float32 (N, H, W, C) in the model's input space
  -> ``probabilities`` (N, K), ``classes`` int32 (N,) top class, ``scores`` (N,)
  its probability, and ``class_names`` (N,) strings when the names are known;
* ``predict_bytes``    ``images`` string (N,): encoded JPEG/PNG/... (what a REST
  client sends as ``{"b64": ...}``) -> the same outputs;
* ``explain``          ``images`` float32 -> the same plus ``saliency`` (N, H, W) in
  [0, 1], for each image's top class;
* ``explain_bytes``    ``images`` string -> the same as ``explain``;
* ``explain_class``    ``images`` float32 and ``targets`` int32 (N,) -> the same,
  for the classes asked for.

A multi-input Keras model's other inputs (metadata, ...) are one more argument
of every signature each, named as the model names them, one row per image.

Encoded images are decoded, centre-cropped to the model's aspect ratio and
resized bilinearly (`tf_gag.imageio.decode`), then mapped by the model's
preprocessing, all in the graph. Noise, paths and baselines are drawn in the
graph with the stateless seed given at export, so a request's maps depend only
on its images, computed chunk for chunk as `tf_gag.explain` computes them. The
SavedModel needs TensorFlow alone (not tf_gag) to load and serve.
"""
import os
import shutil
import tempfile
from typing import Any, Optional, Sequence

import tensorflow as tf

from .. import ops
from ..api import Explainer
from ..io import imageio
from ..io.types import MethodLike, ModelLike, PathLike, PrecisionLike


def _check_exportable(explainer):
    if explainer.reverse is not None:
        raise ValueError("reverse: reversed maps are an evaluation device; export the method without reverse=")
    if not explainer.runs_in_graph:
        raise ValueError(
            f"method: {explainer.name} chooses each step from the previous gradients on the host and "
            "cannot run inside a serving graph; export another method"
        )
    if not explainer.parts.post.in_graph:
        raise ValueError(f"method: {explainer.name}'s post-fold stage ({explainer.parts.post.name}) runs on the host "
                         "and cannot run inside a serving graph; export another method")


class _ServingModule(tf.Module):
    """The exported functions; `track_variables` puts every variable they read in the checkpoint."""

    def __init__(self, explainer, class_names):
        super().__init__()
        adapter = explainer.adapter
        self.model = adapter.model
        shape = tuple(adapter.input_shape)
        if len(shape) != 3 or None in shape:
            raise ValueError(f"model: export needs a fixed (H, W, C) input size; the model reports {shape}")
        height, width, channels = shape
        raw = explainer.graph_attributions(shape)
        preprocessing = adapter.preprocessing
        names = tf.constant(list(class_names)) if class_names else None

        def predictions(images, others=()):
            probabilities = adapter.probabilities(adapter.forward(images, context=others))
            out = {
                "probabilities": probabilities,
                "classes": tf.argmax(probabilities, axis=1, output_type=tf.int32),
                "scores": tf.reduce_max(probabilities, axis=1),
            }
            if names is not None:
                out["class_names"] = tf.gather(names, out["classes"])
            return out

        def with_saliency(images, others=(), targets=None):
            out = predictions(images, others)
            targets = out["classes"] if targets is None else targets
            out["saliency"] = ops.normalize_maps(explainer.parts.post(raw(images, targets, others), images))
            return out

        def decoded(encoded):
            pixels = tf.map_fn(
                lambda e: imageio.decode(e, height, width, channels), encoded, fn_output_signature=tf.float32
            )
            return pixels if preprocessing is None else preprocessing.to_model(pixels)

        floats = tf.TensorSpec((None, height, width, channels), tf.float32, name="images")
        strings = tf.TensorSpec((None,), tf.string, name="images")
        # a multi-input model's other inputs: one more signature argument each, named as the model names them
        others = [tf.TensorSpec(spec.shape, spec.dtype, name=o.name)
                  for o, spec in zip(adapter.other_inputs, adapter.context_specs())]
        self.predict = tf.function(lambda images, *rest: predictions(images, rest), input_signature=[floats, *others])
        self.predict_bytes = tf.function(lambda images, *rest: predictions(decoded(images), rest),
                                         input_signature=[strings, *others])
        self.explain = tf.function(lambda images, *rest: with_saliency(images, rest), input_signature=[floats, *others])
        self.explain_bytes = tf.function(lambda images, *rest: with_saliency(decoded(images), rest),
                                         input_signature=[strings, *others])
        self.explain_class = tf.function(
            lambda images, targets, *rest: with_saliency(images, rest, targets),
            input_signature=[floats, tf.TensorSpec((None,), tf.int32, name="targets"), *others],
        )

    def signatures(self):
        return {
            "serving_default": self.predict,
            "predict_bytes": self.predict_bytes,
            "explain": self.explain,
            "explain_bytes": self.explain_bytes,
            "explain_class": self.explain_class,
        }

    def track_variables(self):
        """Track the tf.Variables the traced functions read.

        Keras 3 wraps its variables, and tf.Module tracking does not reach the
        tf.Variables the graphs capture; TF Serving's (TF1) loader then finds
        them missing from the checkpoint. Keras' own ExportArchive lists them
        the same way.
        """
        found = {}
        for function in self.signatures().values():
            for variable in function.get_concrete_function().variables:
                found.setdefault(id(variable), variable)
        self.captured_variables = list(found.values())


def export_saved_model(model: ModelLike, path: PathLike, method: MethodLike = "guided_absolute_grad", *,
                       overwrite: bool = False, class_names: Optional[Sequence[str]] = None, seed: int = 0,
                       variant: Optional[str] = None, precision: PrecisionLike = None, **method_options: Any) -> str:
    """Write a SavedModel for TF Serving with prediction and saliency signatures (see the module docstring).

    Args:
      model: anything `tf_gag.explain` takes (Keras model, imported model,
        path or zoo name).
      path: the SavedModel folder to write, e.g. ``serving/1`` (TF Serving's
        ``model/<version>`` layout): missing parent folders are created. An
        existing one is refused unless ``overwrite=True``; the new one is
        written beside it and swapped in only when complete, so a failed
        export leaves the old one intact.
      method: the saliency method of the ``explain*`` signatures, with its
        ``variant`` and options (`tf_gag.list_methods()`); Guided IG (host-side
        steps) and reversed maps cannot be exported.
      class_names: output names for ``class_names`` (default: the model's, if known).
      seed: the stateless seed of the in-graph noise.
      precision: the type the model computes in, for predictions and saliency
        (``"float32"``, ``"bfloat16"``, ``"float16"``; see `tf_gag.Explainer`):
        the exported graph holds the model in that type, its inputs and outputs
        stay float32.
      method_options may include ``batch_size`` (default 32): the graph runs
      a request in the groups and chunks `tf_gag.explain` runs with it, so its
      maps are bit-identical to explain's with the same seed and batch_size.
    Returns ``path``.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"path: {path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    explainer = Explainer(model, method, seed=seed, variant=variant, precision=precision, **method_options)
    _check_exportable(explainer)
    names = class_names if class_names is not None else explainer.adapter.classes
    module = _ServingModule(explainer, names)
    module.track_variables()
    parent = os.path.dirname(path)
    try:  # only now: a refused model, method or option leaves no folder behind
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        raise type(error)(f"path: cannot create the folder {parent} ({error.strerror})") from None
    staging = tempfile.mkdtemp(prefix=".tf_gag-export-", dir=parent)
    try:
        # The signatures compute saliency inside; nobody differentiates them, so gradients are not saved (a
        # backward rule's graph-local gradient overrides need the traced op, which SavedModel tracing lacks).
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        tf.saved_model.save(module, staging, signatures=module.signatures(), options=options)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path
