"""A copy of a model with weights of its own, for checks that re-draw weights (`tf_gag.sanity`).

The user's model is never modified: a Keras model is cloned (``clone_model``
of its Keras: Keras 3 or tf_keras) and given the original's weights; an imported
model's flat graph is imported with a ``tf.Variable`` in place of each weight
constant. Either way the copy's weights are variables that compiled
explainers read at run time, so re-drawing them needs no re-tracing.
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


def keras_copy(adapter):
    """A Keras model's copy: cloned with its Keras, given the original's weights."""
    try:
        clone = keras_module(adapter.model).models.clone_model(adapter.model)
        clone.set_weights(adapter.model.get_weights())
    except Exception as exc:  # clone_model raises many kinds (subclassed models without get_config, ...)
        raise ValueError(
            f"model: its weights cannot be copied (clone_model: {type(exc).__name__}: {exc}); the "
            "sanity checks re-draw the weights of a copy and never of the model itself. Give the model a "
            "get_config (a functional or Sequential model always has one)"
        ) from None
    copy = type(adapter)(clone, output=adapter.output, preprocessing=adapter.preprocessing, classes=adapter.classes,
                         metadata=adapter.metadata, image_input=adapter.image_input)
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
    copy = type(adapter)(adapter.model, output=adapter.output, preprocessing=adapter.preprocessing,
                         classes=adapter.classes, metadata=adapter.metadata)
    copy.backend = ImportedBackend(adapter.model, copy.metadata, flat)
    layers = [WeightLayer(name, tuple(flat.variables[c] for c in names)) for name, names in flat.weight_layers()]
    return copy, layers


def weight_copy(adapter):
    """(a `ModelAdapter` of a copy with its own weights, its `WeightLayer`s in forward order).

    Keras models and models imported through ONNX can be copied; a plain
    callable or SavedModel cannot (its weights are not reachable), which
    raises a ValueError saying so.
    """
    return adapter.backend.weight_copy(adapter)
