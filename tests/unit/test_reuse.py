"""The locked caches: one build per key, and a slow build holds only its own key."""
import threading

from tf_gag.reuse import PerKey


def test_one_build_per_key_and_a_slow_key_does_not_block_others():
    started, release, builds = threading.Event(), threading.Event(), []

    def build(key):
        builds.append(key)
        if key == "slow":
            started.set()
            assert release.wait(10), "the slow build was never released"
        return f"built {key}"

    cache = PerKey(build)
    results = []
    slow = [threading.Thread(target=lambda: results.append(cache.get("slow"))) for _ in range(3)]
    for thread in slow:
        thread.start()
    assert started.wait(10)
    assert cache.get("fast") == "built fast"  # served while "slow" is still building
    release.set()
    for thread in slow:
        thread.join(10)
    assert results == ["built slow"] * 3 and sorted(builds) == ["fast", "slow"]
    assert dict(cache.items()) == {"slow": "built slow", "fast": "built fast"}


def test_methods_built_one_after_another_trace_once_and_log_no_retracing_warning(caplog):
    """Six Explainers in a row (as the demo builds them): each step traced once, and TensorFlow's retracing
    detector, which keys on the Python function every Engine's step shares, stays silent."""
    import logging

    import keras
    import numpy as np

    import tf_gag

    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    images = np.random.default_rng(0).normal(size=(4, 12, 12, 3)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for method in ("gag", "sg", "ig", "gb", "grad_cam", "vg"):
            explainer = tf_gag.Explainer(model, method, n_samples=3) if method in ("gag", "sg") else \
                tf_gag.Explainer(model, method)
            explainer.explain(images, 0)
            assert set(explainer.tracing_counts().values()) == {1}, method
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_list_and_array_options_reuse_what_was_built_for_equal_values():
    """`explain` keeps its explainers in a RecentCache by model, method and options: list and array options are
    keyed by value, so a call with equal ones reuses the traced explainer instead of building another."""
    import numpy as np

    from tf_gag.reuse import RecentCache

    cache, model, builds = RecentCache(4), object(), []

    def get(**settings):
        return cache.get(model, settings, lambda: builds.append(settings) or len(builds))

    first = get(low=[0.0, -1.0], high=np.array([1.0, 2.0], np.float32))
    assert get(high=np.array([1.0, 2.0], np.float32), low=(0.0, -1.0)) == first and len(builds) == 1
    assert get(low=[0.0, -2.0], high=np.array([1.0, 2.0], np.float32)) != first  # other values: built anew
    assert get(low=[0.0, -1.0], high=np.array([1.0, 2.0], np.float64)) != first  # another dtype too
    huge = np.zeros(1 << 17, np.float32)  # too large to key by value: a fresh object every time
    assert get(baseline=huge) != get(baseline=huge) and len(builds) == 5
