"""RCAP, DAUC and IAUC against the authors' PyTorch package (mlxops-xai 0.4.0) on the same Lite0 weights.

Runs only where the torch environment of the benchmarks exists (``.venv-torch``
with torch, torchvision and mlxops-xai: benchmarks/README.md) or
``TF_GAG_TORCH_PYTHON`` names one; skipped otherwise. The full comparison is
``python -m benchmarks.parity``.
"""
import os
import subprocess

import numpy as np
import pytest

from benchmarks import parity, torch_env
from benchmarks.torch_side import IMAGENET_MEAN, IMAGENET_STD

TORCH_PYTHON = os.environ.get("TF_GAG_TORCH_PYTHON", torch_env.DEFAULT_PYTHON)


def _has_reference():
    if not os.path.exists(TORCH_PYTHON):
        return False
    return subprocess.run([TORCH_PYTHON, "-c", "import torch, torchvision, mlxops_xai"],
                          capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    not _has_reference(), reason="no torch environment with mlxops-xai (benchmarks/README.md)"
)


def test_metrics_equal_the_reference_on_identical_maps(tmp_path):
    import tf_gag
    from tf_gag import assets

    model = parity.imagenet_space_model()
    pixels = assets.photos(("coffee", "chelsea"), size=224)
    images = ((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
    targets = np.array([967, 285], np.int32)  # espresso, tabby cat: the photos' true classes
    gradient_maps = tf_gag.explain(model, images, "vg", targets)
    # One continuous map, and one with large ties (8 levels), where the tie rules of the conventions differ.
    maps = np.stack([gradient_maps[0], np.round(gradient_maps[1] * 8) / 8]).astype(np.float32)
    reference = [metric(convention="reference") for metric in (tf_gag.RCAP, tf_gag.Deletion, tf_gag.Insertion)]
    ours = tf_gag.evaluate(model, images, maps, targets, metrics=reference, batch_size=10)

    inputs, out = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(inputs, images=images.transpose(0, 3, 1, 2), targets=targets, maps=maps)
    torch_env.run(TORCH_PYTHON, "metrics", str(inputs), str(out))
    theirs = np.load(out)
    for name in ("rcap", "dauc", "iauc"):
        np.testing.assert_allclose(ours.scores[name], theirs[name], atol=1e-4, err_msg=name)
