"""Which refused (429) sign-ins go to the audit trail: enough to see an attack, never a flood of rows.

A refused sign-in costs its sender nothing, so one row per refusal would let anyone fill the audit table.
Each (account, client address) pair gets at most one ``login_throttled`` row per ``window``: the first
refusal of a window is written, with ``repeats``, the refusals of the pair's window before it that were
not; and at most ``per_window`` such rows are written in a window over all pairs. The refusals past that
(a flood from many addresses) are written as one row when the next window starts: ``aggregated``, with
how many refusals of how many pairs it stands for.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from typing import Any

MAX_PAIRS = 100_000  # pairs remembered (least recently refused go first)


@dataclasses.dataclass
class _Window:
    started: float
    refused: int = 0  # refusals in it not written


class ThrottledSignIns:
    def __init__(self, window: float, per_window: int, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.per_window = per_window
        self._clock = clock
        self._pairs: collections.OrderedDict[tuple[str, str], _Window] = collections.OrderedDict()
        self._all = _Window(-float("inf"))  # the window over all pairs: its rows are counted in ``refused``
        self._rows = 0
        self._unwritten_pairs = 0  # pairs of the refusals in ``_all.refused``

    def refused(self, account: str, address: str) -> list[dict[str, Any]]:
        """The audit rows to write for a refused sign-in of ``account`` (its keyed hash) from ``address``:
        none, the pair's row (``{"account", "ip", "repeats"}``), and perhaps the summary of the last window."""
        now = self._clock()
        rows: list[dict[str, Any]] = []
        if now - self._all.started >= self.window:
            if self._all.refused:
                rows.append({"aggregated": True, "refused": self._all.refused, "pairs": self._unwritten_pairs})
            self._all, self._rows, self._unwritten_pairs = _Window(now), 0, 0
        key = (account, address)
        pair = self._pairs.get(key)
        self._pairs[key] = pair if pair is not None and now - pair.started < self.window else _Window(now)
        self._pairs.move_to_end(key)
        while len(self._pairs) > MAX_PAIRS:
            self._pairs.popitem(last=False)
        if self._pairs[key] is pair:  # refused again within its window
            pair.refused += 1
        elif self._rows < self.per_window:
            self._rows += 1
            rows.append({"account": account, "ip": address, "repeats": pair.refused if pair is not None else 0})
        else:
            self._all.refused += 1
            self._unwritten_pairs += 1
        return rows
