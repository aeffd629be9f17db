"""Exceptions that carry what was computed before a failure."""


class PartialResultError(RuntimeError):
    """A batch failed part-way; the results already computed are kept.

    Attributes:
      partial: the output, filled for the completed images: the attributions or
        maps array (zeros elsewhere), or `evaluate`'s `EvaluationResult` (NaN elsewhere).
      completed: boolean mask over images, True where ``partial`` is final.
    """

    def __init__(self, message, partial, completed):
        super().__init__(message)
        self.partial = partial
        self.completed = completed

    @classmethod
    def after_images(cls, what, error, result, done):
        """``what`` failed with ``error`` once the images marked in ``done`` were finished in ``result``."""
        return cls(f"{what} failed after {int(done.sum())} of {len(done)} images: {error}", result, done)


class ModelOutputError(ValueError):
    """A model returned something other than one (N, classes) tensor; the message names what it returned.

    Raised while TensorFlow traces the model, where AutoGraph re-raises it
    wrapped in its "in user code" trace; `unwrapped` finds it again.
    """

    @staticmethod
    def unwrapped(error):
        """The `ModelOutputError` that ``error`` is or wraps (AutoGraph keeps it as the context), or None."""
        while error is not None and not isinstance(error, ModelOutputError):
            error = error.__context__
        return error
