"""What a client that comes back is sent again: the newest messages, up to a number of bytes.

One mechanism for the card sockets (``live.py``) and the Jupyter sockets (``jupyter/kernel.py``).
Messages are numbered from 1 as they are kept; past ``max_bytes`` the oldest are dropped, and a
client resuming after message n learns how many after n it will never get (``since``). A message
kept ``pinned`` (a Jupyter reply, which the client waits for and which may arrive before the last
outputs of its request) goes only once no unpinned message is left to drop.
"""

from __future__ import annotations

import collections
import heapq
from typing import Generic, TypeVar

T = TypeVar("T")


class ReplayBuffer(Generic[T]):
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.last = 0  # the number of the newest message, kept or not
        self._kept: collections.deque[tuple[int, T, int]] = collections.deque()
        self._pinned: collections.deque[tuple[int, T, int]] = collections.deque()

    def append(self, message: T, size: int, pinned: bool = False) -> int:
        """Keep ``message`` (``size`` bytes), dropping the oldest past the bound; its number."""
        self.last += 1
        (self._pinned if pinned else self._kept).append((self.last, message, size))
        self.bytes += size
        while self.bytes > self.max_bytes:
            self.bytes -= (self._kept or self._pinned).popleft()[2]
        return self.last

    def skip(self, count: int) -> None:
        """Count ``count`` messages that were never kept (a client could not be sent them)."""
        self.last += count

    def since(self, after: int) -> tuple[int, list[T]]:
        """How many messages after number ``after`` are lost, and the kept ones after it, oldest first."""
        kept = [message for number, message, _ in heapq.merge(self._kept, self._pinned, key=lambda entry: entry[0])
                if number > after]
        return max(0, self.last - after - len(kept)), kept

    def clear(self) -> None:
        """Forget every message and start numbering again."""
        self._kept.clear()
        self._pinned.clear()
        self.bytes = 0
        self.last = 0

    def __len__(self) -> int:
        return len(self._kept) + len(self._pinned)
