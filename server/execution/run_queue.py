"""The messages of a running execution, read but not yet handled, bounded in bytes.

The card session's iopub reader puts a run's messages here as it reads them, each with its parsed
cost (``links.message_cost``); the run takes them one at a time. Past ``limit`` bytes the reader waits
before it reads on, so ZeroMQ's own small queue (``limits.KERNEL_RECEIVE_MESSAGES``) fills and the
kernel waits in turn: a kernel that sends faster than its outputs are handled (each DataFrame's table
is fetched before the next message is taken) makes the server hold at most this bound, never everything
it sent. With a ``budget`` (``decode_budget``), each message's cost, which the reader took from it, is
given back once the message is handled: when the run takes the next one or ends.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from .decode_budget import DecodeBudget


class RunQueue:
    """A queue of ``(message, size)`` whose sizes add up to at most ``limit`` (one message always fits)."""

    def __init__(self, limit: int, budget: DecodeBudget | None = None):
        self.limit = limit
        self.budget = budget
        self.size = 0
        self._items: collections.deque[tuple[dict[str, Any], int]] = collections.deque()
        self._handling = 0  # the size of the message taken last, being handled
        self._changed = asyncio.Condition()
        self.closed = False

    async def put(self, message: dict[str, Any], size: int) -> None:
        """Add ``message``, first waiting while the queue is full; dropped once the queue is closed."""
        async with self._changed:
            try:
                await self._changed.wait_for(
                    lambda: self.closed or not self._items or self.size + size <= self.limit)
            except asyncio.CancelledError:
                self._give(size)
                raise
            if self.closed:
                self._give(size)
                return
            self._items.append((message, size))
            self.size += size
            self._changed.notify_all()

    async def get(self) -> dict[str, Any]:
        """The oldest message, waiting for one; the one taken before is handled by now."""
        self._give(self._handling)
        self._handling = 0
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
            message, size = self._items.popleft()
            self.size -= size
            self._handling = size
            self._changed.notify_all()
            return message

    async def close(self) -> None:
        """The run is over: drop what is queued and release a waiting reader."""
        async with self._changed:
            self.closed = True
            self._give(self._handling + self.size)
            self._items.clear()
            self.size = self._handling = 0
            self._changed.notify_all()

    def _give(self, size: int) -> None:
        if self.budget is not None and size:
            self.budget.give(size)
