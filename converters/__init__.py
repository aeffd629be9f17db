"""Bring PyTorch-trained classifiers into tf_gag: PyTorch -> ONNX -> TensorFlow SavedModel.

* `torch_to_onnx` — export an ``nn.Module`` (torch imported lazily) with a named
  feature tensor (a map or a transformer's tokens) for Grad-CAM.
* `onnx_to_savedmodel` — ONNX -> SavedModel with onnx2tf. It runs in a child
  process (``python -m converters.onnx_to_savedmodel``) because importing
  onnx2tf changes TensorFlow's global state; `tf_gag.load_model` starts it.
* `zoo` — the embedded default model (EfficientNet-Lite0, real ImageNet weights).
"""

#: What a converted entry holds; part of the conversion cache key, so entries of an older format are rebuilt.
#: 2: ``logits.pb``, the logits function frozen flat (variables as constants, calls inlined), so backward rules
#: can override its ReLU gradients at call time.
#: 3: the flat graph also names its Grad-CAM feature tensor, so every imported forward pass runs on the one graph.
#: 4: a transformer's Grad-CAM tensor is its tokens entering the last attention (``layout: "tokens"``), and
#: Reshapes that carry the batch in any position (attention's head split) follow the batch.
FORMAT = 4
