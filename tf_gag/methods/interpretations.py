"""How each contribution is read: part (2) of every gradient method.

``signed`` keeps the contribution as it is, ``positive`` / ``negative`` keep
one part (the paper's "+" and "-" ablations), ``absolute`` its magnitude
(AbsoluteGrad, the paper's "A"). Applied to every sample before aggregation.
"""
import tensorflow as tf


def signed(contributions):
    return contributions


def positive(contributions):
    return tf.maximum(contributions, 0.0)


def negative(contributions):
    return tf.minimum(contributions, 0.0)


def absolute(contributions):
    return tf.abs(contributions)


INTERPRETATIONS = {"signed": signed, "positive": positive, "negative": negative, "absolute": absolute}
