"""Parameter constraints for losses, reported in scikit-learn's message shape.

Every check runs before any data is loaded: a constraint needs at most ``num_classes``. Errors read
``The 'gamma' parameter of loss 'focal' must be a float in the range [0, inf). Got -1.0 instead.``
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ClassVector",
    "InvalidLossParameterError",
    "NoneValue",
    "Real",
    "StrOptions",
    "check_class_counts",
    "check_num_classes",
]


class InvalidLossParameterError(ValueError, TypeError):
    """A loss parameter has a bad value or type. Catch it as ``ValueError`` or ``TypeError``.

    Like scikit-learn's ``InvalidParameterError``, one class covers both, so callers that expect
    ``TypeError`` for a string where a float belongs and ``ValueError`` for an out-of-range float both work.
    ``param``, ``value`` and ``allowed`` say which parameter, its value and what it must be, when the error
    is about one parameter (None otherwise).
    """

    def __init__(
        self, message: str, *, param: str | None = None, value: Any = None, allowed: str | None = None
    ):
        super().__init__(message)
        self.param, self.value, self.allowed = param, value, allowed


class _Rejected(Exception):
    """Internal: the value does not satisfy a constraint."""


def _is_real(value: Any) -> bool:
    # bool is an int in Python; a flag passed where a number belongs is a config mistake, not 1.0.
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _interval_str(low: float | None, high: float | None, closed: str) -> str:
    left = "[" if closed in ("left", "both") and low is not None else "("
    right = "]" if closed in ("right", "both") and high is not None else ")"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def _in_interval(x: float, low: float | None, high: float | None, closed: str) -> bool:
    if not math.isfinite(x):
        return False
    if low is not None and (x < low or (x == low and closed not in ("left", "both"))):
        return False
    return not (high is not None and (x > high or (x == high and closed not in ("right", "both"))))


class _Constraint:
    """Constraints compare by value: a loss's registration read from source is checked against its import."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:  # equal constraints must hash alike; reprs of equal frozensets can differ
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class Real(_Constraint):
    """A finite float (ints accepted, bools rejected) in an interval; ``None`` bounds are infinite."""

    def __init__(self, low: float | None, high: float | None, closed: str = "left") -> None:
        self.low, self.high, self.closed = low, high, closed

    def describe(self, num_classes: int | None) -> str:
        return f"a float in the range {_interval_str(self.low, self.high, self.closed)}"

    def convert(self, value: Any, num_classes: int | None) -> float:
        if not _is_real(value) or not _in_interval(float(value), self.low, self.high, self.closed):
            raise _Rejected
        return float(value)


class StrOptions(_Constraint):
    """One of a fixed set of strings."""

    def __init__(self, options: set[str]) -> None:
        self.options = frozenset(options)

    def describe(self, num_classes: int | None) -> str:
        return "a str among {" + ", ".join(repr(o) for o in sorted(self.options)) + "}"

    def convert(self, value: Any, num_classes: int | None) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise _Rejected
        return value


class NoneValue(_Constraint):
    """``None`` (``null`` in yaml)."""

    def describe(self, num_classes: int | None) -> str:
        return "None"

    def convert(self, value: Any, num_classes: int | None) -> None:
        if value is not None:
            raise _Rejected
        return None


def _as_float_list(value: Any) -> list[float] | None:
    """Sequence / ndarray / tensor of real numbers -> list of floats; None if it is not one."""
    if isinstance(value, (str, bytes, Mapping)):
        return None
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported: never import it here
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or not (
            np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)
        ):
            return None
        return [float(v) for v in value]
    if not isinstance(value, Sequence):  # list, tuple, OmegaConf ListConfig
        return None
    if not all(_is_real(v) for v in value):
        return None
    return [float(v) for v in value]


class ClassVector(_Constraint):
    """One finite float per class, each in ``[low, inf)`` (``closed='left'``) or ``(low, inf)``."""

    def __init__(self, low: float, closed: str, what: str) -> None:
        self.low, self.closed, self.what = low, closed, what

    def describe(self, num_classes: int | None) -> str:
        count = "num_classes" if num_classes is None else str(num_classes)
        return f"an array-like of {count} {self.what} floats (one per class)"

    def convert(self, value: Any, num_classes: int | None) -> list[float]:
        values = _as_float_list(value)
        if values is None or not values:
            raise _Rejected
        if num_classes is not None and len(values) != num_classes:
            raise _Rejected
        if not all(_in_interval(v, self.low, None, self.closed) for v in values):
            raise _Rejected
        return values


def _join_or(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def check_param(
    owner: str, param: str, value: Any, constraints: Sequence[Any], num_classes: int | None
) -> Any:
    """Return ``value`` normalised by the first constraint it satisfies, or raise the sklearn-shaped error.

    ``owner`` names what the parameter belongs to in the message, e.g. ``"loss 'focal'"``.
    """
    for constraint in constraints:
        try:
            return constraint.convert(value, num_classes)
        except _Rejected:
            continue
    allowed = _join_or([c.describe(num_classes) for c in constraints])
    raise InvalidLossParameterError(
        f"The {param!r} parameter of {owner} must be {allowed}. Got {value!r} instead.",
        param=param,
        value=value,
        allowed=f"must be {allowed} for {owner}",
    )


def check_num_classes(num_classes: Any, caller: str) -> int:
    """``num_classes`` must be an int >= 2 (bools rejected)."""
    if (
        isinstance(num_classes, (bool, np.bool_))
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 2
    ):
        raise InvalidLossParameterError(
            f"The 'num_classes' argument of {caller} must be an int in the range [2, inf). "
            f"Got {num_classes!r} instead."
        )
    return int(num_classes)


def check_class_counts(class_counts: Any, num_classes: int, *, caller: str, positive: bool) -> list[float]:
    """Training count of each class: ``num_classes`` finite numbers, >= 0 (``> 0`` when ``positive``).

    ``caller`` names who needs them in the message, e.g. ``"build_loss (loss 'ldam')"``.
    """
    values = _as_float_list(class_counts)
    what = "positive" if positive else "non-negative"
    if values is None or len(values) != num_classes or not all(math.isfinite(v) and v >= 0 for v in values):
        raise InvalidLossParameterError(
            f"The 'class_counts' argument of {caller} must be an array-like of "
            f"{num_classes} {what} numbers, the training count of each class. Got {class_counts!r} instead."
        )
    if positive:
        empty = [k for k, v in enumerate(values) if v <= 0]
        if empty:
            raise InvalidLossParameterError(
                f"The 'class_counts' argument of {caller} has a zero count for class(es) {empty} "
                f"(got {class_counts!r}), but every class must occur in the training data to compute its "
                f"weight or prior. Drop the empty classes or use a loss that does not use class counts."
            )
    return values
