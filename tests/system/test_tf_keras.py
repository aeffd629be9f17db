"""Keras 2 (tf_keras) models, in a process that loads them with TF_USE_LEGACY_KERAS=1: every method.

Compared with the same network as a Keras 3 model with the same weights (the path every other test checks
against torch and closed forms), and Vanilla Gradient with a plain tape over the tf_keras model's logits.
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

if importlib.util.find_spec("tf_keras") is None:  # never import it here: it is for the subprocess only
    pytest.skip("tf_keras is not installed (the README's test command installs it)", allow_module_level=True)

SCRIPT = textwrap.dedent('''
    import json, os
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf
    import keras
    import tf_keras
    import tf_gag
    from tf_gag import assets

    assert tf.keras is tf_keras or tf.keras.__name__.startswith("tf_keras")
    def build(api):
        inputs = api.Input((24, 24, 3))
        x = api.layers.Conv2D(6, 3, activation="relu", name="conv1")(inputs)
        x = api.layers.BatchNormalization(name="bn")(x)
        x = api.layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
        x = api.layers.GlobalAveragePooling2D()(x)
        logits = api.layers.Dense(4, name="dense")(x)
        return api.Model(inputs, api.layers.Activation("softmax")(logits))

    legacy = build(tf_keras)
    modern = build(keras)
    rng = np.random.default_rng(0)
    def drawn(w, name):  # a running variance must stay positive
        value = rng.normal(scale=0.4, size=w.shape).astype(np.float32)
        return np.abs(value) + 0.5 if "variance" in name else value
    legacy.set_weights([drawn(w, v.name) for w, v in zip(legacy.get_weights(), legacy.weights)])
    modern.set_weights(legacy.get_weights())
    x = ((assets.photos(("chelsea", "coffee", "astronaut"), size=24) - 127.5) / 127.5).astype(np.float32)
    out = {"kind": type(tf_gag.ModelAdapter(legacy).backend).__name__, "maps": {}}
    for method in ("vg", "gb", "grad_cam", "ig", "gag", "rectgrad", "ggig"):
        options = {"n_samples": 4} if method == "gag" else {"steps": 4} if method == "ig" else {}
        ours = tf_gag.attributions(legacy, x, method, 1, **options)
        twin = tf_gag.attributions(modern, x, method, 1, **options)
        out["maps"][method] = float(np.abs(ours - twin).max() / max(np.abs(twin).max(), 1e-12))
    logits = tf_keras.Model(legacy.inputs, legacy.get_layer("dense").output)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = logits(xt)[:, 1]
    tape_grad = tape.gradient(score, xt).numpy()
    vg = tf_gag.attributions(legacy, x, "vg", 1)
    out["vg_vs_tape"] = float(np.abs(vg - tape_grad).max() / np.abs(tape_grad).max())
    scores = tf_gag.evaluate(legacy, x, "vg", 1, metrics=("rcap", "dauc"))
    twin_scores = tf_gag.evaluate(modern, x, "vg", 1, metrics=("rcap", "dauc"))
    out["scores"] = float(max(np.abs(scores[m] - twin_scores[m]).max() for m in ("rcap", "dauc")))
    before = [w.copy() for w in legacy.get_weights()]
    sanity = tf_gag.sanity.randomization(legacy, x, ["vg", "gb"])
    out["sanity_steps"] = sanity.steps
    out["unchanged"] = all(np.array_equal(a, b) for a, b in zip(before, legacy.get_weights()))
    print("RESULT " + json.dumps(out))
''')


def test_tf_keras_models_get_every_method():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["kind"] == "KerasBackend"
    for method, error in result["maps"].items():
        assert error < 1e-5, (method, error)
    assert result["vg_vs_tape"] < 1e-5
    assert result["scores"] < 1e-5
    assert result["sanity_steps"] == ["dense", "conv2", "bn", "conv1"]
    assert result["unchanged"]
