"""Export a PyTorch ``nn.Module`` classifier to ONNX for tf_gag.

torch is optional for tf_gag and imported only when this runs. The export
has one NCHW input ``"input"`` and a dynamic batch, the logits as output
``"logits"``, and — when ``feature`` names a submodule — that submodule's
output (its last call in the forward pass) as a second output
``"features"``, so the converter splits the graph there for Grad-CAM.
"""
import os

INPUT, LOGITS, FEATURES = "input", "logits", "features"


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError(
            "torch is needed to export a PyTorch model (pip install torch); tf_gag itself does not need it"
        ) from None
    return torch


def export(module, path, *, input_size=(224, 224), channels=3, feature=None, opset=17):
    """Write ``module`` as ONNX to ``path``; returns ``path``.

    Args:
      module: a ``torch.nn.Module`` mapping (N, C, H, W) float images to logits.
      input_size: (H, W) of the images the model takes.
      feature: the Grad-CAM layer, a submodule or its dotted name
        (``"layer4"``, ``"features.denseblock4"``, ``"encoder.layers.10"``);
        its output must be a 4-D (N, c, h, w) feature map or a transformer's
        3-D (N, k + h*w, c) tokens (`tf_gag.tokens`). Convert with
        ``tf_gag.load_model(path, feature="features")`` to split there.
      opset: ONNX opset for torch's TorchScript-based exporter (it keeps
        readable node names).

    While it exports, torch's process-wide multi-head-attention fast path is
    off (restored after): another thread running attention meanwhile takes
    the plain path, with the same results.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    if isinstance(feature, str):
        names = dict(module.named_modules())
        if feature not in names:
            raise ValueError(f"feature: no submodule named {feature!r}; submodules are {sorted(n for n in names if n)}")
        feature = names[feature]
    module = module.eval()
    wrapped = _with_features(torch, module)
    hook = None
    if feature is not None:
        hook = feature.register_forward_hook(lambda _m, _i, output: setattr(wrapped, "captured", output))
        wrapped.hooked = True
    sample = torch.zeros(2, channels, *input_size)
    outputs = [LOGITS] if feature is None else [LOGITS, FEATURES]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # nn.MultiheadAttention's inference fast path is one fused op the ONNX exporter cannot write
    # (torchvision's ViT: "aten::_native_multi_head_attention ... not supported"); the plain path exports.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapped,
                sample,
                path,
                input_names=[INPUT],
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in [INPUT, *outputs]},
                opset_version=opset,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        if hook is not None:
            hook.remove()
    return path


def _with_features(torch, module):
    """``module`` returning (logits, the hooked feature output) once a hook sets ``captured``."""

    class WithFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module
            self.captured = None
            self.hooked = False

        def forward(self, x):
            self.captured = None
            logits = self.inner(x)
            if not self.hooked:
                return logits
            if self.captured is None or self.captured.dim() not in (3, 4):
                raise ValueError("feature: the submodule did not output a 4-D (N, c, h, w) feature map or 3-D "
                                 "(N, tokens, c) tokens in the forward pass")
            return logits, self.captured

    return WithFeatures().eval()  # the exporter applies the wrapper's mode to the whole tree
