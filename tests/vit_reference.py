"""Small vision transformers for the tests: a Keras ViT built with MultiHeadAttention, and its torch twin.

`vision_transformer` is the Keras model (patch convolution, class token and
position embedding, pre-norm blocks of attention and a GELU MLP, a head on
the class token). `small_torch_vit` is the same architecture in torch
(`benchmarks.vit_lxt.torch_vit`: nn.MultiheadAttention, nn.LayerNorm and
nn.GELU, as torchvision's ViT uses them); `keras_twin` copies its weights into
the Keras model. LXT 2.1's relevance on the torch net
(`benchmarks.vit_lxt.lxt_relevance`) is the AttnLRP tests' independent side.
"""
import keras
import numpy as np

from benchmarks.vit_lxt import lxt_relevance, torch_vit

__all__ = ["DIM", "GRID", "SIZE", "keras_twin", "lxt_relevance", "small_torch_vit", "vision_transformer"]

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


def small_torch_vit(depth=2, classes=5):
    """The torch twin of `vision_transformer`, with seeded weights (torch's LayerNorm epsilon, 1e-5)."""
    return torch_vit(SIZE, PATCH, DIM, HEADS, depth, classes)


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
