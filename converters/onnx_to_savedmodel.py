"""ONNX -> TensorFlow SavedModel for tf_gag, in a child process.

    python -m converters.onnx_to_savedmodel SPEC.json

SPEC.json names the ONNX file, the output folder and the options (``feature``,
``output``, ``metadata``). The folder receives ``saved_model/`` and
``metadata.json``. On a user error the process prints one line starting
with ``ERROR_PREFIX`` to stderr and exits with status 3.

Why a child process: ``import onnx2tf`` switches TensorFlow to legacy Keras,
enables op determinism, seeds the RNGs and hides GPUs. tf_gag never imports
this module; the SavedModel it writes loads with TensorFlow alone.

What is saved (all NHWC float32, free batch):
  ``features(x)``       the image -> the Grad-CAM feature tensor (N, h, w, c);
  ``head(f)``           that feature tensor -> logits;
  ``logits(x)``         ``head(features(x))``, also the ``serving_default`` signature;
and beside it ``logits.pb``: ``logits`` frozen into one flat GraphDef (variables
as constants, nested calls inlined), with the feature map's tensor named in
``metadata.json``: tf_gag imports it into its own graph for every forward pass
(`tf_gag.model.flat`), so a backward rule overrides its ReLU gradients
(`tf_gag.methods.rules`) and Grad-CAM reads the feature map in the same pass.
The graph is split at the feature tensor (one function returning both would
give no gradient of logits with respect to the features). Every part is
checked against onnxruntime on a batch of two before anything is written.
"""
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnx.utils
import onnxruntime
import onnxsim
import tensorflow as tf

from converters import FORMAT

ERROR_PREFIX = "tf_gag-conversion-error: "
# Relative tolerance of the converted logits against onnxruntime (float32 reorderings).
TOLERANCE = 1e-3


class ConversionError(Exception):
    """A problem with the user's ONNX file, reported as one line."""


def _load(path):
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, OSError ...
        raise ConversionError(f"not a valid ONNX model (truncated or another format?): {exc}") from None
    return model


def _image_input(model):
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


def _simplify(model, input_name, chw):
    """Fold shape arithmetic (e.g. TF-style 'SAME' padding) with a fixed batch of 1, then free the batch.

    Folding at batch 1 also turns what PyTorch computed from ``x.size(0)``
    into constants; `_free_batch` makes those follow the batch again.
    """
    try:
        simplified, ok = onnxsim.simplify(model, overwrite_input_shapes={input_name: [1, *chw]})
    except Exception as exc:
        raise ConversionError(f"onnxsim could not simplify the model: {exc}") from None
    if not ok:
        raise ConversionError("onnxsim could not validate the simplified model")
    at_batch_1 = _static_shapes(onnx.shape_inference.infer_shapes(simplified))
    for value in list(simplified.graph.input) + list(simplified.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].dim_param = "batch"
    del simplified.graph.value_info[:]
    _constants_as_initializers(simplified)
    _free_batch(simplified, input_name, at_batch_1)
    return onnx.shape_inference.infer_shapes(simplified)


def _constants_as_initializers(model):
    """Move ``Constant`` nodes (onnxsim keeps some, e.g. attention's 1/sqrt(d)) into initializers.

    onnx2tf turns a Constant node's scalar into a Python number that then
    ends up where a Keras tensor must be (measured on a small ViT: "Output
    tensors of a Functional model must be the output of a TensorFlow
    `Layer`"); as an initializer it converts.
    """
    from onnx import numpy_helper

    kept = []
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(node.attribute[0].t),
                                                                   node.output[0]))
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)


def _static_shapes(model):
    """{tensor name: [dims]} of every tensor shape inference knows (None for an unknown dimension)."""
    shapes = {}
    for value in list(model.graph.value_info) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _free_batch(model, input_name, at_batch_1):
    """Undo what folding at batch 1 baked into constants: the two forms PyTorch exports produce.

    * ``x.view(x.size(0), -1)`` (also a Linear on tokens, folded into a
      reshape to ``[1, t, d]``): a Reshape to a constant shape whose output
      at batch 1 is ``(1, d1, ...)`` gets ``[-1, d1, ...]``: the batch is
      what the other, batch-free dimensions leave; a ``Flatten`` at axis 1
      becomes the same Reshape (onnx2tf flattens a 4-D graph input in its
      NHWC order otherwise: measured, the logits were wrong);
    * ``token.expand(x.shape[0], -1, -1)`` before ``torch.cat``: a batch-1
      constant joined to activations by a Concat along another axis is
      broadcast to the activations' batch.
    Whether the result follows the batch is checked against onnxruntime on
    the original model at two batch sizes (`convert`).
    """
    from onnx import helper, numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    added, nodes = [], []
    for node in model.graph.node:
        flatten = node.op_type == "Flatten" and all(a.i == 1 for a in node.attribute if a.name == "axis")
        if flatten or (node.op_type == "Reshape" and len(node.input) == 2 and node.input[1] in constants):
            out = at_batch_1.get(node.output[0])
            if out and len(out) > 1 and out[0] == 1 and None not in out[1:]:
                if flatten:  # the same as a Reshape to [-1, features], which converters read in any layout
                    node.op_type = "Reshape"
                    del node.attribute[:]
                    node.input.append("")
                freed = numpy_helper.from_array(np.array([-1, *out[1:]], np.int64), f"{node.output[0]}/free_batch")
                added.append(freed)
                node.input[1] = freed.name
        elif node.op_type == "Concat" and any(a.name == "axis" and a.i != 0 for a in node.attribute):
            live = [name for name in node.input if name not in constants]
            for k, name in enumerate(node.input):
                value = constants.get(name)
                if value is None or not live or len(value.dims) < 2 or value.dims[0] != 1:
                    continue
                # constant + 0 x mean(activations over every non-batch axis): (N, 1, ..) zeros broadcast, which
                # reads the same in any layout a converter picks for the activations
                prefix = f"{name}/free_batch_{len(added)}"
                axes = list(range(1, len(value.dims)))
                zero = numpy_helper.from_array(np.zeros((), np.float32), f"{prefix}/zero")
                added.append(zero)
                if opset >= 18:  # ReduceMean's axes: an input since opset 18, an attribute before
                    added.append(numpy_helper.from_array(np.array(axes, np.int64), f"{prefix}/axes"))
                    mean = helper.make_node("ReduceMean", [live[0], f"{prefix}/axes"], [f"{prefix}/mean"], keepdims=1)
                else:
                    mean = helper.make_node("ReduceMean", [live[0]], [f"{prefix}/mean"], axes=axes, keepdims=1)
                nodes += [
                    mean,
                    helper.make_node("Mul", [f"{prefix}/mean", zero.name], [f"{prefix}/zeros"]),
                    helper.make_node("Add", [name, f"{prefix}/zeros"], [prefix]),
                ]
                node.input[k] = prefix
    model.graph.initializer.extend(added)
    if nodes:  # keep the graph topologically sorted: the new nodes go right after their inputs exist
        order = list(model.graph.node)
        del model.graph.node[:]
        model.graph.node.extend(_topological(order + nodes, input_name, set(constants) | {t.name for t in added}))


def _topological(nodes, input_name, constants):
    """``nodes`` in an order where each runs after the nodes producing its inputs."""
    ready, ordered, pending = {input_name, "", *constants}, [], list(nodes)
    while pending:
        runnable = [n for n in pending if all(i in ready for i in n.input)]
        if not runnable:
            raise ConversionError("could not order the graph after freeing its batch dimension")
        for node in runnable:
            ordered.append(node)
            ready.update(node.output)
        pending = [n for n in pending if all(id(n) != id(r) for r in runnable)]
    return ordered


def _check_ops(model):
    """Fail before converting if onnx2tf has no converter for some op (it keeps one module per op)."""
    import importlib.util

    types = {n.op_type for n in model.graph.node}
    missing = sorted(t for t in types if importlib.util.find_spec(f"onnx2tf.ops.{t}") is None)
    if missing:
        nodes = [n.name or n.output[0] for n in model.graph.node if n.op_type in missing]
        raise ConversionError(
            f"onnx2tf cannot convert the op(s) {missing} (node(s) {nodes[:5]}); export the model without them "
            "(e.g. a lower opset or an equivalent of simpler ops)"
        )


#: Ops whose (N, c, h, w) output keeps a feature map's layout when an input has it (Grad-CAM's candidates).
_SPATIAL = {
    "Conv", "ConvTranspose", "Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Mul", "Add", "Sub", "Div", "BatchNormalization", "InstanceNormalization", "MaxPool",
    "AveragePool", "Concat", "Pad", "Identity", "Dropout", "Erf", "Softplus", "Mish",
}


def _last_feature_map(model):
    """The last (N, c, h, w) tensor with h, w > 1 that convolutions made, in node order, or None.

    A tensor qualifies when a ``Conv`` produced it or it came from one through
    element-wise, normalisation and pooling ops only (`_SPATIAL`): an attention
    map or a transposed token tensor is 4-D too, but no feature map.
    """
    shapes = _static_shapes(model)
    spatial, found = set(), None
    for node in model.graph.node:
        from_conv = node.op_type in ("Conv", "ConvTranspose") or (
            node.op_type in _SPATIAL and any(i in spatial for i in node.input)
        )
        for out in node.output:
            dims = shapes.get(out, [])
            if from_conv and len(dims) == 4:
                spatial.add(out)
                if all(d is not None and d > 1 for d in dims[2:]):
                    found = out
    return found


def _split(model, full, input_name, feature, output, folder):
    """``full`` (``model`` saved) cut at ``feature`` into {"backbone", "head"} ONNX files."""
    tensors = {o for n in model.graph.node for o in n.output}
    if feature not in tensors:
        raise ConversionError(f"feature tensor {feature!r} is not in the graph")
    parts = {}
    for part, (ins, outs) in {"backbone": ([input_name], [feature]), "head": ([feature], [output])}.items():
        path = os.path.join(folder, f"{part}.onnx")
        try:
            onnx.utils.extract_model(full, path, ins, outs)
        except Exception as exc:
            raise ConversionError(
                f"cannot split the graph at {feature!r} ({part}): {exc}. The head after the feature tensor must "
                "not read the input (e.g. write x.flatten(1), not x.view(inputs.size(0), -1))"
            ) from None
        parts[part] = path
    return parts


def _onnx2tf(path, name, shape, folder):
    import onnx2tf

    try:
        return onnx2tf.convert(
            input_onnx_file_path=path,
            output_folder_path=os.path.join(folder, "onnx2tf"),
            shape_hints=[f"{name}:2," + ",".join(str(d) for d in shape)],
            disable_model_save=True,
            non_verbose=True,
        )
    except SystemExit as exc:  # onnx2tf exits on unsupported ops
        raise ConversionError(f"onnx2tf could not convert the model (exit {exc.code}); see its message above") from None
    except Exception as exc:
        raise ConversionError(f"onnx2tf could not convert the model: {type(exc).__name__}: {exc}") from None


FROZEN = "logits.pb"


#: Where TF's inliner leaves the output of the first call in ``head(features(x))``: the feature map.
_FEATURE_OUTPUT = "Func/PartitionedCall/output/"


def _freeze(function, path):
    """Write ``function`` frozen flat to ``path``; its GraphDef and the input, output and feature tensor names."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    calls = [node.name for node in graph_def.node if node.op in ("PartitionedCall", "StatefulPartitionedCall")]
    if calls:
        raise ConversionError(f"freezing left function calls in the logits graph: {calls[:3]}")
    features = [node.name for node in graph_def.node if node.name.startswith(_FEATURE_OUTPUT)]
    if len(features) != 1:
        raise ConversionError(f"the frozen logits graph has {len(features)} feature outputs, expected one")
    with open(path, "wb") as f:
        f.write(graph_def.SerializeToString())
    return {"graph_def": graph_def, "input": frozen.inputs[0].name, "output": frozen.outputs[0].name,
            "feature": features[0] + ":0"}


def _run_frozen(frozen, image):
    """The frozen graph's logits and feature map for ``image``, imported the way tf_gag imports it."""
    run = tf.function(
        lambda x: tf.graph_util.import_graph_def(
            frozen["graph_def"], input_map={frozen["input"]: x}, return_elements=[frozen["output"], frozen["feature"]],
            name="frozen",
        )
    )
    return [t.numpy() for t in run(tf.constant(image))]


def _reference(path, output, input_name, batch):
    """onnxruntime's value of graph output ``output`` of the model at ``path``."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    try:
        return session.run([output], {input_name: batch})[0]
    except Exception as exc:  # onnxruntime's own errors (a shape baked at another batch size, ...)
        raise ConversionError(f"onnxruntime cannot run {os.path.basename(path)} on a batch of {len(batch)}: "
                              f"{str(exc).splitlines()[-1]}") from None


def _check_batch_free(original, simplified, output, input_name, chw):
    """Fail unless the simplified graph gives the original's outputs at two batch sizes (nothing batch-1 left)."""
    for batch in (2, 3):
        probe = np.random.default_rng(batch).normal(size=(batch, *chw)).astype(np.float32)
        want = _reference(original, output, input_name, probe)
        try:
            got = _reference(simplified, output, input_name, probe)
        except ConversionError as exc:
            raise ConversionError(
                f"{exc}. Folding the graph's shapes at batch 1 left the batch size in a constant that tf_gag "
                "could not free (it frees x.view(x.size(0), -1) and token.expand(x.shape[0], ...) + cat)"
            ) from None
        _check(f"simplified graph's outputs at batch {batch}", got, want)


def _check(name, got, want):
    scale = max(float(np.abs(want).max()), 1e-6)
    error = float(np.abs(got - want).max()) / scale
    if error > TOLERANCE:
        raise ConversionError(f"the converted {name} differ from onnxruntime by {error:.2e} (relative)")
    return error


def convert(onnx_path, out_dir, feature=None, output=None, metadata=None):
    """Convert ``onnx_path`` into ``out_dir`` (``saved_model/`` + ``metadata.json``)."""
    model = _load(onnx_path)
    input_name, chw = _image_input(model)
    outputs = [o.name for o in model.graph.output]
    output = output or outputs[0]
    if output not in outputs:
        raise ConversionError(f"output {output!r} is not a graph output; outputs are {outputs}")
    with tempfile.TemporaryDirectory() as work:
        simplified = _simplify(model, input_name, chw)
        _check_ops(simplified)
        full = os.path.join(work, "simplified.onnx")
        onnx.save(simplified, full)
        _check_batch_free(onnx_path, full, output, input_name, chw)
        feature = feature or _last_feature_map(simplified)
        probe = np.random.default_rng(0).normal(size=(2, *chw)).astype(np.float32)
        image = probe.transpose(0, 2, 3, 1)
        logits_ref = _reference(onnx_path, output, input_name, probe)
        if feature is None:  # no convolutional feature map: the whole graph is the head, Grad-CAM has no layer
            backbone, head = (lambda x: x), _onnx2tf(full, input_name, chw, work)
            feature_nhwc, channels_first = image, False
        else:
            parts = _split(simplified, full, input_name, feature, output, work)
            feature_nchw = _reference(parts["backbone"], feature, input_name, probe)  # an inner tensor of `full`
            backbone = _onnx2tf(parts["backbone"], input_name, chw, work)
            head = _onnx2tf(parts["head"], feature, feature_nchw.shape[1:], work)
            raw = backbone(image).numpy()
            feature_nhwc = feature_nchw.transpose(0, 2, 3, 1)
            channels_first = raw.shape == feature_nchw.shape and not (
                raw.shape == feature_nhwc.shape and np.allclose(raw, feature_nhwc, rtol=1e-3, atol=1e-4)
            )
        module = Imported(backbone, head, chw, feature_nhwc.shape[1:], channels_first)
        triple = np.random.default_rng(3).normal(size=(3, *chw)).astype(np.float32)
        errors = {
            "features": _check("features", module.features(image).numpy(), feature_nhwc),
            "logits": _check("logits", module.logits(image).numpy(), logits_ref),
            "logits_batch_3": _check("logits at batch 3", module.logits(triple.transpose(0, 2, 3, 1)).numpy(),
                                     _reference(onnx_path, output, input_name, triple)),
        }
        frozen = _freeze(module.logits, os.path.join(out_dir, FROZEN))
        frozen_logits, frozen_features = _run_frozen(frozen, image)
        errors["frozen_logits"] = _check("frozen logits", frozen_logits, logits_ref)
        errors["frozen_features"] = _check("frozen features", frozen_features, feature_nhwc)
        staging = os.path.join(out_dir, "saved_model")
        tf.saved_model.save(
            module,
            staging,
            signatures={"serving_default": module.logits},
        )
    import onnx2tf  # already imported by _onnx2tf; here for its version

    meta = dict(metadata or {})
    meta.update(
        {
            "format": FORMAT,
            "input": {"name": input_name, "layout": "NHWC", "onnx_layout": "NCHW", "shape": [chw[1], chw[2], chw[0]]},
            "output": output,
            "gradcam": None if feature is None else {"tensor": feature, "layout": "NHWC",
                                                      "shape": list(feature_nhwc.shape[1:])},
            "relus": sum(node.op in ("Relu", "Relu6") for node in frozen["graph_def"].node),
            "frozen": {"file": FROZEN, **{k: frozen[k] for k in ("input", "output", "feature")}},
            "check_vs_onnxruntime": errors,
            "versions": {
                "tensorflow": tf.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
                "onnx2tf": onnx2tf.__version__,
            },
        }
    )
    with open(os.path.join(out_dir, "metadata.json"), "w") as f:
        json.dump(meta, f, indent=1)


class Imported(tf.Module):
    """The converted network as three NHWC functions (see the module docstring).

    The tf_keras models are only closed over, not tracked: the SavedModel then
    holds plain functions and loads without tf_keras. The variables onnx2tf
    made (e.g. LayerNormalization's scale) are tracked as a plain list, so the
    functions that read them can be saved.
    """

    def __init__(self, backbone, head, chw, feature_shape, channels_first):
        super().__init__()

        def nhwc(f):
            return tf.transpose(f, [0, 2, 3, 1]) if channels_first else f

        self.weights = [v for part in (backbone, head) for v in getattr(part, "variables", [])]
        image = tf.TensorSpec((None, chw[1], chw[2], chw[0]), tf.float32)
        features = tf.TensorSpec((None,) + tuple(feature_shape), tf.float32)
        self.features = tf.function(lambda x: nhwc(backbone(x)), input_signature=[image])
        self.head = tf.function(lambda f: head(f), input_signature=[features])
        self.logits = tf.function(lambda x: self.head(self.features(x)), input_signature=[image])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        spec = json.load(f)
    try:
        convert(spec["onnx"], spec["out"], spec.get("feature"), spec.get("output"), spec.get("metadata"))
    except ConversionError as exc:
        print(ERROR_PREFIX + str(exc), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
