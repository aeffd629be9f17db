"""Exceptions that carry what was computed before a failure, or what a model returned that tf_gag cannot use."""
import numpy as np

from .io.checks import rows_where


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
    """A model returned something other than one (N, classes) tensor of finite values; the message names what.

    A wrong structure is found while TensorFlow traces the model, where
    AutoGraph re-raises it wrapped in its "in user code" trace; `unwrapped`
    finds it again. NaN or Inf values are found in the outputs computed
    (`require_finite`).
    """

    @classmethod
    def require_finite(cls, outputs, first=0, *, composed=False):
        """Raise one naming the images whose rows of (n, ...) model ``outputs`` hold NaN or Inf.

        Row i is image ``first + i`` of the caller's images. ``composed``: the
        rows are scores of the images a metric composed from each image
        (revealed, deleted or blurred copies), not of the image itself.
        Non-finite outputs would make every map or score of those images NaN
        without an error, so they stop the run here.
        """
        bad = [first + row for row in rows_where(~np.isfinite(np.asarray(outputs, np.float64)))]
        if not bad:
            return
        on = "the images the metrics composed from image(s)" if composed else "image(s)"
        raise cls(
            f"model: expected finite outputs (logits or probabilities), got NaN or Inf for {on} {bad}; "
            "tf_gag cannot explain or score those images"
        )

    @staticmethod
    def unwrapped(error):
        """The `ModelOutputError` that ``error`` is or wraps (AutoGraph keeps it as the context), or None."""
        while error is not None and not isinstance(error, ModelOutputError):
            error = error.__context__
        return error
