"""What every part of a method shares: its options (name -> default) and how it describes itself."""


class Part:
    """A part of a method; subclasses list their ``options`` and keep each as an attribute of that name."""

    name = ""
    options = {}

    def describe(self):
        """{option: value} of this part, for reprs and `list_methods`."""
        return {key: getattr(self, key) for key in self.options}

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"{type(self).__name__}({settings})"
