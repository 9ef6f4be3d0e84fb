"""What a user loses, ended everywhere at once: the one seam between a revocation and what it held open.

A socket (card editor, scratch, dashboard, Jupyter channels) is authenticated once, at its upgrade, by
a ``Credential``: the user, the token generation it was issued in, and its sign-in session or personal
access token. When credentials are revoked (sign-out everywhere, a changed or reset password,
deactivation: every token of an earlier generation; sign-out of one sign-in; one personal access token
revoked) or a user's rights shrink (a role change), the service that did it calls ``revoke`` with a
``Revocation``, which goes over the bus (topic ``user.revoked``) to every API task, this one included.
Each task then

- closes the sockets the revoked credentials opened, with ``SESSION_REVOKED`` (4401) and a reason
  starting ``session_revoked`` (the UI signs in again, a Jupyter client needs a new token);
- runs its ``sweeps`` for the user (``SessionRights.sweep``, ``DashboardHub.recheck``): kernel
  sessions (card editors, ``/api/card-sessions``, Jupyter kernels) and dashboard sockets whose rights no
  longer hold end with 4403 ``access_revoked``, and a deactivated user's sessions all end.

A socket registers (``track``) once it is open, passing the ``clock`` read before it authenticated; a
revocation of its user delivered in between closes it at once, so none slips through the gap.

What a revocation ends is written to the store before it is published (a raised token generation, a
deleted sign-in or token, a changed role or share), so a message lost to a bus outage loses nothing for
long: while the bus is down, each task re-checks every open socket's credential and user against the
store (``AuthService.lost``) and runs the sweeps for their users every ``degraded_recheck_seconds``, and
once more when the bus connects again (``recheck``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Protocol

from traitlets import Float
from traitlets.config import LoggingConfigurable

from ..bus import Bus, Envelope
from ..limits import RECHECKS_AT_ONCE
from ..logs import get_logger

log = get_logger("bi.revocations")

TOPIC = "user.revoked"
SESSION_REVOKED = 4401  # the close code of a socket whose credentials were revoked
REASON = "session_revoked: your sign-in was ended ({why}); sign in again"


@dataclasses.dataclass(frozen=True)
class Credential:
    """What a request or socket was authenticated by."""

    user_id: str
    generation: int
    session_id: str | None = None  # the sign-in session of an access token
    token_id: str | None = None  # the personal access token


@dataclasses.dataclass(frozen=True)
class Revocation:
    """What ``user_id`` lost: the tokens of generations before ``generation``, one sign-in session, one
    personal access token, or none of them (``why`` says what happened: a role change re-checks rights)."""

    user_id: str
    why: str
    generation: int | None = None
    session_id: str | None = None
    token_id: str | None = None

    def covers(self, credential: Credential) -> bool:
        return credential.user_id == self.user_id and (
            (self.generation is not None and credential.generation < self.generation)
            or (self.session_id is not None and credential.session_id == self.session_id)
            or (self.token_id is not None and credential.token_id == self.token_id))


class Revocable(Protocol):
    credential: Credential | None

    def close_now(self, code: int, reason: str) -> None: ...


Sweep = Callable[[str], Awaitable[None]]
Verify = Callable[[str, Collection[Credential]], Awaitable[dict[Credential, str]]]


class Revocations(LoggingConfigurable):
    """The open sockets of this task by user, and what a revocation does to them and to the user's sessions."""

    degraded_recheck_seconds = Float(30.0, min=0.1, help=(
        "While the bus is down (Redis unreachable), seconds between re-checks of every open socket's "
        "credential and rights against the store: the longest a revocation made on another API task "
        "takes to close a socket here meanwhile.")).tag(config=True)

    def __init__(self, bus: Bus, verify: Verify, **kwargs: Any):
        """``verify``: which of a user's credentials the store says were revoked, and why (``AuthService.lost``)."""
        super().__init__(**kwargs)
        self.bus = bus
        self.verify = verify
        self.sweeps: list[Sweep] = []
        self.holders: list[Callable[[], Iterable[str]]] = []  # users holding more than sockets (kernel sessions)
        self._rechecking: asyncio.Task[None] | None = None
        self._again: str | None = None  # why to re-check (again), while one is asked for
        self._watch: asyncio.Task[None] | None = None
        self._sockets: dict[str, set[Revocable]] = {}
        self._clock = itertools.count(1)
        self.clock = 0  # the number of the last revocation delivered here
        self._last: dict[str, int] = {}  # user id -> the number of the last revocation of theirs delivered
        self._tasks: set[asyncio.Task[None]] = set()
        bus.subscribe(TOPIC, self._on_revoked)
        bus.reconnected.append(lambda: self.recheck("bus_reconnected"))

    def start(self) -> None:
        """Re-check every ``degraded_recheck_seconds`` while the bus is down."""
        self._watch = asyncio.create_task(self._watch_degraded())

    async def stop(self) -> None:
        for task in (self._watch, self._rechecking):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _watch_degraded(self) -> None:
        while True:
            await asyncio.sleep(self.degraded_recheck_seconds)
            if not self.bus.connected:
                self.recheck("bus_degraded")

    def recheck(self, why: str) -> None:
        """Re-check, against the store, every open socket and the rights of every user holding one (or a
        kernel session): what a revocation published while the bus was down would have closed, closes."""
        self._again = why  # a re-check under way may have read the store before what asked for this one
        if self._rechecking is None or self._rechecking.done():
            self._rechecking = asyncio.ensure_future(self._recheck())
            self._rechecking.add_done_callback(self._done)

    async def _recheck(self) -> None:
        while (why := self._again) is not None:
            self._again = None
            users = set(self._sockets).union(*(holder() for holder in self.holders))
            turns = asyncio.Semaphore(RECHECKS_AT_ONCE)
            closed = await asyncio.gather(*(self._recheck_user(user_id, turns) for user_id in users))
            log.info("revocations_rechecked", why=why, users=len(users), sockets_closed=sum(closed))

    async def _recheck_user(self, user_id: str, turns: asyncio.Semaphore) -> int:
        """Close ``user_id``'s sockets whose credential the store says was revoked, then run the sweeps; the
        number of sockets closed (a store that fails is logged: the next re-check tries again)."""
        async with turns:
            closed = 0
            try:
                credentials = {s.credential for s in self._sockets.get(user_id, ()) if s.credential is not None}
                lost = await self.verify(user_id, credentials) if credentials else {}
                for socket in list(self._sockets.get(user_id, ())):
                    if socket.credential in lost:
                        self.forget(socket)
                        socket.close_now(SESSION_REVOKED, REASON.format(why=lost[socket.credential]))
                        closed += 1
                for sweep in self.sweeps:
                    await sweep(user_id)
            except Exception as exc:  # noqa: BLE001 - the store may be down too: try again next time
                log.warning("revocation_recheck_failed", user_id=user_id, error=repr(exc)[:200])
            return closed

    async def revoke(self, revocation: Revocation) -> None:
        """Close what ``revocation`` ends on every API task."""
        await self.bus.publish(TOPIC, dataclasses.asdict(revocation))

    def track(self, socket: Revocable, since: int) -> None:
        """Close ``socket`` when its credential is revoked; at once if its user had a revocation delivered
        after ``since`` (the ``clock`` read before it was authenticated)."""
        credential = socket.credential
        if credential is None:
            return
        if self._last.get(credential.user_id, 0) > since:
            socket.close_now(SESSION_REVOKED, REASON.format(why="while this connection opened"))
            return
        self._sockets.setdefault(credential.user_id, set()).add(socket)

    def forget(self, socket: Revocable) -> None:
        credential = socket.credential
        if credential is not None and credential.user_id in self._sockets:
            self._sockets[credential.user_id].discard(socket)
            if not self._sockets[credential.user_id]:
                del self._sockets[credential.user_id]

    def _on_revoked(self, envelope: Envelope) -> None:
        known = {field.name for field in dataclasses.fields(Revocation)}  # a newer release's extra fields are skipped
        revocation = Revocation(**{name: value for name, value in envelope.body.items() if name in known})
        self.clock = next(self._clock)
        self._last[revocation.user_id] = self.clock
        closed = 0
        for socket in list(self._sockets.get(revocation.user_id, ())):
            if socket.credential is not None and revocation.covers(socket.credential):
                self.forget(socket)
                socket.close_now(SESSION_REVOKED, REASON.format(why=revocation.why))
                closed += 1
        log.info("sockets_revoked", user_id=revocation.user_id, why=revocation.why, sockets=closed)
        for sweep in self.sweeps:
            self._spawn(sweep(revocation.user_id))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("revocation_sweep_failed", error=repr(task.exception()))
