"""How each contribution is read before it is folded: part 4 of a method.

``signed`` keeps the contribution as it is, ``positive`` / ``negative`` keep one
part (the paper's "+" and "-" ablations), ``absolute`` its magnitude
(AbsoluteGrad, the paper's "A"), ``square`` its square (SmoothGrad-Squared, as in
PAIR's and xplique's SquareGrad). Applied to every sample's contribution.
"""
import tensorflow as tf

from .part import Part


class Interpretation(Part):
    """A per-element map of contributions; no options."""

    def __call__(self, contributions):
        raise NotImplementedError


class Signed(Interpretation):
    name = "signed"

    def __call__(self, contributions):
        return contributions


class Positive(Interpretation):
    name = "positive"

    def __call__(self, contributions):
        return tf.maximum(contributions, 0.0)


class Negative(Interpretation):
    name = "negative"

    def __call__(self, contributions):
        return tf.minimum(contributions, 0.0)


class Absolute(Interpretation):
    name = "absolute"

    def __call__(self, contributions):
        return tf.abs(contributions)


class Square(Interpretation):
    name = "square"

    def __call__(self, contributions):
        return tf.square(contributions)


INTERPRETATIONS = {cls.name: cls for cls in (Signed, Positive, Negative, Absolute, Square)}
