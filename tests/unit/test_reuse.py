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
