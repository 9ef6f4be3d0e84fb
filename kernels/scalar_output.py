"""NumPy scalars show as their values: ``194852276``, not ``np.int64(194852276)`` (NumPy 2's repr),
which is what ``df["売上"].sum()`` or ``len``-like reductions give as a cell's last expression."""

from __future__ import annotations

from typing import Any

import numpy as np


def _value(obj: np.generic, printer: Any, cycle: bool) -> None:
    printer.text(str(obj))


# each concrete type: IPython's printer takes a class's own ``__repr__`` before a base class's printer
SCALAR_TYPES = {kind for kind in np.sctypeDict.values()
                if issubclass(kind, (np.number, np.bool_, np.datetime64, np.timedelta64))}


def install(shell: Any) -> None:
    """The plain-text form of NumPy scalars on ``shell`` is ``str``, as for Python's own numbers (also
    inside lists, tuples and dicts)."""
    formatter = shell.display_formatter.formatters["text/plain"]
    for kind in SCALAR_TYPES:
        formatter.for_type(kind, _value)
