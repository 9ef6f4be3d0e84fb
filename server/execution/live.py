"""Kernel sessions driven over a websocket: numbered messages, replay after a reconnect, a grace period.

A ``LiveSession`` wraps one ``KernelSession``. Every message it sends gets the next sequence
number and is kept (the newest ``replay_buffer_bytes``, ``replay.py``) so that a client that
reconnects with the last number it saw gets the rest, in order, after an ``outputs_lost`` message
if some are no longer kept. When its socket drops, the session waits ``grace_seconds`` for a
reconnect, then closes and its kernel is destroyed; a client that leaves says so (``close``) and the
session ends at once. The message formats
are documented in ``server/handlers/card_socket.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from .. import json_io, limits
from ..errors import BIError, ExecutionTimeoutError, NotFoundError
from ..logs import get_logger
from ..models import User
from .pool import KernelPool
from .gap import card_outputs
from .replay import ReplayBuffer
from .session import ExecutionResult, Grant, KernelSession
from .syntax import syntax_problem

log = get_logger("bi.execution.live")

INTERRUPT_AGAIN_SECONDS = 1.0  # an auto-run interrupts the run it supersedes again while that goes on
REPLACED = "the session was opened elsewhere"
"""Why a socket is ended when another one attaches to its session: what was queued for it is dropped at once."""


class Socket(Protocol):
    def send_frame(self, frame: str | bytes) -> None: ...

    def end(self, reason: str) -> None: ...


class LiveSession:
    def __init__(self, session: KernelSession, on_expired: Callable[[LiveSession], Any], replay_bytes: int):
        self.session = session
        self.on_expired = on_expired
        self.sent: ReplayBuffer[bytes] = ReplayBuffer(replay_bytes)
        self._socket: Socket | None = None
        self._run: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._auto: asyncio.Task[None] | None = None
        self._next_auto: tuple[str, str] | None = None  # the newest auto-run not yet started
        self.auto_runs = 0  # auto-runs asked for, and runs they interrupted (``take_auto_counts``)
        self.interrupted_runs = 0
        session.listeners.add(self._session_event)

    @property
    def id(self) -> str:
        return self.session.id

    @property
    def seq(self) -> int:
        """The number of the last message sent."""
        return self.sent.last

    def emit(self, message: dict[str, Any]) -> None:
        """Number, keep and send one message."""
        text = json_io.dumps({"seq": self.seq + 1, **message}, default=str)
        self.sent.append(text, len(text))
        if self._socket is not None:
            self._socket.send_frame(text)

    def attach(self, socket: Socket, after: int | None) -> None:
        """Send new messages to ``socket``, first replaying those after ``after``; if some of them are
        no longer kept, an ``outputs_lost`` message (not numbered) says how many before the rest."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._socket is not None:
            self._socket.end(REPLACED)
        self._socket = socket
        if after is None:
            return
        lost, texts = self.sent.since(after)
        if lost:
            log.info("replay_lost", session_id=self.id, after=after, lost=lost)
            socket.send_frame(json_io.dumps({
                "type": "outputs_lost", "after": after, "lost": lost, "resumes_at": after + lost + 1,
                "message": f"{lost} messages (outputs) sent while you were away are no longer kept: "
                           f"a session keeps its last {self.sent.max_bytes // (1024 * 1024)} MB. "
                           "Run the code again to see them."}))
        for text in texts:
            socket.send_frame(text)

    def replay_gap(self, gap: list[list[bytes]], lost: int) -> None:
        """What the kernel published while no server held it (``KernelPool.reattach``): its outputs, in order,
        after an ``outputs_lost`` notice if the agent dropped some, each with the run it belongs to (null for
        none); a run that ended meanwhile gets its ``idle`` and ``done`` (status ``ok``: its reply and timing
        went to the server that died, and an error shows in its outputs)."""
        if lost:
            self.emit({"type": "outputs_lost", "after": self.seq, "lost": lost, "resumes_at": self.seq + 1,
                       "message": f"{lost} outputs sent while no server held this session were dropped: an "
                                  "executor keeps the last ones only. Run the code again to see them."})
        for run_id, output in card_outputs(self.session.kernel, gap):
            if output is not None:
                self.emit({"type": "output", "run_id": run_id, "output": output})
            elif run_id is not None:  # its idle: the run ended while no server held the session
                self.emit({"type": "status", "state": "idle", "run_id": run_id})
                self.emit({"type": "done", "run_id": run_id, "status": "ok", "execution_count": None,
                           "execution_time_ms": None, "truncated": False, "kernel_restarted": False})

    def detach(self, socket: Socket, grace_seconds: float) -> None:
        """``socket`` closed: wait ``grace_seconds`` for a reconnect, then end the session."""
        if self._socket is not socket:
            return
        self._socket = None
        self._expiry = asyncio.get_running_loop().call_later(grace_seconds, self.on_expired, self)

    def execute(self, code: str, run_id: str, auto: bool = False) -> None:
        """Run ``code``; while a run is going, refuse it, or with ``auto`` (typing paused in the editor)
        interrupt that run and run this once it has ended. Of auto-runs that arrive meanwhile, only the
        newest runs; one whose code does not parse ends at once with status ``syntax_error``."""
        if auto:
            self.auto_runs += 1
            self._next_auto = (code, run_id)
            if self._auto is None or self._auto.done():
                self._auto = asyncio.create_task(self._run_auto())
        elif any(task is not None and not task.done() for task in (self._run, self._auto)):
            self.emit({"type": "error", "code": "busy", "run_id": run_id,
                       "message": "The previous run has not finished; wait for it or interrupt it."})
        else:
            self._run = asyncio.create_task(self._execute(code, run_id))

    def take_auto_counts(self) -> tuple[int, int]:
        """The auto-runs asked for and the runs they interrupted since this was last called."""
        counts = self.auto_runs, self.interrupted_runs
        self.auto_runs = self.interrupted_runs = 0
        return counts

    async def _run_auto(self) -> None:
        while self._next_auto is not None:
            if self._run is not None and not self._run.done():
                self.interrupted_runs += 1
                while not self._run.done():  # an interrupt the kernel got before it ran the code is lost: again
                    await self.session.interrupt()
                    await asyncio.wait([self._run], timeout=INTERRUPT_AGAIN_SECONDS)
                continue
            (code, run_id), self._next_auto = self._next_auto, None
            problem = await asyncio.to_thread(syntax_problem, code)
            if problem is not None:
                self.emit({"type": "done", "run_id": run_id, "status": "syntax_error", "syntax": problem,
                           "execution_count": None, "execution_time_ms": None, "truncated": False,
                           "kernel_restarted": False})
            elif self._next_auto is None:  # else newer code came while this was parsed
                self._run = asyncio.create_task(self._execute(code, run_id))

    def adopt(self) -> None:
        """Follow the run of the task that held the session before, which the reattachment found still going
        (``KernelSession.expect``), to its ``done``."""
        run_id = self.session.expected
        if run_id is not None:
            self._run = asyncio.create_task(self._finish(run_id, self.session.follow(self._outputs_of(run_id))))

    def _outputs_of(self, run_id: str) -> Callable[[dict[str, Any]], None]:
        return lambda output: self.emit({"type": "output", "run_id": run_id, "output": output})

    async def _execute(self, code: str, run_id: str) -> None:
        self.emit({"type": "status", "state": "busy", "run_id": run_id})
        await self._finish(run_id, self.session.execute(code, self._outputs_of(run_id), label=run_id))

    async def _finish(self, run_id: str, running: Awaitable[ExecutionResult]) -> None:
        """Await the run ``run_id`` and send its ``idle`` and ``done``."""
        done: dict[str, Any] = {"type": "done", "run_id": run_id}
        try:
            result = await running
            done.update(status=result.status, execution_count=result.execution_count,
                        execution_time_ms=result.execution_time_ms, truncated=result.truncated,
                        kernel_restarted=result.kernel_restarted)
        except ExecutionTimeoutError as exc:  # its outputs end with the ``timeout`` error, which says so
            done.update(status="timeout", message=exc.message, code=exc.code, details={"seconds": exc.details["seconds"]},
                        execution_count=None, execution_time_ms=exc.details["execution_time_ms"], truncated=False,
                        kernel_restarted=exc.details["kernel_restarted"])
        except BIError as exc:  # it did not run: no run time
            details = {name: value for name, value in exc.details.items() if name != "outputs"}  # those were sent
            done.update(status="error", message=exc.message, code=exc.code, details=details, execution_count=None,
                        execution_time_ms=None, truncated=False, kernel_restarted=False)
        self.emit({"type": "status", "state": "idle", "run_id": run_id})
        self.emit(done)

    async def interrupt(self) -> None:
        await self.session.interrupt()

    def _session_event(self, event: dict[str, Any]) -> None:
        if event["event"] == "left":  # another task holds it now (or will): the client reconnects there
            if self._socket is not None:
                self._socket.end(event["reason"])
            self.on_expired(self)
            return
        self.emit({"type": event["event"], **{k: v for k, v in event.items() if k != "event"}})
        if event["event"] == "closed":
            if self._socket is not None:
                self._socket.end(event["reason"])
            self.on_expired(self)  # forget it now, not when someone asks for it


class LiveSessions(LoggingConfigurable):
    """The live sessions of one server, by id; each is its user's only."""

    replay_buffer_bytes = Integer(
        limits.REPLAY_BYTES, help="Messages kept per card session for a socket that reconnects "
                                  "(oldest dropped first; the client is told how many it lost).").tag(config=True)

    def __init__(self, pool: KernelPool, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool = pool
        self._live: dict[str, LiveSession] = {}

    async def open(self, user: User, datasets: list[tuple[str, Any]], grant: Grant) -> LiveSession:
        live = LiveSession(await self.pool.open(user, datasets, grant=grant), self._expired, self.replay_buffer_bytes)
        self._live[live.id] = live
        return live

    @property
    def grace_seconds(self) -> float:
        return self.pool.reconnect_grace

    def get(self, user: User, session_id: str) -> LiveSession:
        """The live session if it is ``user``'s and still open."""
        live = self._live.get(session_id)
        if live is None:
            raise NotFoundError("That session has ended; open a new one.")
        self.pool.get(user, session_id)  # NotFoundError for anyone else's
        return live

    async def resume(self, user: User, session_id: str, after: int = 0) -> LiveSession:
        """The live session, if it is ``user``'s, still open and its grant still holds (else it ends). One
        held by a server that is gone is reattached from its record, numbering on from ``after`` (the last
        message the client saw), its kernel's outputs meanwhile replayed."""
        if session_id not in self._live:
            session, gap, lost = await self.pool.reattach(user, session_id, "card")
            if session_id not in self._live:
                live = LiveSession(session, self._expired, self.replay_buffer_bytes)
                live.sent.skip(after)
                self._live[session_id] = live
                live.replay_gap(gap, lost)
                live.adopt()
        live = self.get(user, session_id)
        await live.session.check_grant()
        return live

    async def close(self, live: LiveSession) -> None:
        """An explicit leave: end the session and its kernel now, not after the grace period."""
        await self.pool.close_session(live.session, "closed_by_user")

    def _expired(self, live: LiveSession) -> None:
        """Forget ``live``; close its session unless it is closed already (idled out, server stopping)."""
        self._live.pop(live.id, None)
        if not live.session.closed:
            asyncio.ensure_future(self.pool.close_session(live.session, "disconnected"))
