"""`load_model`: one call for ONNX files, SavedModels, Keras files and the model zoo.

An ``.onnx`` file is converted once, in a child process (``python -m
converters.onnx_to_savedmodel``: onnx2tf changes TensorFlow's global state, so
this process never imports it), into a SavedModel cached under
``$TF_GAG_CACHE`` (default ``~/.cache/tf_gag``). The cache key is the ONNX
file's SHA-256 plus the options; an entry is built in a temporary folder and
moved into place only when complete, and carries a manifest of its files'
hashes, so a corrupted entry is detected and rebuilt.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from typing import Optional, Sequence

import tensorflow as tf

from converters import FORMAT

from ..io.types import PathLike
from ..reuse import PerKey
from .adapter import ModelAdapter, Preprocessing

ZOO = ("efficientnet_lite0",)
ERROR_PREFIX = "tf_gag-conversion-error: "  # what converters.onnx_to_savedmodel prints on a user error
_MANIFEST = "manifest.json"
_PICKLE, _ZIP = b"\x80", b"PK\x03\x04"


def cache_dir(override=None):
    """The conversion cache: ``override``, else ``$TF_GAG_CACHE``, else ``~/.cache/tf_gag``."""
    return os.path.abspath(os.path.expanduser(override or os.environ.get("TF_GAG_CACHE") or "~/.cache/tf_gag"))


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(folder):
    return {
        os.path.relpath(os.path.join(root, name), folder): _sha256(os.path.join(root, name))
        for root, _, names in os.walk(folder)
        for name in names
        if name != _MANIFEST
    }


def fingerprint(model):
    """SHA-256 of a model file's bytes or of a model folder's files (names and contents); None for a zoo name.

    What a resumed benchmark compares, so that a model replaced at the same
    path is not mixed with results of the one before.
    """
    if os.path.isfile(model):
        return _sha256(model)
    if os.path.isdir(model):
        return hashlib.sha256(json.dumps(sorted(_manifest(model).items())).encode()).hexdigest()
    return None


def _entry_is_valid(folder):
    try:
        with open(os.path.join(folder, _MANIFEST)) as f:
            return json.load(f) == _manifest(folder)
    except (OSError, ValueError):
        return False


def _run(args, what, path):
    """Run a converter step in a child process; raise one clear error naming ``path`` on failure."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env)
    if done.returncode == 0:
        return
    lines = done.stderr.strip().splitlines()
    reported = [line[len(ERROR_PREFIX):] for line in lines if line.startswith(ERROR_PREFIX)]
    if reported:
        raise ValueError(f"{path}: {reported[-1]}")
    missing = [line for line in lines if "ModuleNotFoundError" in line]
    if missing:
        raise ImportError(
            f"{path}: {what} needs packages that are not installed ({missing[-1].split(': ', 1)[-1]}); "
            "see the README's ONNX section for the install command"
        )
    raise RuntimeError(f"{path}: {what} failed:\n" + "\n".join(lines[-15:]))


def _check_onnx_file(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"model: {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:1] == _PICKLE or head == _ZIP:
        raise ValueError(
            f"{path}: this looks like a PyTorch checkpoint (pickle or zip), not ONNX; tf_gag does not unpickle "
            "files. Export the model with converters.torch_to_onnx.export(module, 'model.onnx') first"
        )


def _check_onnx_model(path):
    """Refuse an ONNX file the converter would refuse (invalid, several inputs, not NCHW) without starting it.

    Runs `converters.onnx_checks` in this process (they import ``onnx`` alone); without ``onnx`` installed the
    child process reports the missing package instead.
    """
    try:
        from converters.onnx_checks import ConversionError, image_input, load_checked
    except ImportError:
        return
    try:
        image_input(load_checked(path))
    except ConversionError as error:
        raise ValueError(f"{path}: {error}") from None


def _convert(onnx_path, root, options, metadata=None):
    """The cached SavedModel folder for ``onnx_path`` with ``options``, converting when needed."""
    _check_onnx_file(onnx_path)
    keyed = json.dumps({**options, "format": FORMAT}, sort_keys=True)
    key = hashlib.sha256((_sha256(onnx_path) + keyed).encode()).hexdigest()[:32]
    final = os.path.join(root, "onnx", key)
    if os.path.isdir(final):
        if _entry_is_valid(final):
            return final
        warnings.warn(f"model: the cache entry {final} is incomplete or corrupted; converting again", stacklevel=3)
        shutil.rmtree(final, ignore_errors=True)
    _check_onnx_model(onnx_path)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".converting-", dir=os.path.dirname(final))
    try:
        spec = os.path.join(staging, "spec.json")
        with open(spec, "w") as f:
            json.dump({"onnx": os.path.abspath(onnx_path), "out": staging, **options, "metadata": metadata}, f)
        _run(["converters.onnx_to_savedmodel", spec], "converting the ONNX model", onnx_path)
        os.remove(spec)
        with open(os.path.join(staging, _MANIFEST), "w") as f:
            json.dump(_manifest(staging), f)
        try:
            os.replace(staging, final)
        except OSError:  # another process finished the same entry first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _zoo_onnx(name, root):
    """The zoo model's ONNX file and metadata, exported from PyTorch once into the cache."""
    folder = os.path.join(root, "zoo", name)
    onnx_path, meta_path = os.path.join(folder, f"{name}.onnx"), os.path.join(folder, "metadata.json")
    if not (os.path.exists(onnx_path) and os.path.exists(meta_path)):
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".exporting-", dir=os.path.dirname(folder))
        try:
            _run(
                ["converters.zoo", name, os.path.join(staging, f"{name}.onnx"), os.path.join(staging, "metadata.json")],
                "exporting the zoo model from PyTorch",
                name,
            )
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    with open(meta_path) as f:
        return onnx_path, json.load(f)


def _from_saved_model(folder, preprocessing, classes, output):
    meta = {}
    meta_path = os.path.join(os.path.dirname(folder.rstrip(os.sep)), "metadata.json")
    if os.path.basename(folder.rstrip(os.sep)) == "saved_model" and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    frozen = meta.get("frozen")
    if frozen:  # the flat logits graph beside the SavedModel: absolute, for the adapter
        meta["frozen"] = {**frozen, "path": os.path.join(os.path.dirname(folder.rstrip(os.sep)), frozen["file"])}
    loaded = tf.saved_model.load(folder)
    if preprocessing is None and meta.get("preprocessing"):
        preprocessing = Preprocessing(**meta["preprocessing"])
    return ModelAdapter(
        loaded, output=output, preprocessing=preprocessing, classes=classes or meta.get("classes"), metadata=meta
    )


def _load_keras_file(path):
    """The Keras model in a ``.keras`` or ``.h5`` file, loaded in Keras' safe mode.

    A Lambda layer saves its Python function as bytecode, which loading would
    run. Keras' safe mode refuses it, but its message says to pass
    ``safe_mode=False`` "to the loading function", which `load_model` does not
    take: tf_gag runs no code from model files. So the refusal is reported
    with the file's name and the way to load a file one trusts.
    """
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as error:
        message = str(error)
        if "safe_mode=False" not in message:  # what every refusal of Keras' safe mode says
            raise
        refused = message.split(". ")[0]  # Keras' first sentence: what it refused to deserialize
        if "`Lambda` layer" in refused:
            held = "Python code (a Lambda layer), which tf_gag will not run"
        else:
            held = f"what Keras' safe mode refuses to load ({refused})"
        raise ValueError(
            f"model: {path} holds {held}. If you trust the file, load it yourself with "
            f"keras.saving.load_model({path!r}, safe_mode=False) and pass the model object to tf_gag"
        ) from None


def load_model(path: PathLike, *, preprocessing: Optional[Preprocessing] = None,
               classes: Optional[Sequence[str]] = None, feature: Optional[str] = None, output: str = "auto",
               cache: Optional[PathLike] = None) -> ModelAdapter:
    """Load a classifier for `explain`/`evaluate` as a `ModelAdapter`.

    Args:
      path: an ``.onnx`` file (converted on first use, then cached), a
        SavedModel folder, a ``.keras`` or legacy ``.h5`` Keras file (loaded
        in Keras' safe mode: a file with a Lambda layer's Python code is
        refused), or a zoo name (``"efficientnet_lite0"``: real ImageNet
        weights, its preprocessing and class names).
      preprocessing: pixel -> input mapping, when the file does not carry it.
      classes: class names, when the file does not carry them.
      feature: ONNX only: the tensor to split at for Grad-CAM (default: the
        last 4-D feature map with h, w > 1 that convolutions made; a model
        without one loads without a Grad-CAM layer).
      output: as for `ModelAdapter`.
      cache: the conversion cache folder (default ``$TF_GAG_CACHE`` or ``~/.cache/tf_gag``).
    """
    path = os.fspath(path)
    root = cache_dir(cache)
    if path in ZOO:
        onnx_path, meta = _zoo_onnx(path, root)
        folder = _convert(onnx_path, root, {"feature": "features"}, meta)
        return _from_saved_model(os.path.join(folder, "saved_model"), preprocessing, classes, output)
    if path.endswith(".onnx"):
        folder = _convert(path, root, {"feature": feature})
        return _from_saved_model(os.path.join(folder, "saved_model"), preprocessing, classes, output)
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise ValueError(f"model: {path} is a folder without saved_model.pb, so not a SavedModel")
        return _from_saved_model(path, preprocessing, classes, output)
    if not os.path.exists(path):
        hint = f"; zoo models are {list(ZOO)}" if os.sep not in path and "." not in path else ""
        raise FileNotFoundError(f"model: {path} does not exist{hint}")
    if path.endswith((".keras", ".h5")):
        return ModelAdapter(_load_keras_file(path), output=output, preprocessing=preprocessing, classes=classes)
    _check_onnx_file(path)
    raise ValueError(
        f"model: {path}: expected a .onnx, .keras or .h5 file, a SavedModel folder or a zoo name {list(ZOO)}"
    )


#: Models loaded by path or zoo name, keyed by (path, cache folder): loaded once per process, under a lock.
_LOADED = PerKey(lambda key: load_model(key[0], cache=key[1]))


def resolve_model(model):
    """``model`` itself, or for a path or zoo name the `ModelAdapter` of `load_model` (loaded once)."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    name = os.fspath(model)
    return _LOADED.get((name if name in ZOO else os.path.abspath(name), cache_dir()))
