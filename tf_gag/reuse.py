"""Reuse what was built (explainers, compiled graphs) across calls, safely from several threads."""
import collections
import threading

import numpy as np


class PerKey:
    """``build(key)``'s result for each key, built once and kept (a compiled graph per image size, a model per path).

    Thread-safe: two threads asking for the same new key get the same
    object, built once; a slow build (a conversion) holds only its own key's
    lock, so other keys are served meanwhile. Keys are few and chosen by the
    caller (image sizes, paths, strategies), so nothing is evicted.
    """

    def __init__(self, build):
        self._build = build
        self._built = {}
        self._building = {}
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._built:
                return self._built[key]
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._built:
                    return self._built[key]
            built = self._build(key)
            with self._lock:
                self._built[key] = built
                self._building.pop(key, None)
            return built

    def items(self):
        """(key, object) pairs built so far."""
        with self._lock:
            return list(self._built.items())


#: The largest array (elements) a cache key holds by value; a larger one gets a fresh object every time.
_KEYED_ELEMENTS = 1 << 16


def frozen(value):
    """``value`` as a hashable key: lists and tuples as tuples, dicts as sorted items, small numpy arrays by
    dtype, shape and bytes (so a list or array option reuses what was built for equal values)."""
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, frozen(v)) for k, v in value.items()))
    if isinstance(value, np.ndarray) and value.size <= _KEYED_ELEMENTS:
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    return value


class RecentCache:
    """The ``size`` most recently used objects, each built for one model and settings.

    Keys are the model's identity plus the settings, `frozen`; the cache keeps
    the model alive until its entries drop out. Settings that still cannot be
    hashed (a large array) get a fresh object every time. Thread-safe: lookups and
    evictions hold a lock; building happens outside it, so a slow build does
    not stall other models' lookups (two threads may then build the same
    entry once each; the later one is kept).
    """

    def __init__(self, size):
        self.size = size
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, model, settings, build):
        """The cached object for (model, settings), or ``build()``'s result, now cached."""
        key = (id(model), frozen(settings))
        try:
            hash(key)
        except TypeError:
            return build()
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached[0] is model:
                self._entries.move_to_end(key)
                return cached[1]
        built = build()
        with self._lock:
            self._entries[key] = (model, built)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return built
