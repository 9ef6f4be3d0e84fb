"""The parsed kernel messages the server holds at once, bounded in bytes across all kernels.

A kernel message is bounded in bytes before it arrives (``links``) and in values before it is parsed,
yet its JSON tree costs the server several times its bytes until the run has handled it (sanitised
it, in a thread for SVG and Bokeh). Each session's iopub reader takes a message's estimated parsed
cost (``links.message_cost``) from the one budget of the pool before it parses the message, and gives
it back once the message is handled (``RunQueue``) or dropped: sessions showing large outputs at once
take turns, the rest of their messages waiting in ZeroMQ's small queues (and their kernels with them).
A message costing more than the whole budget goes alone. Turns are first come, first served.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib


class DecodeBudget:
    """``limit`` bytes shared by everyone who ``take``s and later ``give``s back."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def take(self, cost: int) -> None:
        """Wait until ``cost`` fits (or nothing is held), after everyone who came before."""
        if not self._waiting and self._fits(cost):
            self.held += cost
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append((cost, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.cancelled():
                with contextlib.suppress(ValueError):  # unless ``_grant`` passed it over already
                    self._waiting.remove((cost, turn))
                self._grant()
            else:  # granted as it was cancelled: hand it on
                self.give(cost)
            raise

    def give(self, cost: int) -> None:
        """Give back what a ``take`` got."""
        self.held -= cost
        self._grant()

    def _fits(self, cost: int) -> bool:
        return self.held == 0 or self.held + cost <= self.limit

    def _grant(self) -> None:
        while self._waiting and (self._waiting[0][1].done() or self._fits(self._waiting[0][0])):
            cost, turn = self._waiting.popleft()
            if not turn.done():  # a cancelled wait is passed over
                self.held += cost
                turn.set_result(None)
