"""Card runs take turns per user: at most ``per_user`` run at once, the others wait in order and are told
their place in line, so that a dashboard's tile can say 「順番待ち（2番目）」 instead of staying blank.

Identical runs (one cache key: code, author, data, parameters, kernel) under way at once are one run:
``SharedRuns`` hands every caller the same result, and every one of them hears the place of that run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

Told = Callable[[int], None]
"""Hears a run's place in line: 1 is next, 0 is running now."""


@dataclasses.dataclass
class _Waiter:
    turn: asyncio.Future[None]
    told: Told | None
    place: int = 0  # the last place it was told


class RunTurns:
    """The runs of each user under way (at most ``per_user``) and those waiting, first come first served."""

    def __init__(self, per_user: int):
        self.per_user = per_user
        self._running: collections.Counter[str] = collections.Counter()
        self._waiting: collections.defaultdict[str, collections.deque[_Waiter]] = collections.defaultdict(
            collections.deque)

    @contextlib.asynccontextmanager
    async def turn(self, user_id: str, told: Told | None = None) -> AsyncIterator[None]:
        """Hold one of ``user_id``'s turns for the block, first waiting in line (``told`` hears the place)."""
        line = self._waiting[user_id]
        if self._running[user_id] < self.per_user and not line:
            self._running[user_id] += 1
        else:
            waiter = _Waiter(asyncio.get_running_loop().create_future(), told)
            line.append(waiter)
            self._tell(user_id)
            try:
                await waiter.turn
            except asyncio.CancelledError:
                if waiter.turn.done() and not waiter.turn.cancelled():
                    self._release(user_id)  # given the turn as it was cancelled: pass it on
                else:
                    line.remove(waiter)
                    self._tell(user_id)
                raise
        if told is not None:
            told(0)
        try:
            yield
        finally:
            self._release(user_id)

    def _release(self, user_id: str) -> None:
        line = self._waiting[user_id]
        if line:
            line.popleft().turn.set_result(None)  # the turn passes on: as many run as before
            self._tell(user_id)
        else:
            self._running[user_id] -= 1
            if not self._running[user_id]:
                del self._running[user_id]
                self._waiting.pop(user_id, None)

    def _tell(self, user_id: str) -> None:
        for place, waiter in enumerate(self._waiting[user_id], 1):
            if waiter.told is not None and waiter.place != place:
                waiter.place = place
                waiter.told(place)


class _Shared:
    """One run under way and everyone waiting for its result."""

    def __init__(self) -> None:
        self.listeners: list[Told] = []
        self.place: int | None = None
        self.task: asyncio.Future[Any] | None = None

    def told(self, place: int) -> None:
        self.place = place
        for listener in list(self.listeners):
            listener(place)


class SharedRuns:
    """Runs under way by key; a second identical one waits for the first's result instead of running."""

    def __init__(self) -> None:
        self._runs: dict[str, _Shared] = {}

    def running(self, key: str) -> bool:
        return key in self._runs

    async def run(self, key: str, start: Callable[[Told], Awaitable[Any]], told: Told | None = None) -> Any:
        """The result of ``start(told)`` for ``key``: started now, or the one under way. The run goes on if a
        caller stops waiting; its exception reaches every caller."""
        shared = self._runs.get(key)
        if shared is None:
            shared = self._runs[key] = _Shared()
            shared.task = asyncio.ensure_future(start(shared.told))
            shared.task.add_done_callback(lambda _: self._runs.pop(key, None))
        if told is not None:
            shared.listeners.append(told)
            if shared.place is not None:
                told(shared.place)
        assert shared.task is not None
        try:
            return await asyncio.shield(shared.task)
        finally:
            if told is not None:
                shared.listeners.remove(told)
