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

    def failed(self, key: str) -> None:
        """Count a failure; the ``max_failures``-th within the window starts the cool-off."""
        now = self._clock()
        record = self._records.pop(key, None) or _Record(collections.deque())
        self._records[key] = record
        while record.failures and record.failures[0] <= now - self.window:
            record.failures.popleft()
        record.failures.append(now)
        if len(record.failures) >= self.max_failures:
            record.locked_until = now + self.cooloff
            record.failures.clear()
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """Forget the failures of ``key``."""
        self._records.pop(key, None)
