"""ONNX -> TensorFlow SavedModel for tf_gag, in a child process.

    python -m converters.onnx_to_savedmodel SPEC.json

SPEC.json names the ONNX file, the output folder and the options (``feature``,
``output``, ``metadata``). The folder receives ``saved_model/`` and
``metadata.json``. On a user error the process prints one line starting
with ``ERROR_PREFIX`` to stderr and exits with status 3.

Why a child process: ``import onnx2tf`` switches TensorFlow to legacy Keras,
enables op determinism, seeds the RNGs and hides GPUs. tf_gag never imports
this module; the SavedModel it writes loads with TensorFlow alone.

What is saved (all NHWC float32, free batch, weights as constants):
  ``features(x)``       the image -> the Grad-CAM tensor: a feature map (N, h, w, c), or a
                        transformer's tokens (N, k + h*w, c) (`tf_gag.tokens`);
  ``head(f)``           that tensor -> logits;
  ``logits(x)``         ``head(features(x))``, also the ``serving_default`` signature;
and beside it ``logits.pb``: ``logits`` frozen into one flat GraphDef (variables
as constants, nested calls inlined), with the feature map's tensor named in
``metadata.json``: tf_gag imports it into its own graph for every forward pass
(`tf_gag.model.flat`), so a backward rule overrides its ReLU gradients
(`tf_gag.methods.rules`) and Grad-CAM reads the feature map in the same pass.
The graph is split at the feature tensor (one function returning both would
give no gradient of logits with respect to the features). Every part is
checked against onnxruntime on batches of two and three before anything is
written.
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
from converters.onnx_checks import ConversionError, image_input, load_checked
from tf_gag.tokens import MAX_PREFIX, token_grid

ERROR_PREFIX = "tf_gag-conversion-error: "
# Relative tolerance of the converted logits against onnxruntime (float32 reorderings).
TOLERANCE = 1e-3


def _simplify(model, input_name, chw):
    """Fold shape arithmetic (e.g. TF-style 'SAME' padding) with a fixed batch of 1, then free the batch.

    Folding at batch 1 also turns what PyTorch computed from ``x.size(0)``
    into constants; `_free_batch` makes those follow the batch again, with a
    second fold at batch 2 telling which entries of a folded Reshape target
    were the batch.
    """
    simplified = _fold(model, input_name, chw, 1)
    at_batch_1 = _static_shapes(onnx.shape_inference.infer_shapes(simplified))
    at_batch_2 = _reshape_targets(_fold(model, input_name, chw, 2))
    for value in list(simplified.graph.input) + list(simplified.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].dim_param = "batch"
    del simplified.graph.value_info[:]
    _constants_as_initializers(simplified)
    _hard_swish_without_relu6(simplified)
    _free_batch(simplified, input_name, at_batch_1, at_batch_2)
    return onnx.shape_inference.infer_shapes(simplified)


def _fold(model, input_name, chw, batch):
    """``model`` simplified by onnxsim with its input fixed at (batch, C, H, W)."""
    try:
        simplified, ok = onnxsim.simplify(model, overwrite_input_shapes={input_name: [batch, *chw]})
    except Exception as exc:
        raise ConversionError(f"onnxsim could not simplify the model: {exc}") from None
    if not ok:
        raise ConversionError("onnxsim could not validate the simplified model")
    return simplified


def _reshape_targets(model):
    """{`_node_key`: constant target shape} of each Reshape of a folded model."""
    from onnx import numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    return {_node_key(node): numpy_helper.to_array(constants[node.input[1]]).tolist() for node in model.graph.node
            if node.op_type == "Reshape" and len(node.input) == 2 and node.input[1] in constants}


def _node_key(node):
    """What names the same node in two folds of one model: its name (onnxsim renumbers some outputs)."""
    return node.name or node.output[0]


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


def _hard_swish_without_relu6(model):
    """Write each ``HardSwish`` as x * min(max(x + 3, 0), 6) / 6, with no ReLU6 in it.

    onnx2tf writes HardSwish as ``x * relu6(x + 3) / 6``, whose Relu6 op
    Guided Backprop and Rectified Gradients would then act at, as if it were
    one of the network's ReLUs; PyTorch's ``nn.Hardswish`` is no ReLU (its
    guided reference leaves it alone). Max and Min are the same function with
    no ReLU op.
    """
    from onnx import helper, numpy_helper

    if not any(node.op_type == "HardSwish" for node in model.graph.node):
        return
    for value, name in ((3.0, "hard_swish/three"), (0.0, "hard_swish/zero"), (6.0, "hard_swish/six")):
        model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), name))
    nodes = []
    for node in model.graph.node:
        if node.op_type != "HardSwish":
            nodes.append(node)
            continue
        x, out = node.input[0], node.output[0]
        nodes += [
            helper.make_node("Add", [x, "hard_swish/three"], [f"{out}/shifted"]),
            helper.make_node("Max", [f"{out}/shifted", "hard_swish/zero"], [f"{out}/above"]),
            helper.make_node("Min", [f"{out}/above", "hard_swish/six"], [f"{out}/clipped"]),
            helper.make_node("Mul", [x, f"{out}/clipped"], [f"{out}/scaled"]),
            helper.make_node("Div", [f"{out}/scaled", "hard_swish/six"], [out]),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _static_shapes(model):
    """{tensor name: [dims]} of every tensor shape inference knows (None for an unknown dimension)."""
    shapes = {}
    for value in list(model.graph.value_info) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _free_batch(model, input_name, at_batch_1, at_batch_2):
    """Undo what folding at batch 1 baked into constants: the two forms PyTorch exports produce.

    * ``x.view(x.size(0), -1)``, a Linear on tokens, attention's head split
      (torchvision's ``nn.MultiheadAttention`` reshapes (T, N, 3c) with the
      batch second, and (T, N x heads, d)): a Reshape to a constant shape
      gets -1 at the one entry that doubles in the same Reshape folded at
      batch 2 (``at_batch_2``; `_batch_free_target`), so the batch is what
      the other dimensions leave; without a twin, an output ``(1, d1, ...)``
      gets ``[-1, d1, ...]``. A
      ``Flatten`` at axis 1 becomes the same Reshape (onnx2tf flattens a 4-D
      graph input in its NHWC order otherwise: measured, the logits were
      wrong);
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
            target = _batch_free_target(node, constants, at_batch_1, at_batch_2)
            if target is not None:
                if flatten:  # the same as a Reshape to [-1, features], which converters read in any layout
                    node.op_type = "Reshape"
                    del node.attribute[:]
                    node.input.append("")
                freed = numpy_helper.from_array(np.array(target, np.int64), f"{node.output[0]}/free_batch")
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


def _batch_free_target(node, constants, at_batch_1, at_batch_2):
    """The target shape, -1 at the batch, for a Reshape (or Flatten) folded at batch 1; None to keep it.

    The batch's entry is the one entry that doubles in the Reshape folded at
    batch 2 (1 -> 2, or heads -> 2 x heads where attention merges the batch
    into its heads); the other entries are the output's own static sizes
    (an exporter's -1 elsewhere would take the batch at batch 2).
    """
    from onnx import numpy_helper

    out = at_batch_1.get(node.output[0])
    if not out or None in out:
        return None
    if node.op_type == "Reshape":
        folded = numpy_helper.to_array(constants[node.input[1]]).tolist()
        twin = at_batch_2.get(_node_key(node))
        if twin is not None and len(twin) == len(folded) == len(out):
            changed = [k for k, (one, two) in enumerate(zip(folded, twin)) if one != two]
            if not changed:  # the batch is not in this shape
                return None
            if len(changed) == 1 and twin[changed[0]] == 2 * folded[changed[0]] > 0:
                return [-1 if k == changed[0] else d for k, d in enumerate(out)]
    if len(out) > 1 and out[0] == 1:
        return [-1, *out[1:]]
    return None


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
    "AveragePool", "Concat", "Pad", "Identity", "Dropout", "Erf", "Softplus", "Mish", "Max", "Min",
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


def _last_tokens(model, grid):
    """(tensor, (prefix, h, w)): the tokens entering a transformer's last attention, or None without one.

    The last block's output reaches the logits through the class token only
    (its patch tokens get zero gradient), so Grad-CAM reads the residual
    stream that enters the last attention: the last 3-D tensor feeding a
    residual ``Add`` (both operands activations) produced before the last
    token-mixing ``MatMul`` (both operands activations: Q K^T, A V) whose
    length reads as a token grid (`tf_gag.tokens.token_grid`).
    """
    constants = {t.name for t in model.graph.initializer}
    nodes = list(model.graph.node)
    mixing = [k for k, node in enumerate(nodes) if node.op_type == "MatMul" and not set(node.input) & constants]
    if not mixing:
        return None
    residual = {i for node in nodes if node.op_type == "Add" and not set(node.input) & constants for i in node.input}
    shapes, found = _static_shapes(model), None
    for node in nodes[: mixing[-1]]:
        for out in node.output:
            dims = shapes.get(out, [])
            tokens = token_grid(dims[1], grid) if out in residual and len(dims) == 3 and None not in dims[1:] else None
            if tokens is not None:
                found = (out, tokens)
    return found


def _grad_cam_split(model, feature):
    """(tensor, tokens) Grad-CAM reads: the named ``feature`` or the automatic choice; (None, None) without one.

    ``tokens`` is (prefix, h, w) for a token tensor (N, prefix + h*w, c),
    None for a feature map (N, c, h, w). Automatic: a transformer's tokens
    entering its last attention (`_last_tokens`), else the last map
    convolutions made (`_last_feature_map`).
    """
    shapes = _static_shapes(model)
    feature_map = _last_feature_map(model)
    grid = tuple(shapes[feature_map][2:]) if feature_map is not None else None
    if feature is None:
        return _last_tokens(model, grid) or (feature_map, None)
    dims = shapes.get(feature)
    if dims is None or len(dims) == 4:
        return feature, None  # a name not in the graph fails in `_split`
    tokens = token_grid(dims[1], grid) if len(dims) == 3 and None not in dims[1:] else None
    if tokens is None:
        raise ConversionError(
            f"feature: tensor {feature!r} has shape {dims}; Grad-CAM needs a feature map (N, c, h, w) or tokens "
            f"(N, k + h*w, c) with k <= {MAX_PREFIX} leading tokens and an h x w patch grid"
        )
    return feature, tokens


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
                "not read the input (e.g. write x.flatten(1), not x.view(inputs.size(0), -1)) nor a tensor a "
                "residual connection carries past it (name a block's output, not a layer inside the block)"
            ) from None
        parts[part] = path
    return parts


def _onnx2tf(path, name, shape, folder, keep_layout=False):
    """``path`` converted by onnx2tf; ``keep_layout``: take input ``name`` as it is (tokens), not transposed."""
    import onnx2tf

    try:
        return onnx2tf.convert(
            input_onnx_file_path=path,
            output_folder_path=os.path.join(folder, "onnx2tf"),
            shape_hints=[f"{name}:2," + ",".join(str(d) for d in shape)],
            keep_ncw_or_nchw_or_ncdhw_input_names=[name] if keep_layout else None,
            disable_model_save=True,
            non_verbose=True,
        )
    except SystemExit as exc:  # onnx2tf exits on unsupported ops
        raise ConversionError(f"onnx2tf could not convert the model (exit {exc.code}); see its message above") from None
    except Exception as exc:
        raise ConversionError(f"onnx2tf could not convert the model: {type(exc).__name__}: {exc}") from None


FROZEN = "logits.pb"


def _feature_call(concrete):
    """The name of the call op in ``head(features(x))``'s graph that runs ``features`` (it reads the input).

    TF's inliner leaves that call's output, the feature map, as
    ``Func/<name>/output/_k`` in the frozen graph. Which call is
    ``PartitionedCall`` and which ``StatefulPartitionedCall`` depends on
    which part reads variables.
    """
    calls = [op for op in concrete.graph.get_operations()
             if op.type in ("PartitionedCall", "StatefulPartitionedCall") and op.inputs[0] is concrete.inputs[0]]
    if len(calls) != 1:
        raise ConversionError(f"the logits graph has {len(calls)} calls reading the input, expected one (features)")
    return calls[0].name


def _freeze(function, path):
    """Write ``function`` frozen flat to ``path``; its GraphDef and the input, output and feature tensor names."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = function.get_concrete_function()
    feature_output = f"Func/{_feature_call(concrete)}/output/"
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    calls = [node.name for node in graph_def.node if node.op in ("PartitionedCall", "StatefulPartitionedCall")]
    if calls:
        raise ConversionError(f"freezing left function calls in the logits graph: {calls[:3]}")
    features = [node.name for node in graph_def.node if node.name.startswith(feature_output)]
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
    if got.shape != want.shape:
        raise ConversionError(f"the converted {name} have shape {got.shape}, onnxruntime's {want.shape}")
    scale = max(float(np.abs(want).max()), 1e-6)
    error = float(np.abs(got - want).max()) / scale
    if error > TOLERANCE:
        raise ConversionError(f"the converted {name} differ from onnxruntime by {error:.2e} (relative)")
    return error


def convert(onnx_path, out_dir, feature=None, output=None, metadata=None):
    """Convert ``onnx_path`` into ``out_dir`` (``saved_model/`` + ``metadata.json``)."""
    model = load_checked(onnx_path)
    input_name, chw = image_input(model)
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
        feature, tokens = _grad_cam_split(simplified, feature)
        probe = np.random.default_rng(0).normal(size=(2, *chw)).astype(np.float32)
        image = probe.transpose(0, 2, 3, 1)
        logits_ref = _reference(onnx_path, output, input_name, probe)
        if feature is None:  # no convolutional feature map: the whole graph is the head, Grad-CAM has no layer
            backbone, head = (lambda x: x), _onnx2tf(full, input_name, chw, work)
            feature_ref, to_ref = image, None
        else:
            parts = _split(simplified, full, input_name, feature, output, work)
            onnx_feature = _reference(parts["backbone"], feature, input_name, probe)  # an inner tensor of `full`
            backbone = _onnx2tf(parts["backbone"], input_name, chw, work)
            head = _onnx2tf(parts["head"], feature, onnx_feature.shape[1:], work, keep_layout=tokens is not None)
            # tf_gag's layout: NHWC maps, tokens as ONNX has them; onnx2tf's backbone may give either layout
            feature_ref = onnx_feature if tokens else onnx_feature.transpose(0, 2, 3, 1)
            raw = backbone(image).numpy()
            same = raw.shape == feature_ref.shape and np.allclose(raw, feature_ref, rtol=1e-3, atol=1e-4)
            perm = [0, 2, 1] if tokens else [0, 2, 3, 1]
            to_ref = perm if not same and raw.transpose(perm).shape == feature_ref.shape else None
        module = Imported(backbone, head, chw, feature_ref.shape[1:], to_ref)
        triple = np.random.default_rng(3).normal(size=(3, *chw)).astype(np.float32)
        errors = {
            "features": _check("features", module.features(image).numpy(), feature_ref),
            "logits": _check("logits", module.logits(image).numpy(), logits_ref),
            "logits_batch_3": _check("logits at batch 3", module.logits(triple.transpose(0, 2, 3, 1)).numpy(),
                                     _reference(onnx_path, output, input_name, triple)),
        }
        frozen = _freeze(module.logits, os.path.join(out_dir, FROZEN))
        frozen_logits, frozen_features = _run_frozen(frozen, image)
        errors["frozen_logits"] = _check("frozen logits", frozen_logits, logits_ref)
        errors["frozen_features"] = _check("frozen features", frozen_features, feature_ref)
        saved = module.with_constants()
        tf.saved_model.save(saved, os.path.join(out_dir, "saved_model"), signatures={"serving_default": saved.logits})
    import onnx2tf  # already imported by _onnx2tf; here for its version

    meta = dict(metadata or {})
    meta.update(
        {
            "format": FORMAT,
            "input": {"name": input_name, "layout": "NHWC", "onnx_layout": "NCHW", "shape": [chw[1], chw[2], chw[0]]},
            "output": output,
            "gradcam": _gradcam_metadata(feature, tokens, feature_ref.shape[1:]),
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


def _gradcam_metadata(feature, tokens, shape):
    """What tf_gag's Grad-CAM reads of the split: the tensor, its layout and shape, a token grid's geometry."""
    if feature is None:
        return None
    if tokens is None:
        return {"tensor": feature, "layout": "NHWC", "shape": list(shape)}
    prefix, h, w = tokens
    return {"tensor": feature, "layout": "tokens", "shape": list(shape), "prefix": prefix, "grid": [h, w]}


class Imported(tf.Module):
    """The converted network as three NHWC functions (see the module docstring).

    The tf_keras models are only closed over, not tracked; what is saved is
    `with_constants`: the SavedModel then holds plain functions and constants
    and loads without tf_keras.
    """

    def __init__(self, backbone, head, chw, feature_shape, to_feature_layout):
        super().__init__()

        def nhwc(f):  # onnx2tf's backbone output in tf_gag's layout (NHWC maps, (N, T, c) tokens)
            return f if to_feature_layout is None else tf.transpose(f, to_feature_layout)

        image = tf.TensorSpec((None, chw[1], chw[2], chw[0]), tf.float32)
        features = tf.TensorSpec((None,) + tuple(feature_shape), tf.float32)
        self.features = tf.function(lambda x: nhwc(backbone(x)), input_signature=[image])
        self.head = tf.function(lambda f: head(f), input_signature=[features])
        self.logits = tf.function(lambda x: self.head(self.features(x)), input_signature=[image])

    def with_constants(self):
        """A module with the same three functions, the variables onnx2tf made frozen into constants.

        onnx2tf makes some weights variables (LayerNormalization's scale, a
        depthwise kernel in ConvNeXt), not all of them tracked by its models
        and some with names a SavedModel refuses ('/features/.../kernel'):
        constants save whatever onnx2tf did. ``logits`` calls the frozen
        ``features`` and ``head``, so each weight is stored once.
        """
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        def frozen(function):  # a frozen concrete function returns its one output in a list
            constant = convert_variables_to_constants_v2(function.get_concrete_function())
            return tf.function(lambda x: constant(x)[0], input_signature=function.input_signature)

        saved = tf.Module()
        saved.features, saved.head = frozen(self.features), frozen(self.head)
        saved.logits = tf.function(lambda x: saved.head(saved.features(x)), input_signature=self.logits.input_signature)
        return saved


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
