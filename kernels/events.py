"""The agent's log of kernels that ended by themselves, which servers follow by long polling.

Each entry has a sequence number; ``GET /events?after=N`` returns the entries after ``N``, waiting
up to a timeout for the first one. A server that sees a different ``agent_id`` (the agent
restarted) knows every kernel it held there is gone.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Any

from .launcher import LaunchedKernel

KEPT_EVENTS = 1000


class ExitLog:
    def __init__(self, memory_mb: int):
        self.agent_id = uuid.uuid4().hex
        self.memory_mb = memory_mb
        self.last = 0
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT_EVENTS)
        self._changed = asyncio.Condition()
        self.closed = False

    def record(self, kernel: LaunchedKernel) -> None:
        """A launcher exit listener: log the kernel's end and wake the waiting pollers."""
        assert kernel.exit is not None
        self.last += 1
        self._events.append({"seq": self.last, "kernel_id": kernel.kernel_id, "event": "exited",
                             "status": kernel.exit.status, "oom": kernel.exit.oom,
                             "message": kernel.exit.describe(self.memory_mb),
                             **({"code": kernel.exit.code} if kernel.exit.code else {})})
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def close(self) -> None:
        """Answer every waiting poller now (the agent is stopping)."""
        self.closed = True
        await self._notify()

    async def after(self, seq: int, timeout: float) -> list[dict[str, Any]]:
        """The events after ``seq``, waiting up to ``timeout`` seconds for one to happen."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.last > seq or self.closed), timeout)
            except TimeoutError:
                pass
        return [event for event in self._events if event["seq"] > seq]
