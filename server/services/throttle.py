"""Cooling-off for repeated failed sign-ins, per email and per client address.

In-process state: with several API tasks each keeps its own counts, so the
effective limit is per task (see the runbook).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from collections.abc import Callable

from ..errors import RateLimitedError


@dataclasses.dataclass
class _Record:
    failures: collections.deque[float]
    locked_until: float = 0.0
    locked_by: float | None = None  # the attempt whose count started the cool-off


class LoginThrottle:
    """Counts failures per key in a sliding window; past ``max_failures`` the key cools off."""

    def __init__(self, max_failures: int, window: float, cooloff: float,
                 max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window = window
        self.cooloff = cooloff
        self.max_keys = max_keys
        self._clock = clock
        self._records: collections.OrderedDict[str, _Record] = collections.OrderedDict()

    def check(self, key: str) -> None:
        """Raise ``RateLimitedError`` while ``key`` is cooling off."""
        record = self._records.get(key)
        remaining = (record.locked_until - self._clock()) if record else 0.0
        if remaining > 0:
            raise RateLimitedError(
                "Too many failed sign-in attempts. Wait before trying again.",
                retry_after=math.ceil(remaining))

    def attempt(self, key: str) -> float:
        """Check ``key``, then count an attempt as a failure before it is verified, so that a burst is
        refused once ``max_failures`` of it are under way; ``forgive`` takes back one that succeeded."""
        self.check(key)
        return self.failed(key)

    def forgive(self, key: str, attempt: float) -> None:
        """Take back an ``attempt`` that turned out right (and the cool-off it started, if any)."""
        record = self._records.get(key)
        if record is None:
            return
        if record.locked_by == attempt:
            record.locked_until, record.locked_by = 0.0, None
        elif attempt in record.failures:
            record.failures.remove(attempt)

    def failed(self, key: str) -> float:
        """Count a failure (returned: its time); the ``max_failures``-th within the window starts the cool-off."""
        now = self._clock()
        record = self._records.pop(key, None) or _Record(collections.deque())
        self._records[key] = record
        while record.failures and record.failures[0] <= now - self.window:
            record.failures.popleft()
        record.failures.append(now)
        if len(record.failures) >= self.max_failures:
            record.locked_until, record.locked_by = now + self.cooloff, now
            record.failures.clear()
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)
        return now

    def succeeded(self, key: str) -> None:
        """Forget the failures of ``key``."""
        self._records.pop(key, None)
