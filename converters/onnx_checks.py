"""The checks an ONNX file must pass before conversion: a valid model with one NCHW image input.

They need ``onnx`` alone (no onnx2tf, no TensorFlow state), so `tf_gag.load_model` runs them in its own
process and refuses a bad file at once, and the converter runs them again in its child process.
"""
import onnx


class ConversionError(Exception):
    """A problem with the user's ONNX file, reported as one line."""


def load_checked(path):
    """The ONNX model in ``path``, after ``onnx.checker``; a `ConversionError` if it is not a valid model."""
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, OSError ...
        raise ConversionError(f"not a valid ONNX model (truncated or another format?): {exc}") from None
    return model


def image_input(model):
    """(name, (C, H, W)) of the model's single NCHW image input."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ConversionError(
            f"the model has {len(inputs)} inputs ({[i.name for i in inputs]}); tf_gag explains classifiers of one "
            "image input"
        )
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or None in dims[1:]:
        raise ConversionError(
            f"input {inputs[0].name!r} has shape {dims}; expected a 4-D NCHW image batch with fixed C, H, W"
        )
    _, c, h, w = dims
    if c not in (1, 3, 4) and w in (1, 3, 4):
        raise ConversionError(
            f"input {inputs[0].name!r} has shape {dims}, which looks channels-last (NHWC); export the model "
            "with NCHW inputs as PyTorch uses (tf_gag converts them to NHWC)"
        )
    return inputs[0].name, (c, h, w)
