"""Vision transformers in torch and LXT 2.1's relevance on them: the independent side of the AttnLRP checks.

`torch_vit` builds torchvision's ViT layout (patch convolution, class token
expanded with the batch, position embedding, pre-norm encoder blocks with
nn.MultiheadAttention, nn.LayerNorm and an nn.GELU MLP, a final LayerNorm and
a head on the class token) at any size, ViT-B/16 included, with seeded weights
(torchvision itself is not installed here: its wheels pin other torch
versions). `lxt_relevance` runs LXT's AttnLRP or CP-LRP on such a net.

LXT's package imports every language-model recipe it has, and with them
transformers, at import; its vision transformer rules need only its rules,
patches and zennit patches, which import torch and zennit. `_lxt` imports
those three modules alone. LXT patches torch's classes (and zennit's hook)
process-wide: `_lxt_patched` restores them when the block ends, so the rest of
the process sees plain torch.
"""
import contextlib
import importlib
import importlib.util
import os
import sys
import types

import numpy as np

from benchmarks.torchvision_stand_in import stand_in


def torch_vit(size, patch, dim, heads, depth, classes, mlp=None, epsilon=1e-5, seed=0):
    """A ViT with seeded weights of every kind far from their initial values (LayerNorm scales and offsets,
    class token and position embedding included), in eval mode. ViT-B/16: 224, 16, 768, 12, 12, 1000, 3072,
    epsilon 1e-6."""
    import torch

    grid, mlp = size // patch, mlp or 2 * dim

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.norm2 = torch.nn.LayerNorm(dim, eps=epsilon), torch.nn.LayerNorm(dim, eps=epsilon)
            self.attention = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, mlp), torch.nn.GELU(), torch.nn.Linear(mlp, dim))

        def forward(self, x):
            h = self.norm1(x)
            x = x + self.attention(h, h, h, need_weights=False)[0]
            return x + self.mlp(self.norm2(x))

    class TorchViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.patches = torch.nn.Conv2d(3, dim, patch, patch)
            self.token = torch.nn.Parameter(torch.zeros(1, 1, dim))
            self.position = torch.nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
            self.blocks = torch.nn.Sequential(*(Block() for _ in range(depth)))
            self.norm, self.head = torch.nn.LayerNorm(dim, eps=epsilon), torch.nn.Linear(dim, classes)

        def forward(self, x):
            x = self.patches(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1) + self.position
            return self.head(self.norm(self.blocks(x))[:, 0])

    torch.manual_seed(seed)
    net = TorchViT()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, value in net.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                value.copy_(1 + 0.3 * torch.randn(value.shape, generator=generator))
            elif name in ("token", "position") or name.endswith("bias"):
                value.copy_(0.3 * torch.randn(value.shape, generator=generator))
    return net.eval()


def _lxt():
    """LXT 2.1's efficient rules, patches and zennit patches, imported without its package's language models."""
    if "lxt.efficient" not in sys.modules:
        folder = os.path.join(os.path.dirname(importlib.util.find_spec("lxt").origin), "efficient")
        package = types.ModuleType("lxt.efficient")
        package.__path__ = [folder]
        sys.modules["lxt.efficient"] = package
    with stand_in():  # zennit imports torchvision
        importlib.import_module("zennit")
        return tuple(importlib.import_module(f"lxt.efficient.{name}") for name in ("rules", "patches",
                                                                                   "zennit_patches"))


@contextlib.contextmanager
def _lxt_patched(variant):
    """torch's GELU, LayerNorm and MultiheadAttention, and zennit's hook, patched as LXT does for a ViT
    (``variant`` "cp": its vit_torch recipe; "attnlrp": its language models' attention rule, queries and keys'
    gradients divided by 4 and values' by 2) while the block runs."""
    import torch

    rules, patches, zennit_patches = _lxt()
    import zennit.core

    def attnlrp_forward(self, query, key, value, *args, **kwargs):
        query, key = rules.divide_gradient(query, 4), rules.divide_gradient(key, 4)
        return self.original_forward(query, key, rules.divide_gradient(value, 2), *args, **kwargs)

    attention = patches.cp_multi_head_attention_forward if variant == "cp" else attnlrp_forward
    targets = [(torch.nn.GELU, "forward", patches.non_linear_forward, True),
               (torch.nn.LayerNorm, "forward", patches.layer_norm_forward, False),
               (torch.nn.MultiheadAttention, "forward", attention, True),
               (zennit.core.BasicHook, "forward", zennit_patches.forward, False),
               (zennit.core.BasicHook, "backward", zennit_patches.backward, False)]
    saved = [(cls, name, cls.__dict__[name]) for cls, name, _, _ in targets]
    try:
        for cls, name, function, keep in targets:
            if not patches.patch_method(function, cls, name, keep_original=keep):
                raise RuntimeError(f"LXT could not patch {cls.__name__}.{name}")
        yield
    finally:
        for cls, name, original in saved:
            setattr(cls, name, original)
            if f"original_{name}" in cls.__dict__:
                delattr(cls, f"original_{name}")


def lxt_relevance(net, images, targets, variant, conv_gamma=0.25, dense_gamma=0.1, dtype="float64"):
    """LXT's relevance (N, H, W, C) at the NHWC ``images`` (gradient x input), from the target logits: LXT's ViT
    recipe with zennit's gamma rule on convolutions and Linear layers (``dense_gamma=None``: none on Linear
    layers, which keep gradient x input, LRP-0) under LXT's zennit patch, in ``dtype``."""
    import torch

    _lxt()
    from zennit.composites import LayerMapComposite
    from zennit.rules import Gamma

    dtype = getattr(torch, dtype)
    net = net.to(dtype)
    x = torch.tensor(np.ascontiguousarray(images.transpose(0, 3, 1, 2)), dtype=dtype, requires_grad=True)
    layer_map = [(torch.nn.Conv2d, Gamma(conv_gamma))]
    if dense_gamma is not None:
        layer_map.append((torch.nn.Linear, Gamma(dense_gamma)))
    with _lxt_patched(variant), LayerMapComposite(layer_map).context(net):
        out = net(x)
        start = torch.zeros_like(out)
        start[range(len(targets)), list(targets)] = 1.0
        out.backward(start)
    net.float()
    return (x.grad * x).detach().numpy().transpose(0, 2, 3, 1)
