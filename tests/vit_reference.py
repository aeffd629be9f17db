"""Small vision transformers for the tests: a Keras ViT built with MultiHeadAttention, its torch twin, and LXT 2.1.

`vision_transformer` is the Keras model (patch convolution, class token and
position embedding, pre-norm blocks of attention and a GELU MLP, a head on
the class token). `TorchViT` is the same architecture in torch with
nn.MultiheadAttention, nn.LayerNorm and nn.GELU, as torchvision's ViT uses
them; `keras_twin` copies its weights into the Keras model. `lxt_relevance`
runs LXT 2.1's AttnLRP or CP-LRP on the torch net in float64, the
independent side of the AttnLRP tests.

LXT's package imports every language-model recipe it has, and with them
transformers, at import; its vision transformer rules need only its rules,
patches and zennit patches, which import torch and zennit. `_lxt` imports
those three modules alone. LXT patches torch's classes (and zennit's hook)
process-wide: `_lxt_patched` restores them when the block ends, so other tests
in the same process see plain torch.
"""
import contextlib
import importlib
import importlib.util
import os
import sys
import types

import keras
import numpy as np

SIZE, PATCH, DIM, HEADS = 32, 8, 24, 2  # DIM != GRID * GRID: onnx2tf guesses layouts by size
GRID = SIZE // PATCH


class ClassTokenAndPosition(keras.layers.Layer):
    """Prepends a learned class token to the patch tokens and adds learned position embeddings."""

    def build(self, shape):
        self.token = self.add_weight(shape=(1, 1, shape[-1]), initializer=keras.initializers.RandomNormal(0, 0.5))
        self.position = self.add_weight(shape=(1, shape[1] + 1, shape[-1]),
                                        initializer=keras.initializers.RandomNormal(0, 0.5))

    def call(self, patches):
        token = keras.ops.broadcast_to(self.token, (keras.ops.shape(patches)[0], 1, patches.shape[-1]))
        return keras.ops.concatenate([token, patches], axis=1) + self.position


class FirstToken(keras.layers.Layer):
    def call(self, tokens):
        return tokens[:, 0]


def vision_transformer(depth=2, classes=5, bias=True, epsilon=1e-3):
    """The Keras ViT; ``bias=False``: no bias, LayerNorm offset, class token or position embedding anywhere."""
    keras.utils.set_random_seed(3)
    image = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(DIM, PATCH, strides=PATCH, use_bias=bias, name="patches")(image)
    x = keras.layers.Reshape((GRID * GRID, DIM))(x)
    x = ClassTokenAndPosition(name="token_and_position", trainable=bias)(x)

    def norm(name):
        return keras.layers.LayerNormalization(epsilon=epsilon, center=bias, name=name)

    for i in range(depth):
        h = norm(f"norm1_{i}")(x)
        attention = keras.layers.MultiHeadAttention(HEADS, DIM // HEADS, use_bias=bias, name=f"attention_{i}")
        x = keras.layers.Add(name=f"attention_residual_{i}")([x, attention(h, h)])
        h = keras.layers.Dense(2 * DIM, activation="gelu", use_bias=bias, name=f"mlp1_{i}")(norm(f"norm2_{i}")(x))
        x = keras.layers.Add(name=f"block_{i}")([x, keras.layers.Dense(DIM, use_bias=bias, name=f"mlp2_{i}")(h)])
    logits = keras.layers.Dense(classes, use_bias=bias, name="head")(FirstToken(name="first_token")(norm("norm")(x)))
    model = keras.Model(image, logits)
    if not bias:
        layer = model.get_layer("token_and_position")
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    return model


def torch_vit(depth=2, classes=5, seed=0):
    """`TorchViT` with seeded weights of every kind far from their initial values (LayerNorm scales and offsets
    included), in eval mode."""
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.norm2 = torch.nn.LayerNorm(DIM), torch.nn.LayerNorm(DIM)
            self.attention = torch.nn.MultiheadAttention(DIM, HEADS, batch_first=True)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(DIM, 2 * DIM), torch.nn.GELU(),
                                           torch.nn.Linear(2 * DIM, DIM))

        def forward(self, x):
            h = self.norm1(x)
            x = x + self.attention(h, h, h, need_weights=False)[0]
            return x + self.mlp(self.norm2(x))

    class TorchViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.patches = torch.nn.Conv2d(3, DIM, PATCH, PATCH)
            self.token = torch.nn.Parameter(torch.zeros(1, 1, DIM))
            self.position = torch.nn.Parameter(torch.zeros(1, 1 + GRID * GRID, DIM))
            self.blocks = torch.nn.Sequential(*(Block() for _ in range(depth)))
            self.norm, self.head = torch.nn.LayerNorm(DIM), torch.nn.Linear(DIM, classes)

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


def keras_twin(net, depth=2):
    """The Keras `vision_transformer` with ``net``'s weights (torch's LayerNorm epsilon, 1e-5)."""
    model = vision_transformer(depth, classes=net.head.out_features, epsilon=1e-5)

    def numpy(t):
        return t.detach().double().numpy().astype(np.float32)

    def linear(module):
        return [numpy(module.weight).T, numpy(module.bias)]

    def norm(module):
        return [numpy(module.weight), numpy(module.bias)]

    model.get_layer("patches").set_weights([numpy(net.patches.weight).transpose(2, 3, 1, 0),
                                            numpy(net.patches.bias)])
    model.get_layer("token_and_position").set_weights([numpy(net.token), numpy(net.position)])
    head_dim = DIM // HEADS
    for i, block in enumerate(net.blocks):
        model.get_layer(f"norm1_{i}").set_weights(norm(block.norm1))
        model.get_layer(f"norm2_{i}").set_weights(norm(block.norm2))
        model.get_layer(f"mlp1_{i}").set_weights(linear(block.mlp[0]))
        model.get_layer(f"mlp2_{i}").set_weights(linear(block.mlp[2]))
        weight, bias = numpy(block.attention.in_proj_weight), numpy(block.attention.in_proj_bias)
        weights = []
        for part in range(3):  # query, key, value: (DIM out, DIM in) -> kernel (DIM in, heads, head_dim)
            rows = slice(part * DIM, (part + 1) * DIM)
            weights += [weight[rows].T.reshape(DIM, HEADS, head_dim), bias[rows].reshape(HEADS, head_dim)]
        out = block.attention.out_proj
        weights += [numpy(out.weight).T.reshape(HEADS, head_dim, DIM), numpy(out.bias)]
        model.get_layer(f"attention_{i}").set_weights(weights)
    model.get_layer("norm").set_weights(norm(net.norm))
    model.get_layer("head").set_weights(linear(net.head))
    return model


def _lxt():
    """LXT 2.1's efficient rules, patches and zennit patches, imported without its package's language models."""
    if "lxt.efficient" not in sys.modules:
        folder = os.path.join(os.path.dirname(importlib.util.find_spec("lxt").origin), "efficient")
        package = types.ModuleType("lxt.efficient")
        package.__path__ = [folder]
        sys.modules["lxt.efficient"] = package
    from benchmarks.torchvision_stand_in import stand_in

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
            assert patches.patch_method(function, cls, name, keep_original=keep)
        yield
    finally:
        for cls, name, original in saved:
            setattr(cls, name, original)
            if f"original_{name}" in cls.__dict__:
                delattr(cls, f"original_{name}")


def lxt_relevance(net, images, targets, variant, conv_gamma=0.25, dense_gamma=0.1):
    """LXT's relevance at the input (gradient x input) in float64, from the target logits: LXT's ViT recipe,
    zennit's gamma rule on convolutions and Linear layers under LXT's zennit patch."""
    import torch

    _lxt()
    from zennit.composites import LayerMapComposite
    from zennit.rules import Gamma

    net = net.double()
    x = torch.tensor(images.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    layer_map = [(torch.nn.Conv2d, Gamma(conv_gamma))]
    if dense_gamma is not None:  # None: Linear layers keep gradient x input, LRP-0
        layer_map.append((torch.nn.Linear, Gamma(dense_gamma)))
    composite = LayerMapComposite(layer_map)
    with _lxt_patched(variant), composite.context(net):
        out = net(x)
        start = torch.zeros_like(out)
        start[range(len(targets)), list(targets)] = 1.0
        out.backward(start)
    net.float()
    return (x.grad * x).detach().numpy().transpose(0, 2, 3, 1)
