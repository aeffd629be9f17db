"""Copies of a model: with weights of its own (`tf_gag.sanity` re-draws them), or computing in reduced precision.

The user's model is never modified: a Keras model is cloned (``clone_model``
of its Keras: Keras 3 or tf_keras) and given the original's weights; an imported
model's flat graph is imported with a ``tf.Variable`` in place of each weight
constant. Either way the copy's weights are variables that compiled
explainers read at run time, so re-drawing them needs no re-tracing.

A copy in reduced precision (`in_precision`) is a Keras clone whose every
layer has the mixed policy of that type (``mixed_bfloat16``: float32 weights,
computations in bfloat16; normalisation layers keep float32 statistics), or an
imported model's flat graph with its tensors in that type
(`tf_gag.model.flat.FlatGraph.in_dtype`).
"""
from dataclasses import dataclass

from .backends import ImportedBackend, _walk_layers, keras_module

#: A normalisation layer's running statistics: state, not learned weights.
_STATISTICS = ("moving_mean", "moving_variance")


@dataclass(frozen=True)
class WeightLayer:
    """One layer of a copy: its name (a path for nested Keras models) and its learned weights (variables)."""

    name: str
    variables: tuple


def _learned(layer):
    statistics = {id(getattr(layer, name)) for name in _STATISTICS if hasattr(layer, name)}
    return tuple(v for v in layer.weights if id(v) not in statistics)


def _keras_clone(adapter, subject, why, policy=None):
    """``adapter``'s Keras model cloned with its Keras (every layer given ``policy`` if set) and its weights, as an
    adapter of the same kind; a ValueError that begins with ``subject`` ("argument: what") and says ``why`` a copy
    is needed if it cannot be."""
    keras = keras_module(adapter.model)

    def with_policy(layer):
        config = layer.get_config()
        config["dtype"] = policy
        return type(layer).from_config(config)

    try:
        options = {} if policy is None else {"clone_function": with_policy, "recursive": True}
        if policy is not None and keras.__name__ == "tf_keras":  # tf_keras clones nested models itself
            options.pop("recursive")
        clone = keras.models.clone_model(adapter.model, **options)
        clone.set_weights(adapter.model.get_weights())
    except Exception as exc:  # clone_model raises many kinds (subclassed models without get_config, ...)
        raise ValueError(
            f"{subject} cannot be copied (clone_model: {type(exc).__name__}: {exc}); {why} and never of the model "
            "itself. Give the model a get_config (a functional or Sequential model always has one)"
        ) from None
    copy = type(adapter)(clone, output=adapter.output, preprocessing=adapter.preprocessing, classes=adapter.classes,
                         metadata=adapter.metadata, image_input=adapter.image_input)
    return copy, clone


def keras_copy(adapter):
    """A Keras model's copy: cloned with its Keras, given the original's weights."""
    copy, clone = _keras_clone(adapter, "model: its weights", "the sanity checks re-draw the weights of a copy")
    copy.precision = adapter.precision
    layers = [WeightLayer(path, _learned(layer)) for path, layer in _walk_layers(clone)]
    return copy, [layer for layer in layers if layer.variables]


def imported_copy(adapter):
    """An imported model's copy: its flat graph with a variable in place of each weight constant."""
    flat = adapter.backend.flat
    if flat is None or flat.feature is None:
        raise ValueError(
            "model: its weights cannot be copied: this imported model was converted before its flat graph named "
            "its feature map (format 3); convert the ONNX file again (tf_gag.load_model does so for its cache)"
        )
    flat = flat.with_variables()
    copy = _imported_with(adapter, flat)
    layers = [WeightLayer(name, tuple(flat.variables[c] for c in names)) for name, names in flat.weight_layers()]
    return copy, layers


def weight_copy(adapter):
    """(a `ModelAdapter` of a copy with its own weights, its `WeightLayer`s in forward order).

    Keras models and models imported through ONNX can be copied; a plain
    callable or SavedModel cannot (its weights are not reachable), which
    raises a ValueError saying so.
    """
    return adapter.backend.weight_copy(adapter)


def _imported_with(adapter, flat):
    """An adapter of ``adapter``'s imported model that runs the flat graph ``flat``."""
    copy = type(adapter)(adapter.model, output=adapter.output, preprocessing=adapter.preprocessing,
                         classes=adapter.classes, metadata=adapter.metadata)
    copy.backend = ImportedBackend(adapter.model, copy.metadata, flat)
    copy.precision = flat.dtype.name
    return copy


def keras_in_precision(adapter, precision):
    """A Keras model's copy whose layers compute in ``precision`` (mixed policy: weights stay float32)."""
    why = f"precision={precision!r} changes the type of the layers of a copy"
    copy, _ = _keras_clone(adapter, "precision: the model", why, policy=f"mixed_{precision}")
    copy.precision = precision
    return copy


def imported_in_precision(adapter, precision):
    """An imported model's copy whose flat graph computes in ``precision``."""
    flat = adapter.backend.flat
    if flat is None:
        raise ValueError(
            f"precision: {precision} runs the imported model's flat logits graph (logits.pb), which tf_gag's converter "
            "writes since format 2; convert the ONNX file again (tf_gag.load_model does so for its cache)"
        )
    return _imported_with(adapter, flat.in_dtype(precision))
