"""tf.distribute across processes: two MultiWorkerMirroredStrategy workers give the single-process maps and scores.

Two worker processes on 127.0.0.1 (``TF_CONFIG``, CPU only, one replica
each) explain and evaluate the same images; a third process runs the same
calls without a strategy. Each worker runs whole groups in the chunks one
process runs (`tf_gag.distribute`), so the chief's maps and scores must equal
the single-process ones bit for bit, and the other worker must hold the same
full results: the gather hands every worker all rows. The processes run under one deadline and are killed
and reaped in every case.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tf_gag

DEADLINE_S = 600
METHODS = {
    "vanilla_gradient": {},
    "smoothgrad": {"n_samples": 4},
    "integrated_gradients": {"steps": 4},
    "guided_backprop": {},
    "grad_cam": {},
    "guided_absolute_grad": {"n_samples": 4},
}

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import tensorflow as tf
    # With TF_CONFIG: a worker. The strategy must exist before any other TensorFlow op runs.
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if "TF_CONFIG" in os.environ else None
    import numpy as np
    import tf_gag
    from reference import small_mobilenet
    from tf_gag import assets

    # One ModelAdapter for every call below: the forward pass is traced once, not once per explainer built.
    model = tf_gag.ModelAdapter(small_mobilenet())
    images = (assets.photos(("chelsea", "coffee", "astronaut"), size=64) / 127.5 - 1).astype(np.float32)
    out = {"replicas": 1 if strategy is None else strategy.num_replicas_in_sync}
    for method, options in json.loads(sys.argv[2]).items():
        out["map_" + method] = tf_gag.explain(model, images, method, batch_size=2, strategy=strategy, **options)
    labelled = tf.data.Dataset.from_tensor_slices((images, np.array([1, 2, 3])))
    out["dataset"] = tf_gag.explain(model, labelled, "vanilla_gradient", batch_size=2, strategy=strategy)
    # Top classes as targets, as in the MirroredStrategy test.
    scores = tf_gag.evaluate(model, tf.data.Dataset.from_tensor_slices(images), "vanilla_gradient", batch_size=2,
                             strategy=strategy)
    out.update({"score_" + metric: scores[metric] for metric in scores})
    np.savez(sys.argv[1], **out)
    """
)


def free_ports(count):
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago (bound to port 0 together)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_processes(folder, configs):
    """Start one SCRIPT process per ``TF_CONFIG`` (None: single process); {name: results}, or a failure with logs.

    The processes share one deadline; once one fails the others are not waited
    for. Whatever happens, every process still running is killed and reaped.
    """
    python_path = os.path.dirname(os.path.dirname(os.path.abspath(tf_gag.__file__)))
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # reference.small_mobilenet
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                PYTHONPATH=os.pathsep.join(filter(None, [python_path, tests, os.environ.get("PYTHONPATH")])))
    base.pop("TF_CONFIG", None)
    processes, logs = {}, {}
    try:
        for name, config in configs.items():
            env = base if config is None else dict(base, TF_CONFIG=json.dumps(config))
            logs[name] = open(folder / f"{name}.log", "w")
            processes[name] = subprocess.Popen(
                [sys.executable, "-c", SCRIPT, str(folder / f"{name}.npz"), json.dumps(METHODS)],
                stdout=logs[name], stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            codes = [p.poll() for p in processes.values()]
            if all(code is not None for code in codes) or any(codes):
                break
            time.sleep(0.5)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        for log in logs.values():
            log.close()
    codes = {name: p.returncode for name, p in processes.items()}
    if any(codes.values()):
        report = "\n".join(
            f"--- {name}: exit code {code}" + (f" (killed: not done within {DEADLINE_S} s or after another failed)"
                                                if code == -9 else "")
            + "\n" + (folder / f"{name}.log").read_text()[-3000:]
            for name, code in codes.items()
        )
        pytest.fail(f"a process failed:\n{report}")
    return {name: dict(np.load(folder / f"{name}.npz")) for name in configs}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    configs = {f"worker{i}": {"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(2)}
    return run_processes(tmp_path_factory.mktemp("multiworker"), {**configs, "single": None})


def test_two_workers_give_the_single_process_maps(results):
    chief, single = results["worker0"], results["single"]
    assert chief["replicas"] == 2
    for method in METHODS:
        # Same chunks, same kernels, noise and baselines seeded per (image, sample): equal.
        np.testing.assert_array_equal(chief["map_" + method], single["map_" + method], err_msg=method)
    np.testing.assert_array_equal(chief["dataset"], single["dataset"])


def test_two_workers_give_the_single_process_scores(results):
    chief, single = results["worker0"], results["single"]
    metrics = [key for key in single if key.startswith("score_")]
    assert metrics == ["score_rcap", "score_dauc", "score_iauc"]
    for metric in metrics:
        assert chief[metric].shape == (3,), metric
        np.testing.assert_array_equal(chief[metric], single[metric], err_msg=metric)


def test_every_worker_holds_all_results(results):
    chief, other = results["worker0"], results["worker1"]
    assert sorted(other) == sorted(chief)
    for key in chief:
        np.testing.assert_array_equal(other[key], chief[key], err_msg=key)
