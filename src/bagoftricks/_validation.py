"""Small argument checks shared by the library and the command line.

Errors speak in one voice, ``"name: expected …, got …"``; a wrong type raises
``TypeError`` and a wrong value ``ValueError``. Warnings about the user's input point
at the user's line (``user_stacklevel``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Collection
from pathlib import Path

PACKAGE = str(Path(__file__).parent)


def check_int(name: str, value, minimum: int | None = None) -> int:
    """``value`` as an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


def check_float(name: str, value, *, positive: bool = False) -> float:
    """``value`` as a finite float (strictly positive when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name}: expected a finite{' positive' if positive else ''} "
                         f"number, got {value}")
    return float(value)


def check_choice(name: str, value, choices: Collection):
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value


def check_class_outputs(outputs: int, k: int) -> None:
    """A classifier's model must give one output a class of the labels."""
    if outputs != k:
        raise ValueError(f"model: {outputs} outputs for the {k} classes of the labels (0 to "
                         f"{k - 1}); give it one output a class")


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by this function's caller point at
    the first line outside this package: the user's call, however deep inside it is."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE):
        frame, level = frame.f_back, level + 1
    return level
