"""A stand-in ``torchvision`` for the torch peers that import it but, here, never use it.

torchvision is not installed (its wheels pin torch versions other than the
one tf_gag's zoo uses). Two peers import it at import time only:

* pytorch-grad-cam 1.5.7: ``utils/image.py`` (Compose, Normalize, ToTensor
  for its preprocessing helper), ``sess.py`` (resize) and
  ``utils/model_targets.py`` (``torchvision.ops.box_iou`` of a detection
  target), none of which the compared CAMs call;
* zennit 0.5.1: ``zennit.torchvision`` (ResNet's BasicBlock and Bottleneck,
  for its ResNet canonizer, which the parity tests do not use).

`stand_in` puts placeholder modules in ``sys.modules`` while such a peer
imports and removes them after. Placeholder functions raise if called; the
placeholder block classes are empty classes no module is an instance of. A
real torchvision, when installed, is used as is.
"""
import contextlib
import importlib.util
import sys
import types


def _missing(name):
    def fail(*args, **kwargs):
        raise RuntimeError(f"torchvision.{name} is a placeholder (torchvision is not installed)")

    return fail


@contextlib.contextmanager
def stand_in():
    """``torchvision`` (and the submodules the peers import) as placeholders while the block runs."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops",
             "torchvision.models", "torchvision.models.resnet")
    modules = {name: types.ModuleType(name) for name in names}
    for name in ("Compose", "Normalize", "ToTensor"):
        setattr(modules["torchvision.transforms"], name, _missing(f"transforms.{name}"))
    modules["torchvision.transforms.functional"].resize = _missing("transforms.functional.resize")
    modules["torchvision.ops"].box_iou = _missing("ops.box_iou")
    for name in ("BasicBlock", "Bottleneck"):
        setattr(modules["torchvision.models.resnet"], name, type(name, (), {}))
    for name in names[1:]:  # each submodule as an attribute of its parent
        parent, _, child = name.rpartition(".")
        setattr(modules[parent], child, modules[name])
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in modules:
            sys.modules.pop(name, None)
