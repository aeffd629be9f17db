"""Reuse objects built for a model across one-line calls, so their graphs are not traced again."""
import collections


class RecentCache:
    """The ``size`` most recently used objects, each built for one model and settings.

    Keys are the model's identity plus hashable settings; the cache keeps the
    model alive until its entries drop out. Settings that cannot be hashed
    (an array option) get a fresh object every time.
    """

    def __init__(self, size):
        self.size = size
        self._entries = collections.OrderedDict()

    def get(self, model, settings, build):
        """The cached object for (model, settings), or ``build()``'s result, now cached."""
        key = (id(model), tuple(sorted(settings.items())))
        try:
            cached = self._entries.get(key)
        except TypeError:
            return build()
        if cached is not None and cached[0] is model:
            self._entries.move_to_end(key)
            return cached[1]
        built = build()
        self._entries[key] = (model, built)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return built
