"""Bounded concurrency with a short line: work past both is refused at once, never queued without end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ..errors import RateLimitedError


class Slots:
    """At most ``running`` holders at once and ``waiting`` more in line; past that, a ``RateLimitedError``
    (code ``code``) that says to retry after ``retry_after`` seconds."""

    def __init__(self, running: int, waiting: int, retry_after: int, code: str, message: str):
        self.max_waiting = waiting
        self.retry_after = retry_after
        self.code = code
        self.message = message
        self.waiting = 0
        self._semaphore = asyncio.Semaphore(running)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self._semaphore.locked() and self.waiting >= self.max_waiting:
            raise RateLimitedError(self.message, self.retry_after, code=self.code)
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._semaphore.release()
