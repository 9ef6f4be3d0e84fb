"""Turns at the password-check threads, shared so that nobody's sign-ins wait behind a flood of others'.

``workers`` checks run at once; the others wait in two lanes:

- **known**: sign-ins from an (account, client address) pair that signed in before (``LoginThrottle``
  remembers it: the account owner's usual address), and signed-in callers' own hashing;
- **other**: every other sign-in.

The known lane goes first, and in each lane accounts take turns (round robin), each its checks in order
of arrival. So a sign-in from its owner's usual address waits for at most one check of each other
account in the known lane, where only someone who knows an account's password can put it, however many
addresses a flood comes from; a flood aimed at the victim's own account from new addresses fills only the
other lane. An account may have ``per_account`` sign-ins of the other lane in progress (past them 429 at
once), and the other lane ``other_lane`` in all: both bound what a flood of new addresses holds.

A sign-in for an unknown email takes no turn (it only imitates the time a check takes) but counts as in
progress for its account key while it waits, so that it is refused exactly when a real one would be.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

from ..errors import RateLimitedError

BUSY_RETRY_AFTER = 1  # seconds: a password check takes tens of milliseconds


class CheckQueue:
    def __init__(self, workers: int, per_account: int, other_lane: int):
        self.workers = workers
        self.per_account = per_account
        self.other_lane = other_lane
        self.running = 0
        self._lanes: tuple[collections.OrderedDict[str, collections.deque[asyncio.Future[None]]], ...] = (
            collections.OrderedDict(), collections.OrderedDict())  # known, other: account -> its waiting checks
        self._other: collections.Counter[str] = collections.Counter()  # other-lane sign-ins in progress by account

    @property
    def waiting(self) -> int:
        return sum(len(checks) for lane in self._lanes for checks in lane.values())

    @contextlib.asynccontextmanager
    async def turn(self, account: str, known: bool) -> AsyncIterator[None]:
        """Wait for a thread's turn for ``account``'s check (``known``: in the known lane); 429 at once past
        the other lane's bounds."""
        with self._counted(account, known):
            if self.running < self.workers and not self.waiting:
                self.running += 1
            else:
                await self._wait(self._lanes[0 if known else 1], account)
            try:
                yield
            finally:
                self._next()

    @contextlib.contextmanager
    def imitation(self, account: str) -> collections.abc.Iterator[None]:
        """An unknown email's sign-in in progress: counted and refused as a real one of the other lane is."""
        with self._counted(account, known=False):
            yield

    @contextlib.contextmanager
    def _counted(self, account: str, known: bool) -> collections.abc.Iterator[None]:
        if known:
            yield
            return
        if self._other[account] >= self.per_account or sum(self._other.values()) >= self.other_lane:
            raise RateLimitedError("Too many sign-ins are being checked right now; try again in a moment.",
                                   retry_after=BUSY_RETRY_AFTER)
        self._other[account] += 1
        try:
            yield
        finally:
            self._other[account] -= 1
            if not self._other[account]:
                del self._other[account]

    async def _wait(self, lane: collections.OrderedDict[str, collections.deque[asyncio.Future[None]]],
                    account: str) -> None:
        turn = asyncio.get_running_loop().create_future()
        lane.setdefault(account, collections.deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # given the turn as it was cancelled: pass it on
                self._next()
            elif account in lane and turn in lane[account]:  # still in line: out of it
                lane[account].remove(turn)
                if not lane[account]:
                    del lane[account]
            raise

    def _next(self) -> None:
        """A check ended: the next account in line (known lane first) gets its turn."""
        self.running -= 1
        for lane in self._lanes:
            while lane:
                account, checks = next(iter(lane.items()))
                turn = checks.popleft()
                if checks:
                    lane.move_to_end(account)  # its next check waits for every other account's
                else:
                    del lane[account]
                if not turn.done():  # (one cancelled while waiting has left the line)
                    self.running += 1
                    turn.set_result(None)
                    return
