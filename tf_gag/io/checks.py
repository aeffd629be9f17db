"""One validator style for every scalar option and selection: a ValueError reading ``name: expected X, got Y``.

Methods, metrics, sanity checks, the readers and the command line check
their numbers here, so every entry refuses the same things in the same words:

* a bool is not a number (``True`` would silently count as 1);
* a string, None or any other object is refused, not compared or converted;
* NaN and Inf are refused: they never fail where they enter, they turn every
  later result into NaN without an error;
* an empty selection (no layers, no methods, no metrics) selects nothing to compute.

Only numpy is imported, so the command line can check its flags before TensorFlow loads.
"""
import math
import numbers

import numpy as np


def _bounds(low, high, low_open=False, high_open=False):
    """The bounds as text: ' in [0, 1]', ' >= 1', ' > 0', '' (None: no bound on that side)."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def _shown(value):
    """``repr(value)``, cut to one short line (a refused array can be large)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _within(value, low, high, low_open, high_open):
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


def check_int(name, value, minimum=None, maximum=None, *, what="an integer", note=""):
    """``value`` as an int: a whole number (not a bool, not a float such as 2.0) in [minimum, maximum].

    ``what`` describes the expected value and ``note`` follows the refused
    one in the message (a hint such as "a fraction? tf_gag takes percent").
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not _within(
        value, minimum, maximum, False, False
    ):
        raise ValueError(f"{name}: expected {what}{_bounds(minimum, maximum)}, got {_shown(value)}{note}")
    return int(value)


def check_number(name, value, low=None, high=None, *, low_open=False, high_open=False, what=None, note=""):
    """``value`` as a float: a real number (not a bool), finite, within the bounds (None: unbounded side).

    The default description is "a finite number" when a side is unbounded
    (Inf would otherwise satisfy it) and "a number" between two bounds.
    """
    if what is None:
        what = "a finite number" if low is None or high is None else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not _within(value, low, high, low_open, high_open)
    ):
        raise ValueError(
            f"{name}: expected {what}{_bounds(low, high, low_open, high_open)}, got {_shown(value)}{note}"
        )
    return float(value)


def check_flag(name, value):
    """``value`` as a bool; anything else (1, "yes", None) is refused rather than read for its truth."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {_shown(value)}")
    return bool(value)


def check_choice(name, value, choices):
    """``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {_shown(value)}")
    return value


def check_selection(name, values, what):
    """``values`` (any iterable but a string) as a list of one or more entries; ``what`` describes an entry.

    A string is refused as a whole (its letters are no selection), as is an
    empty iterable: it would select nothing to compute.
    """
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name}: expected a list of {what}, got {_shown(values)}")
    values = list(values)
    if not values:
        raise ValueError(f"{name}: expected a list of {what}, got none")
    return values


def check_finite_array(name, value, what, dtype=np.float64):
    """``value`` as a ``dtype`` array of one or more finite numbers (integers or floats; no bools, strings, objects).

    ``what`` describes the expected value in the message. Finiteness is
    checked after the conversion, so a value beyond float32's range is refused too.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested sequences
        array = None
    if array is None or array.dtype.kind not in "iuf" or array.size == 0:
        raise ValueError(f"{name}: expected {what}, got {_shown(value)}")
    with np.errstate(over="ignore"):
        converted = array.astype(dtype)
    if not np.isfinite(converted).all():
        beyond = f" (beyond the range of {np.dtype(dtype).name})" if np.isfinite(array).all() else ""
        raise ValueError(f"{name}: expected {what}, got {_shown(value)}{beyond}")
    return converted


def rows_where(mask):
    """The first-axis indices (images) where ``mask`` holds any True, sorted: the images an error names."""
    return np.unique(np.nonzero(mask)[0]).tolist()
