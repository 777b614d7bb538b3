"""Number checks for component arguments: each error names the component and the argument, and says why.

A string where a number belongs (``temperature='hot'``) is a ``TypeError`` naming the argument, not a
comparison error from deep inside a constructor; a number out of range is a ``ValueError``.
"""
import math
import numbers


def positive(owner, name, value):
    """``value`` as a float, checked to be a finite number > 0."""
    return _checked_number(owner, name, value, '> 0', value_ok=lambda v: v > 0)


def non_negative(owner, name, value):
    """``value`` as a float, checked to be a finite number >= 0."""
    return _checked_number(owner, name, value, '>= 0', value_ok=lambda v: v >= 0)


def _checked_number(owner, name, value, rule, value_ok):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number {rule}, got {value!r} ({type(value).__name__}); "
                        f"write it without quotes, e.g. {name}=1.0")
    if not math.isfinite(value) or not value_ok(value):
        raise ValueError(f"{owner}: {name} must be {rule} and finite, got {value!r}")
    return float(value)
