"""An imported model's logits as one flat GraphDef, imported into the graph tf_gag traces.

tf_gag's ONNX converter freezes ``logits(x) = head(features(x))`` into
``logits.pb``: every weight a constant, every call inlined. Importing that
graph into tf_gag's own traced graph is what lets a backward rule override its
ReLU gradients (`tf_gag.methods.rules`) and Grad-CAM read its feature tensor
in the same forward pass. A copy with its own weights (`with_variables`) maps
each weight constant to a ``tf.Variable`` when importing, so the sanity checks
can re-draw weights without re-tracing and without touching the original.
A copy in reduced precision (`in_dtype`) imports the same graph with every
float32 tensor in bfloat16 or float16: its input cast from float32, its
outputs cast back.
"""
import threading

import numpy as np
import tensorflow as tf

#: Ops whose second input is a learned weight tensor (a layer of an imported model).
WEIGHTED_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2", "Conv3D")
#: Element-wise ops that apply a learned bias or scale right after a weighted op.
_BIAS_OPS = ("AddV2", "Add", "BiasAdd", "Mul")


def _read(path):
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    return graph_def


def _node_name(tensor_name):
    return tensor_name.split(":")[0].lstrip("^")


class FlatGraph:
    """The flat logits graph of an imported model.

    Args:
      path: the ``logits.pb`` file, read on first use (under a lock), or
      graph_def: the GraphDef itself.
      input, output: tensor names of the image input and the logits.
      feature: tensor name of the Grad-CAM feature map, or None when the
        conversion did not record it (converted before format 3).
      variables: {weight constant's node name: tf.Variable} that replace those
        constants when the graph is imported (a copy's own weights).
      dtype: the type the graph computes in (float32, bfloat16 or float16):
        the imported graph is `graph_def` with its float32 tensors in that type.
    """

    def __init__(self, *, input, output, feature=None, path=None, graph_def=None, variables=None,
                 dtype=tf.float32):
        if (path is None) == (graph_def is None):
            raise ValueError("FlatGraph: expected exactly one of path or graph_def")
        self.input, self.output, self.feature = input, output, feature
        self.path = path
        self._graph_def = graph_def
        self._lock = threading.Lock()
        self.variables = dict(variables or {})
        self.dtype = tf.as_dtype(dtype)
        self._computing = None

    @classmethod
    def from_metadata(cls, frozen):
        """The flat graph that ``metadata["frozen"]`` (``file``/``path``, ``input``, ``output``, ``feature``) names."""
        if "path" not in frozen:
            raise ValueError(
                "metadata: 'frozen' names the flat logits graph but not its path; load the model with "
                "tf_gag.load_model(folder), which reads metadata.json beside the SavedModel"
            )
        return cls(input=frozen["input"], output=frozen["output"], feature=frozen.get("feature"), path=frozen["path"])

    @property
    def graph_def(self):
        """The GraphDef (read from ``path`` once)."""
        with self._lock:
            if self._graph_def is None:
                self._graph_def = _read(self.path)
            return self._graph_def

    def __call__(self, x, *, feature=False):
        """Import the graph with ``x`` as its input: [logits] or, with ``feature``, [logits, feature map].

        ``x`` is float32, the logits are float32; the feature map is in the graph's `dtype`.
        """
        if feature and self.feature is None:
            raise ValueError(
                "model: this imported model's flat graph does not name its Grad-CAM feature tensor (converted "
                "before format 3); convert the ONNX file again (tf_gag.load_model does so for its cache)"
            )
        input_map = {self.input: tf.cast(x, self.dtype)}
        input_map.update({f"{name}:0": tf.cast(v, self.dtype) for name, v in self.variables.items()})
        returns = [self.output] + ([self.feature] if feature else [])
        outputs = tf.graph_util.import_graph_def(self._computed_def(), input_map=input_map, return_elements=returns,
                                                 name="imported")
        # The logits in float32; a feature map stays the tensor the logits depend on (differentiated, then cast).
        return [tf.cast(outputs[0], tf.float32)] + outputs[1:]

    def _computed_def(self):
        """The GraphDef that is imported: `graph_def`, with its float32 tensors in `dtype` (built once)."""
        if self.dtype == tf.float32:
            return self.graph_def
        source = self.graph_def
        with self._lock:
            if self._computing is None:
                self._computing = _in_dtype(source, self.dtype)
            return self._computing

    def in_dtype(self, dtype):
        """A copy of this graph that computes in ``dtype`` (same weights, variables, input and outputs)."""
        return FlatGraph(input=self.input, output=self.output, feature=self.feature, graph_def=self.graph_def,
                         variables=self.variables, dtype=dtype)

    # ----- weights (sanity checks) --------------------------------------------

    def weight_layers(self):
        """[(layer name, [weight constant node names])] in forward order.

        A layer is a convolution or matrix multiply (`WEIGHTED_OPS`) with its
        weight constant, plus the bias or scale constants of the element-wise
        ops that directly follow it (scalar constants there are passed, not
        collected). Constants are found through ``Identity``
        nodes (what inlining leaves between a call's inputs and its body).
        """
        nodes = {node.name: node for node in self.graph_def.node}
        consumers = {}
        for node in self.graph_def.node:
            for name in node.input:
                consumers.setdefault(_node_name(name), []).append(node)

        def constant_behind(name):
            node = nodes.get(_node_name(name))
            while node is not None and node.op == "Identity" and node.input:
                node = nodes.get(_node_name(node.input[0]))
            if node is not None and node.op == "Const" and node.attr["dtype"].type == tf.float32.as_datatype_enum:
                return node.name
            return None

        def is_tensor(name):
            dims = nodes[name].attr["value"].tensor.tensor_shape.dim
            return len(dims) > 0 and int(np.prod([d.size for d in dims])) > 1

        layers = []
        for node in self.graph_def.node:
            if node.op not in WEIGHTED_OPS or len(node.input) < 2:
                continue
            weight = constant_behind(node.input[1])
            if weight is None:
                continue
            names, current = [weight], node
            while True:
                after = [c for c in consumers.get(current.name, []) if c.op in _BIAS_OPS]
                if len(consumers.get(current.name, [])) != 1 or not after:
                    break
                others = [constant_behind(i) for i in after[0].input if _node_name(i) != current.name]
                if None in others:  # another activation joins here (a residual sum): the layer ends
                    break
                names += [c for c in others if is_tensor(c)]  # scalars (a Gemm's alpha) are not learned
                current = after[0]
            parts = node.name.split("/")
            layers.append(("/".join(parts[2:]) if len(parts) > 2 else node.name, names))
        return layers

    def constant(self, name):
        """The value of weight constant ``name`` as a numpy array."""
        node = next(n for n in self.graph_def.node if n.name == name)
        return tf.make_ndarray(node.attr["value"].tensor)

    def with_variables(self):
        """A copy whose weight constants (those of `weight_layers`) are ``tf.Variable``s of their own."""
        names = [name for _, group in self.weight_layers() for name in group]
        variables = {name: tf.Variable(self.constant(name), trainable=False, name="weight") for name in names}
        return FlatGraph(input=self.input, output=self.output, feature=self.feature, graph_def=self.graph_def,
                         variables=variables, dtype=self.dtype)


def _in_dtype(graph_def, dtype):
    """``graph_def`` with every float32 type attribute (``T``, ``dtype``, ``DstT``, ...) and constant in ``dtype``.

    Ops keep their structure; float32 constants are rounded to ``dtype``. An
    op that has no kernel in ``dtype`` fails when the graph first runs.
    """
    converted = tf.compat.v1.GraphDef()
    converted.CopyFrom(graph_def)
    float32, target = tf.float32.as_datatype_enum, dtype.as_datatype_enum
    for node in converted.node:
        if node.op == "Const" and node.attr["dtype"].type == float32:
            value = tf.make_ndarray(node.attr["value"].tensor).astype(dtype.as_numpy_dtype)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
        for attr in node.attr.values():
            if attr.type == float32:
                attr.type = target
            elif attr.HasField("list") and float32 in attr.list.type:
                attr.list.type[:] = [target if t == float32 else t for t in attr.list.type]
    return converted
