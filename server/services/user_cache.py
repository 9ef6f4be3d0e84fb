"""The user records of recent requests, so that a request's token costs no store round trip.

``AuthService`` checks every token against its user (active, same ``token_generation``). That user is
kept here for ``seconds`` (bounded to ``entries``, least recently used out first) and served to tokens
of the same generation only: a token of another generation (newer than what is kept, or revoked) reads
the store. A change to a user on this task (``changed``: revocation, deactivation, a new role or
password) drops its record at once, here and, through the bus (``USER_CHANGED``), on every other task;
a task that missed the message serves the old record at most ``seconds`` longer, far within an access
token's lifetime; while its bus is down it reads the store for every request, and it drops every record
when its bus connects again. Lookups of one user that arrive while the store is being read share that read.
``latest`` serves the kept record whatever its generation: for what another user's record decides (the
dataset rights a card version runs with are its author's).
"""

from __future__ import annotations

import asyncio
import collections
import time

from ..bus.base import Bus, Envelope
from ..models import User
from ..storage.base import Store

USER_CHANGED = "user_changed"


class UserCache:
    def __init__(self, store: Store, seconds: float, entries: int):
        self.store = store
        self.seconds = seconds
        self.entries = entries
        self.bus: Bus | None = None
        self._users: collections.OrderedDict[str, tuple[float, User]] = collections.OrderedDict()
        self._reading: dict[str, asyncio.Future[User | None]] = {}
        self._changes = 0  # users dropped so far: a read that overlapped a drop is not kept

    def listen(self, bus: Bus) -> None:
        """Tell the other tasks of this one's changes, and hear of theirs (before ``bus.start()``)."""
        self.bus = bus
        bus.subscribe(USER_CHANGED, self._on_changed)
        bus.reconnected.append(self.clear)

    async def get(self, user_id: str, generation: object) -> User | None:
        """The user, kept or read, if a token of ``generation`` may find it kept; None if there is none."""
        kept = self.kept(user_id)
        if kept is not None and kept.token_generation == generation:
            return kept
        return await self._shared_read(user_id)

    async def latest(self, user_id: str) -> User | None:
        """The user, kept (whatever its token generation) or read: what another user's record decides (a card
        version's author's dataset rights)."""
        return self.kept(user_id) or await self._shared_read(user_id)

    def kept(self, user_id: str) -> User | None:
        """The user if kept here (whatever its token generation), else None: nothing is read."""
        kept = self._users.get(user_id)
        if kept is None or kept[0] <= time.monotonic() or not self._listening():
            return None
        self._users.move_to_end(user_id)
        return kept[1]

    def _listening(self) -> bool:
        """Whether changes on other tasks reach this one (no bus: one task alone)."""
        return self.bus is None or self.bus.connected

    async def _shared_read(self, user_id: str) -> User | None:
        reading = self._reading.get(user_id)
        if reading is None:
            reading = self._reading[user_id] = asyncio.ensure_future(self._read(user_id))
            reading.add_done_callback(lambda done: self._read_done(user_id, done))
        return await asyncio.shield(reading)

    def _read_done(self, user_id: str, done: asyncio.Future[User | None]) -> None:
        if self._reading.get(user_id) is done:
            del self._reading[user_id]

    async def _read(self, user_id: str) -> User | None:
        changes = self._changes
        user = await self.store.get_user(user_id)
        if user is not None and changes == self._changes and self.seconds > 0 and self._listening():
            self._users[user_id] = (time.monotonic() + self.seconds, user)
            self._users.move_to_end(user_id)
            while len(self._users) > self.entries:
                self._users.popitem(last=False)
        return user

    async def changed(self, user_id: str) -> None:
        """``user_id`` was changed on this task: drop it here, then on the other tasks."""
        self._forget(user_id)
        if self.bus is not None:
            await self.bus.publish(USER_CHANGED, {"user_id": user_id})

    def _on_changed(self, envelope: Envelope) -> None:
        self._forget(str(envelope.body["user_id"]))

    def clear(self) -> None:
        """Drop every user kept (the bus was down: changes on other tasks may have been missed)."""
        self._changes += 1
        self._users.clear()
        self._reading.clear()

    def _forget(self, user_id: str) -> None:
        self._changes += 1
        self._users.pop(user_id, None)
        self._reading.pop(user_id, None)  # a read under way may predate the change: the next lookup reads again
