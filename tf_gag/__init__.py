"""tf_gag: gradient saliency maps for TensorFlow/Keras image classifiers.

Home of Guided AbsoluteGrad (GAG; Huang & Liu, "Guided AbsoluteGrad:
Magnitude of Gradients Matters to Explanation's Localization and Saliency")
and the methods it is compared with, each a `Method` composed of parts (source,
backward rule, modification, interpretation, fold, CAM weighting, post-fold
stage) run by one engine; `register_method` adds one to the registry.

    >>> maps = tf_gag.explain(model, images)                  # GAG, (N, H, W) in [0, 1]
    >>> maps = tf_gag.explain(model, images, "smoothgrad", variant="GA")
    >>> tf_gag.list_methods()
    >>> result = tf_gag.evaluate(model, images, "gag")        # RCAP, DAUC, IAUC per image
    >>> result = tf_gag.evaluate(model, dataset, "gag")       # a tf.data.Dataset, streamed
    >>> result = tf_gag.evaluate(model, images, maps, metrics=[tf_gag.RCAP(lower_bound=40), "dauc"])
    >>> tf_gag.sanity.randomization(model, images, ["vg", "gb"], layers=8)  # sanity checks
    >>> relevance = tf_gag.attributions(model, images, "lrp_epsilon_plus")  # LRP, rules per layer
"""
import importlib
import importlib.util

from .methods.presets import BUILTIN

#: Public name -> (module, attribute; None for the module itself), imported on first use (see below).
_EXPORTS = {
    **{b.class_name: (".api", b.class_name) for b in BUILTIN},  # one class per built-in method
    "Explainer": (".api", "Explainer"),
    "attributions": (".api", "attributions"),
    "explain": (".api", "explain"),
    "list_methods": (".api", "list_methods"),
    "Method": (".methods.method", "Method"),
    "Composite": (".methods.composites", "Composite"),
    "register_method": (".methods.registry", "register_method"),
    "PartialResultError": (".errors", "PartialResultError"),
    "ModelOutputError": (".errors", "ModelOutputError"),
    "EvaluationResult": (".evaluation", "EvaluationResult"),
    "evaluate": (".evaluation", "evaluate"),
    "load_imagenet_s": (".io.imagenet_s", "load_imagenet_s"),
    "reverse_maps": (".methods.reversed", "reverse_maps"),
    "MAE": (".metrics", "MAE"),
    "METRICS": (".metrics", "METRICS"),
    "RCAP": (".metrics", "RCAP"),
    "Deletion": (".metrics", "Deletion"),
    "Insertion": (".metrics", "Insertion"),
    "LogCoshDice": (".metrics", "LogCoshDice"),
    "ModelAdapter": (".model", "ModelAdapter"),
    "Preprocessing": (".model", "Preprocessing"),
    "load_model": (".model", "load_model"),
    "export_saved_model": (".tools.serving", "export_saved_model"),
    "imageio": (".io.imageio", None),
    "assets": (".tools.assets", None),
    "viz": (".tools.viz", None),
    "metrics": (".metrics", None),
    "lrp": (".methods.lrp", None),
    "sanity": (".sanity", None),
}


def __getattr__(name):
    """Import a public name's module on first use.

    Importing ``tf_gag`` itself does not import TensorFlow, so the ``tf-gag``
    command can quiet TensorFlow's start-up log before TensorFlow loads, and
    ``import tf_gag`` stays cheap. Submodules (``tf_gag.model``, ...) load the same way.
    """
    if name in _EXPORTS:
        module_name, attribute = _EXPORTS[name]
        module = importlib.import_module(module_name, __name__)
        value = module if attribute is None else getattr(module, attribute)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = sorted(_EXPORTS)
