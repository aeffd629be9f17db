"""tf.distribute: MirroredStrategy over two logical CPU devices gives the single-device maps and scores, bit for bit.

Each replica runs whole groups of ``batch_size`` images in the chunks one
device runs (`tf_gag.distribute`), so the same kernels see the same shapes and
the results are equal, not merely close: the assertions are exact. Three
images at ``batch_size=2`` make two groups of different sizes (one per
replica); at ``batch_size=4`` one group, and the idle replica's copy is
dropped. Logical devices must be configured before TensorFlow starts, so the
check runs in a fresh Python process.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.kernels  # float32 against exact or float64 expectations: tests/other_kernels.sh

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    import tf_gag
    from reference import small_mobilenet
    from tf_gag import assets

    # One ModelAdapter for every call below: the forward pass is traced once, not once per explainer built.
    model = tf_gag.ModelAdapter(small_mobilenet())
    images = (assets.photos(("chelsea", "coffee", "astronaut"), size=64) / 127.5 - 1).astype(np.float32)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {"replicas": strategy.num_replicas_in_sync, "maps": {}}
    for method in ("guided_absolute_grad", "smoothgrad", "vargrad", "integrated_gradients", "blur_ig",
                   "guided_backprop", "grad_cam"):
        count = "steps" if method in ("integrated_gradients", "blur_ig") else "n_samples"
        options = {} if method in ("guided_backprop", "grad_cam") else {count: 6}
        one = tf_gag.explain(model, images, method, batch_size=2, **options)
        two = tf_gag.explain(model, images, method, batch_size=2, strategy=strategy, **options)
        out["maps"][method] = float(np.abs(one - two).max())
    dataset = tf.data.Dataset.from_tensor_slices((images, np.array([1, 2, 3])))
    one = tf_gag.explain(model, images, "vanilla_gradient", [1, 2, 3], batch_size=4)
    two = tf_gag.explain(model, dataset, "vanilla_gradient", batch_size=4, strategy=strategy)
    out["dataset"] = float(np.abs(one - two).max())
    single = tf_gag.evaluate(model, images, "vanilla_gradient", batch_size=2)
    mirrored = tf_gag.evaluate(model, images, "vanilla_gradient", batch_size=2, strategy=strategy)
    out["scores"] = {m: float(np.abs(single[m] - mirrored[m]).max()) for m in single}
    try:
        tf_gag.Explainer(model, "guided_ig", strategy=strategy)
    except ValueError as error:
        out["guided_ig"] = str(error)
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def mirrored():
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # reference.small_mobilenet
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), tests,
                                                                    os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_two_replicas_give_the_single_device_maps(mirrored):
    assert mirrored["replicas"] == 2
    for method, difference in mirrored["maps"].items():
        # Same chunks, same kernels, noise and baselines seeded per (image, sample): equal.
        assert difference == 0.0, method
    assert mirrored["dataset"] == 0.0


def test_two_replicas_give_the_single_device_scores(mirrored):
    # The maps are equal and every chunk of (image, step) jobs is scored on the same shapes: equal scores.
    assert set(mirrored["scores"]) == {"rcap", "dauc", "iauc"}
    for metric, difference in mirrored["scores"].items():
        assert difference == 0.0, metric


def test_guided_ig_is_refused_by_name(mirrored):
    assert mirrored["guided_ig"].startswith("strategy: guided_ig chooses each step")
