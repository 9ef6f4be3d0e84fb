"""The server-side kernel pool: sessions bound to one user, over the executor agents there are.

A session gets a ready kernel from an agent's warm pool (milliseconds), with the datasets it
asked for placed in the kernel's workdir. A kernel serves one session of one user and is
destroyed when the session closes or idles out; it is never handed to anyone else. One long
poll per agent (``GET /events``) hears of kernels that die by themselves, so their sessions
get a fresh kernel at once; the exits go over the bus (``kernel.exited``) to every API task.

The agents come from a discovery (``discovery``): a fixed list, or the running tasks of the
executor ECS service, re-read every ``discovery_interval``. New kernels go where ``placement``
says, by the loads the agents report. A task that leaves the service takes no new kernels; once
it stops answering, its sessions get a new kernel elsewhere and are told why. Every
``metrics_interval`` the pool's utilisation goes to the logs in CloudWatch's embedded metric
format, which the executor service scales on.

What comes out of a kernel is bounded before it is parsed: no message over ``kernel_message_bytes``
is read (the agent's relay cuts the link past it, all parts together, and the server's sockets
refuse a larger part: ``links``; the kernel is ended, its run gets ``output_too_large``),
and what it does between runs is charged to its ``BackgroundBudget``, whose CPU time is read from
the agents every ``background_poll_seconds``. A kernel ended for either is replaced like one that died.

A session opened with a ``Grant`` runs only while ``gate`` (``services/session_rights.py``) finds the
grant still holds: it is checked before every run and resume, and a session that fails it is ended.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import hashlib
import math
import time
import urllib.parse
import uuid
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo
from prometheus_client import CollectorRegistry
from traitlets import Bool, Float, Integer
from traitlets.config import LoggingConfigurable

from kernels.wire import NOTEBOOK_REQUEST

from ..bus import Bus
from ..errors import BIError, NotFoundError, RateLimitedError, ServiceUnavailableError
from ..limits import (BACKGROUND_BYTES, BACKGROUND_CPU_SECONDS, BACKGROUND_POLL_SECONDS, CARD_RUNS_QUEUED,
                      JUPYTER_CONNECTED_IDLE_SECONDS, JUPYTER_WALL_SECONDS, KERNEL_DECODE_BYTES, KERNEL_MESSAGE_BYTES,
                      OUTPUT_BYTES)
from ..logs import get_logger
from ..models import User
from .agent_client import AgentClient, AgentError
from .background import BackgroundBudget
from .decode_budget import DecodeBudget
from .discovery import DiscoveryError, EcsExecutors, StaticExecutors
from .gap import unfinished_run
from .links import bound_messages, dropped
from .placement import AgentLoad, ranked, utilisation
from .pool_metrics import PoolMetrics
from .records import KernelRecords, datasets_of, grant_of
from .spares import SpareKernels
from .session import (BACKGROUND_LIMIT, MESSAGE_TOO_LARGE, Gate, Grant, Kernel, KernelSession, Limits,
                      TableKeeper, message_for)

log = get_logger("bi.execution.pool")

READY_ATTEMPT_SECONDS = 1.0
STATUS_WAIT_SECONDS = 0.1  # after a kernel_info reply, how long its status may take on iopub before another probe
RETRY_SECONDS = 1.0
PLACEMENT_RETRY_SECONDS = 2.0
HEALTH_TIMEOUT = 5.0  # a task that has gone quiet must not hold up every other reading
ROOM_ERRORS = (409, 503)  # the agent is full, draining or holds another user's kernels
GONE = "its executor task stopped"
KERNEL_EXITED = "kernel.exited"  # the bus topic of the agents' exit events
FULL = "every executor agent is full"
NO_CAPACITY = "no_capacity"
RECLAIMED = ("reclaimed: every kernel was in use, and this idle session's owner held more than a fair share "
             "of them")  # why a session ends when its kernel goes to a user under their share
TAKEN_OVER = "the session was reattached through another server"  # why a task lets go of a session it held
LINK_CHECK_SECONDS = 0.5  # after a dropped link, how long a dying kernel's exit gets to reach its agent


def tenant_of(user_id: str) -> str:
    """The pseudonym agents know a user by (they see no user ids)."""
    return hashlib.sha256(f"bi-tenant:{user_id}".encode()).hexdigest()[:32]


class KernelPool(LoggingConfigurable):
    execution_timeout = Float(10, help="Seconds card code may run per execution before it is stopped.").tag(config=True)
    jupyter_execution_timeout = Float(JUPYTER_WALL_SECONDS, help="Seconds a Jupyter kernel's code may run per "
                                      "execution (or other shell message) before it is stopped.").tag(config=True)
    interrupt_grace = Float(2, help="Seconds an interrupted execution gets to stop before its kernel is killed.").tag(config=True)
    output_limit_bytes = Integer(OUTPUT_BYTES, help="Output kept per execution; the rest is dropped with a notice.").tag(config=True)
    idle_timeout = Float(600, help="Seconds without an execution after which a session and its kernel are destroyed.").tag(config=True)
    jupyter_connected_idle_timeout = Float(JUPYTER_CONNECTED_IDLE_SECONDS, help="The same for a Jupyter kernel "
                                           "while a client has its channels open.").tag(config=True)
    sessions_per_user = Integer(4, help="Open sessions (kernels) one user may hold.").tag(config=True)
    reconnect_grace = Float(30, help="Seconds a live session waits for its websocket to reconnect before it ends.").tag(config=True)
    kernel_ready_timeout = Float(30, help="Seconds a new kernel gets to answer its first request.").tag(config=True)
    discovery_interval = Float(10, help="Seconds between readings of the executor list and the agents' loads.").tag(config=True)
    placement_timeout = Float(90, help="Seconds a new session waits for an executor with room (a task starting) "
                                       "before it gets 503.").tag(config=True)
    metrics_interval = Float(60, help="Seconds between pool utilisation metrics in the logs (CloudWatch EMF).").tag(config=True)
    kernel_message_bytes = Integer(KERNEL_MESSAGE_BYTES, help="Largest message a kernel may send: each part "
                                   "(ZeroMQ MAXMSGSIZE), and all parts together for bi serve's own agent, whose "
                                   "relay applies it; a larger one ends its run (output_too_large) and restarts "
                                   "the kernel.").tag(config=True)
    background_bytes = Integer(BACKGROUND_BYTES, help="Output a kernel may send outside runs (over its life) "
                               "before it is restarted.").tag(config=True)
    background_cpu_seconds = Float(BACKGROUND_CPU_SECONDS, help="CPU seconds a kernel may use outside runs "
                                   "(over its life) before it is restarted.").tag(config=True)
    background_poll_seconds = Float(BACKGROUND_POLL_SECONDS, help="Seconds between readings of the kernels' CPU "
                                    "time from their agents.").tag(config=True)
    decode_bytes = Integer(KERNEL_DECODE_BYTES, help="Parsed bytes of kernel messages held at once, read but not yet "
                           "handled, across all card sessions; past them a session's next message waits its "
                           "turn.").tag(config=True)
    queued_runs = Integer(CARD_RUNS_QUEUED, help="Card runs that may wait for a kernel while every executor is full "
                          "and no idle session can be reclaimed; past them a run gets 503 no_capacity at "
                          "once.").tag(config=True)
    spare_kernels = Bool(True, help="Keep one spare kernel per executor agent, connected ahead of need, for the "
                         "next session there (execution/spares.py): 15-30 ms less per kernel handed out, for "
                         "one idle kernel per agent and API task.").tag(config=True)

    def __init__(self, executors: StaticExecutors | EcsExecutors, make_client: Callable[[str], AgentClient],
                 registry: CollectorRegistry, tables: TableKeeper, bus: Bus | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.executors = executors
        self.bus = bus
        if bus is not None:
            bus.subscribe(KERNEL_EXITED, lambda envelope: self._kernel_exited(envelope.body["kernel_id"],
                                                                               envelope.body["event"]))
        self.make_client = make_client
        self.tables = tables
        self.metrics = PoolMetrics(registry)
        self.decoding = DecodeBudget(self.decode_bytes)
        self.sessions: dict[str, KernelSession] = {}
        self.agents: dict[str, AgentClient] = {}   # by base URL
        self.loads: dict[str, AgentLoad] = {}      # by base URL, from the agents' health
        self.hosts: dict[str, str] = {}            # base URL -> task ARN (or the URL)
        self.vanished: set[str] = set()            # agents the discovery no longer lists
        self.unreachable: set[str] = set()         # agents whose last call failed to connect
        self._kernels: weakref.WeakValueDictionary[str, Kernel] = weakref.WeakValueDictionary()
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._starting: collections.Counter[str] = collections.Counter()
        self._waiting = 0
        self._queued = 0  # opens of card runs waiting for a kernel in a full pool (at most queued_runs)
        self._one_shot: set[str] = set()  # sessions of card runs: not counted against sessions_per_user
        self._room = asyncio.Event()  # set (and replaced) whenever a kernel of this pool is destroyed
        self._closing: set[asyncio.Future[None]] = set()  # sessions closed without waiting for their kernel
        self._short_at = -math.inf  # when an open last found every executor full
        self._refreshing: asyncio.Future[None] | None = None
        self.image_version: str | None = None  # of the agents' kernels: part of result cache keys
        self.gate: Gate | None = None  # checks a session's grant before each run (set by the app)
        self.records: KernelRecords | None = None  # where interactive sessions' kernels are recorded (the app's)
        self._reattaching: dict[tuple[str, str, str], asyncio.Future[tuple[KernelSession, list[list[bytes]], int]]] = {}
        self.spares = SpareKernels(self._start_spare)

    def limits_for(self, kind: str) -> Limits:
        """The limits of sessions of ``kind``: Jupyter kernels run notebooks, with their own wall clock and
        a longer idle limit while connected; memory, CPU and output are bounded alike."""
        if kind == "jupyter":
            return Limits(self.jupyter_execution_timeout, self.interrupt_grace, self.output_limit_bytes,
                          self.idle_timeout, max(self.idle_timeout, self.jupyter_connected_idle_timeout))
        return Limits(self.execution_timeout, self.interrupt_grace, self.output_limit_bytes,
                      self.idle_timeout, self.idle_timeout)

    async def start(self) -> None:
        await self.refresh()
        self._tasks = [asyncio.create_task(loop()) for loop in (self._housekeeping, self._rediscover,
                                                                 self._publish_metrics, self._read_cpu)]

    # sessions ----------------------------------------------------------------
    async def open(self, user: User, datasets: list[tuple[str, Path]], kind: str = "card",
                   grant: Grant | None = None, interactive: bool = True) -> KernelSession:
        """A new session of ``user`` with a ready kernel that can ``load_dataset`` each named file; with a
        ``grant`` (what the files were given on), it runs only while the ``gate`` finds it still holds.

        Interactive sessions of every ``kind`` count against ``sessions_per_user``; the one-shot sessions
        of card runs do not (their runner bounds them per user). When every executor is full, a user under
        their fair share gets a kernel another user holds beyond theirs (``_make_room``); a card run that
        cannot have one waits for a kernel to be destroyed, in a queue of at most ``queued_runs``.
        """
        if interactive:
            held = len(self.interactive_of(user.id)) + self._starting[user.id]
            if held >= self.sessions_per_user:
                raise RateLimitedError(f"You already have {held} open sessions; close one (or wait for it to "
                                       "idle out) before opening another.",
                                       retry_after=60, details={"held": held, "limit": self.sessions_per_user},
                                       code="session_limit")
        self._starting[user.id] += interactive  # counted while the kernel starts: racing opens cannot pass
        start_kernel = functools.partial(self.start_kernel, tenant=tenant_of(user.id), notebook=kind == "jupyter")
        try:
            kernel = await start_kernel(datasets, make_room=functools.partial(self._make_room, user.id,
                                                                              queue=not interactive))
        finally:
            self._starting[user.id] -= interactive
        session = KernelSession(str(uuid.uuid4()), user.id, datasets, kernel, start_kernel, self.limits_for(kind),
                                self.metrics, self.tables, kind, grant, self.gate, decoding=self.decoding)
        self.sessions[session.id] = session
        if not interactive:
            self._one_shot.add(session.id)
        self.metrics.bound.inc()
        log.info("session_opened", session_id=session.id, user_id=user.id, kernel_id=kernel.kernel_id)
        if interactive:
            await self._record(session)
        return session

    async def _record(self, session: KernelSession) -> None:
        """Record the session's kernel in the store, and again whenever it gets a fresh one, so that another
        task can reattach to it; a store that fails leaves the session without failover, not without use."""
        if self.records is None:
            return
        session.listeners.add(functools.partial(self._record_again, session))
        await self._save_record(session)

    async def _save_record(self, session: KernelSession) -> None:
        assert self.records is not None
        try:
            await self.records.save(session)
        except BIError as exc:
            log.warning("kernel_record_failed", session_id=session.id, error=exc.message)

    def _record_again(self, session: KernelSession, event: dict[str, Any]) -> None:
        if event["event"] == "kernel_restarted" and not session.closed:
            task = asyncio.ensure_future(self._save_record(session))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def reattach(self, user: User, session_id: str, kind: str) -> tuple[KernelSession, list[list[bytes]], int]:
        """The session ``session_id`` of ``user``, held by another task that is gone: its kernel, recorded
        in the store, reached through its agent, with what the kernel published while no task was attached
        (each message's frames, and how many the agent dropped). ``NotFoundError`` when there is no such
        record of theirs, or its kernel is gone. Concurrent callers share one reattachment; a record of
        anyone else's is left alone (nothing attached, nothing of its kernel's output taken)."""
        if session_id in self.sessions:
            return self.get(user, session_id, kind), [], 0
        key = (session_id, user.id, kind)
        if key not in self._reattaching:
            self._reattaching[key] = asyncio.ensure_future(self._reattach(session_id, user.id, kind))
            self._reattaching[key].add_done_callback(lambda _: self._reattaching.pop(key, None))
        return await asyncio.shield(self._reattaching[key])

    async def _reattach(self, session_id: str, user_id: str, kind: str) -> tuple[KernelSession, list[list[bytes]], int]:
        gone = NotFoundError("No such session; it may have been closed or idled out.")
        loaded = await self.records.load(session_id) if self.records is not None else None
        if loaded is None or loaded[0].user_id != user_id or loaded[0].kind != kind:
            raise gone
        record, connection = loaded
        agent = self.agents.get(record.agent_url)
        if agent is None:
            raise gone
        try:
            status = await agent.kernel_status(record.kernel_id)
            if not status["alive"]:
                raise gone
            client = await self._connect(connection, running=True)
            try:
                gap, lost = await agent.take_gap(record.kernel_id)
            except BaseException:
                client.stop_channels()
                raise
        except AgentError as exc:
            log.warning("kernel_reattach_failed", session_id=session_id, kernel_id=record.kernel_id, error=str(exc))
            raise gone from exc
        kernel = self._adopt(agent, record.kernel_id, record.memory_mb, client, record.agent_id or None, connection)
        kernel.released = functools.partial(self._released, record.agent_url)
        start_kernel = functools.partial(self.start_kernel, tenant=tenant_of(user_id), notebook=record.kind == "jupyter")
        session = KernelSession(session_id, user_id, datasets_of(record), kernel, start_kernel,
                                self.limits_for(record.kind), self.metrics, self.tables, record.kind,
                                grant_of(record), self.gate, decoding=self.decoding)
        running = unfinished_run(kernel, gap) if record.kind == "card" else None
        if running is not None:  # before its reader first reads: none of its messages is dropped
            session.expect(running)
        self.sessions[session_id] = session
        self.metrics.bound.inc()
        log.info("session_reattached", session_id=session_id, user_id=user_id, kernel_id=record.kernel_id,
                 agent=record.agent_url, gap_messages=len(gap), gap_lost=lost)
        await self._record(session)
        return session, gap, lost

    def get(self, user: User, session_id: str, kind: str = "card") -> KernelSession:
        """The session if it is ``user``'s and of ``kind``; anyone else's does not exist for them."""
        session = self.sessions.get(session_id)
        if session is None or session.user_id != user.id or session.kind != kind:
            raise NotFoundError("No such session; it may have been closed or idled out.")
        return session

    def of_user(self, user: User, kind: str = "card") -> list[KernelSession]:
        """The user's interactive sessions of ``kind`` (card runs' one-shot sessions are not theirs to hold)."""
        return [s for s in self.interactive_of(user.id) if s.kind == kind]

    def interactive_of(self, user_id: str) -> list[KernelSession]:
        """The sessions of every kind that count against the user's ``sessions_per_user``."""
        return [s for s in self.sessions.values() if s.user_id == user_id and s.id not in self._one_shot]

    async def close_session(self, session: KernelSession, reason: str, wait: bool = True) -> None:
        """End the session; its kernel is destroyed before this returns, or (``wait`` False) right after,
        the pool waiting for it only when it closes."""
        if self.sessions.pop(session.id, None) is None:
            return
        if self.records is not None and session.id not in self._one_shot:
            try:
                held = await self.records.forget(session.id)
            except BIError as exc:  # it expires by itself; another task finds its kernel gone
                log.warning("kernel_record_not_deleted", session_id=session.id, error=exc.message)
            else:
                if not held:  # another task reattached to it: its kernel is that task's now
                    self.metrics.bound.dec()
                    session.leave(TAKEN_OVER)
                    log.info("session_taken_over", session_id=session.id, user_id=session.user_id, reason=reason)
                    return
        self._one_shot.discard(session.id)
        self.metrics.bound.dec()
        closing = asyncio.ensure_future(session.close(reason))
        log.info("session_closed", session_id=session.id, user_id=session.user_id, reason=reason)
        if wait:
            await closing
        else:
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    def _leave(self, session: KernelSession) -> None:
        """Let go of the session, its record and its kernel left for another task (``reattach``)."""
        del self.sessions[session.id]
        self.metrics.bound.dec()
        session.leave("server_stopping")
        log.info("session_left", session_id=session.id, user_id=session.user_id, kernel_id=session.kernel.kernel_id)

    # kernels -----------------------------------------------------------------
    async def start_kernel(self, datasets: list[tuple[str, Path]], tenant: str,
                           make_room: Callable[[], Awaitable[bool]] | None = None, notebook: bool = False) -> Kernel:
        """A ready kernel for ``tenant`` with ``datasets`` placed, from the best agent that has room; with
        ``notebook``, switched to the outputs of Jupyter frontends (``kernels.notebook_output``).

        When every serving agent is full, ``make_room`` may free a kernel, raise ``no_capacity`` at once, or
        (a card run's) answer that this open waits in the queue of ``queued_runs``; without it, or while agents
        are draining, starting or holding other users, wait up to ``placement_timeout`` for room (the executor
        service scales out on the utilisation this raises). An agent that fails otherwise is skipped, and if
        all do, 503 at once.
        """
        if not self.agents and isinstance(self.executors, StaticExecutors) and not self.executors.urls:
            raise ServiceUnavailableError("Card execution is off on this server: it has no executor agent "
                                          "(see the runbook: executor agents).", code="execution_off")
        failures: list[str] = []
        deadline = time.monotonic() + self.placement_timeout
        queued = False
        with self.metrics.spawn_seconds.time(), contextlib.ExitStack() as leaving:
            while True:
                room_only = True
                if self.agents and self.unreachable >= set(self.agents):
                    await self.refresh()  # one shared reading: an agent that is back takes kernels at once
                    if self.unreachable >= set(self.agents):
                        raise ServiceUnavailableError("No executor answers now; try again in a moment.",
                                                      {"reasons": failures[-5:]})
                for url in ranked(self.loads, tenant):
                    agent = self.agents[url]
                    self.loads[url] = self.loads[url].with_kernel(tenant)  # racing opens spread out
                    try:
                        kernel = await self._start_on(agent, datasets, tenant, notebook)
                    except AgentError as exc:
                        log.warning("kernel_start_failed", agent=url, error=str(exc))
                        failures.append(str(exc))
                        room_only = room_only and exc.status in ROOM_ERRORS
                        if exc.status == 599:
                            self.unreachable.add(url)
                        if url in self.loads:  # no more kernels there until its load is read again
                            self.loads[url] = dataclasses.replace(self.loads[url], draining=True)
                    else:
                        kernel.released = functools.partial(self._released, url)
                        return kernel
                if not room_only or time.monotonic() >= deadline:
                    raise ServiceUnavailableError("No executor can start a kernel now; try again in a moment.",
                                                  {"reasons": failures[-5:]})
                if make_room is not None:
                    await self.refresh()  # the loads that placement and failed starts left are guesses
                    if self.readiness() == FULL:
                        self._short_at = time.monotonic()
                        if await make_room():
                            continue
                        if not queued:
                            self._enqueue()
                            queued = True
                            leaving.callback(self._dequeue)
                await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        """Wait until a kernel of this pool is destroyed or ``PLACEMENT_RETRY_SECONDS`` pass, then re-read
        the agents (one reading shared by every waiting open)."""
        self._waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), PLACEMENT_RETRY_SECONDS)
            await self.refresh()
        finally:
            self._waiting -= 1

    def _enqueue(self) -> None:
        """Take a place in the queue of card runs waiting for a kernel, or refuse with ``no_capacity`` when it is full."""
        if self._queued >= self.queued_runs:
            raise ServiceUnavailableError(
                f"Every executor is full and {self._queued} card runs are already waiting for a kernel (at most "
                f"{self.queued_runs} may wait); try again in a moment.",
                {"queued": self._queued, "limit": self.queued_runs}, code=NO_CAPACITY)
        self._queued += 1

    def _dequeue(self) -> None:
        self._queued -= 1

    def _released(self, url: str) -> None:
        """A kernel on the agent at ``url`` was destroyed: its place counts as free at once (not only from
        the next reading of the agent's load), and opens waiting for room try again."""
        if url in self.loads:
            self.loads[url] = self.loads[url].without_kernel()
        self._room.set()
        self._room = asyncio.Event()

    async def _start_on(self, agent: AgentClient, datasets: list[tuple[str, Path]], tenant: str,
                        notebook: bool) -> Kernel:
        spare = self.spares.take(agent) if self.spare_kernels else None
        try:
            created = await agent.create_kernel(tenant, spare.kernel_id if spare is not None else None)
        except BaseException as exc:
            if spare is None:
                raise
            if isinstance(exc, AgentError) and exc.status != 599:  # refused before the claim (full, say): still a spare
                self.spares.put_back(agent, spare)
            else:
                self.spares.let_go(spare)
            raise
        if spare is not None and created["kernel_id"] != spare.kernel_id:  # it died, or lived beside another tenant
            self.spares.let_go(spare)
            spare = None
        kernel_id = created["kernel_id"]
        connection = self._reachable(agent, created["connection"])
        names_of: dict[Path, list[str]] = {}  # a renamed dataset's names share one file, placed once
        for name, path in datasets:
            names_of.setdefault(path, []).append(name)
        placing = [self._place_dataset(agent, kernel_id, names, path) for path, names in names_of.items()]
        try:
            if spare is not None:
                await all_of(*placing)
                client = spare.client
            else:  # the datasets are placed while the kernel's first reply comes: it reads them only once code runs
                client, *_ = await all_of(self._connect(connection), *placing)
            try:
                if notebook:
                    await self._switch_to_notebook(client)
            except BaseException:
                client.stop_channels()
                raise
        except BaseException:
            if spare is not None:
                spare.leave()
            with contextlib.suppress(AgentError):
                await agent.delete_kernel(kernel_id)
            raise
        self.metrics.handed_out.labels("fresh" if spare is None else "spare").inc()
        if self.spare_kernels:
            self.spares.fill(agent)
        return spare or self._adopt(agent, kernel_id, created["limits"]["memory_mb"], client,
                                    created.get("agent_id"), connection)

    async def _start_spare(self, agent: AgentClient) -> Kernel:
        """A spare kernel of ``agent`` (``spares``), connected and answering."""
        created = await agent.create_spare()
        connection = self._reachable(agent, created["connection"])
        try:
            client = await self._connect(connection)
        except BaseException:
            with contextlib.suppress(AgentError):
                await agent.delete_kernel(created["kernel_id"])
            raise
        return self._adopt(agent, created["kernel_id"], created["limits"]["memory_mb"], client,
                           created.get("agent_id"), connection)

    @staticmethod
    def _reachable(agent: AgentClient, connection: dict[str, Any]) -> dict[str, Any]:
        """The connection info an agent handed out, as this server reaches it."""
        connection = dict(connection)
        if connection["transport"] == "tcp":  # relayed: reach it where we reach its agent
            connection["ip"] = urllib.parse.urlsplit(agent.base_url).hostname
        return connection

    async def _connect(self, connection: dict[str, Any], running: bool = False) -> AsyncKernelClient:
        """A client of the kernel at ``connection`` (relayed by its agent), once it answers; ``running``: it may
        be running code (``_wait_until_ready``)."""
        client = AsyncKernelClient()
        try:
            client.load_connection_info(cast(KernelConnectionInfo, connection))
            bound_messages(client, self.kernel_message_bytes)
            client.start_channels(hb=False)  # deaths come from the agent's events
            await self._wait_until_ready(client, control=running)
        except BaseException:
            client.stop_channels()
            raise
        return client

    def _adopt(self, agent: AgentClient, kernel_id: str, memory_mb: int, client: AsyncKernelClient,
               agent_id: str | None, connection: dict[str, Any]) -> Kernel:
        """The pool's ``Kernel`` of a connected client: its budget and link watch, and its exits heard."""
        budget = BackgroundBudget(self.background_bytes, self.background_cpu_seconds,
                                  functools.partial(self._over_budget, kernel_id))
        kernel = Kernel(agent, kernel_id, memory_mb, client, asyncio.get_running_loop().create_future(), budget,
                        agent_id, connection)
        kernel.watch = asyncio.create_task(self._watch_links(kernel))
        self._kernels[kernel_id] = kernel
        return kernel

    async def _place_dataset(self, agent: AgentClient, kernel_id: str, names: list[str], path: Path) -> None:
        """Place the file ``path`` as ``names[0]`` and its other names as hard links to it."""
        placement = await agent.place_dataset(kernel_id, names[0], path)
        self.metrics.datasets_placed.labels(placement.mechanism).inc()
        self.metrics.dataset_bytes_copied.labels(placement.mechanism).inc(placement.bytes_copied)
        for name in names[1:]:
            await agent.link_dataset(kernel_id, name, names[0])

    async def _watch_links(self, kernel: Kernel) -> None:
        """End ``kernel`` if a link to it drops while it lives: it sent a message past ``kernel_message_bytes``."""
        channel = await dropped(kernel.client)
        kernel.link_dropped.set()
        await asyncio.sleep(LINK_CHECK_SECONDS)
        if kernel.exited.done():
            return
        try:
            alive = (await kernel.agent.kernel_status(kernel.kernel_id))["alive"]
        except AgentError:
            return  # its agent's loss is the agent follower's to report
        if alive:
            self._kernel_failed(kernel, MESSAGE_TOO_LARGE, channel=channel, reason=(
                f"the kernel sent a message larger than {self.kernel_message_bytes / 2 ** 20:.0f} MB, more than "
                "any output may take"))

    def _over_budget(self, kernel_id: str, reason: str) -> None:
        kernel = self._kernels.get(kernel_id)
        if kernel is not None:
            self._kernel_failed(kernel, BACKGROUND_LIMIT, reason=reason, bytes=kernel.budget.bytes,
                                cpu_seconds=round(kernel.budget.cpu_seconds, 3))

    async def _wait_until_ready(self, client: AsyncKernelClient, control: bool = False) -> None:
        """Return once a ``kernel_info`` request is answered on shell (``control``: on control, which answers
        while code runs, as it may in a kernel another task left) and its status seen on iopub.

        Seeing our own request's status proves the iopub subscription is live, so no output of
        the first execution is lost (ZeroMQ drops what a subscriber publishes before it joins). A status
        not seen within ``STATUS_WAIT_SECONDS`` of its reply was published before the subscription joined
        (or is late): another request is sent at once, and the status of any of them will do.
        """
        deadline = time.monotonic() + self.kernel_ready_timeout
        probes: set[str] = set()
        while time.monotonic() < deadline:
            if control:
                request = client.session.msg("kernel_info_request")
                client.control_channel.send(request)
                msg_id = request["header"]["msg_id"]
            else:
                msg_id = client.kernel_info()
            probes.add(msg_id)
            if (await message_for(client.get_control_msg if control else client.get_shell_msg, msg_id,
                                  READY_ATTEMPT_SECONDS)
                    and await message_for(client.get_iopub_msg, probes, STATUS_WAIT_SECONDS)):
                return
        raise AgentError(f"the kernel did not answer in {self.kernel_ready_timeout:g} s", 504)

    async def _switch_to_notebook(self, client: AsyncKernelClient) -> None:
        """Send ``NOTEBOOK_REQUEST`` and return once it is answered and the kernel is idle again (so that no
        status of it reaches the kernel's user)."""
        request = client.session.msg(NOTEBOOK_REQUEST, {})
        msg_id = request["header"]["msg_id"]
        client.shell_channel.send(request)
        deadline = time.monotonic() + self.kernel_ready_timeout
        if await message_for(client.get_shell_msg, msg_id, self.kernel_ready_timeout):
            while (message := await message_for(client.get_iopub_msg, msg_id, deadline - time.monotonic())):
                if message["msg_type"] == "status" and message["content"].get("execution_state") == "idle":
                    return
        raise AgentError(f"the kernel did not switch to notebook outputs in {self.kernel_ready_timeout:g} s", 504)

    # the agents --------------------------------------------------------------
    async def refresh(self) -> None:
        """Read the executor list and every agent's load; concurrent callers share one reading."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._read_agents())
            self._refreshing.add_done_callback(lambda _: setattr(self, "_refreshing", None))
        await asyncio.shield(self._refreshing)

    async def _read_agents(self) -> None:
        """Take in new agents, stop placing on vanished ones, read loads, protect busy tasks."""
        try:
            found = await self.executors.discover()
        except DiscoveryError as exc:
            log.warning("executor_discovery_failed", error=str(exc))
        else:
            for url, host in found.items():
                if url not in self.agents:
                    self._add_agent(url, host)
                self.vanished.discard(url)
            for url in set(self.agents) - set(found):
                if url not in self.vanished:
                    log.info("executor_vanished", agent=url)
                    self.vanished.add(url)
        await asyncio.gather(*(self._read_load(url) for url in list(self.agents)))
        await self.executors.protect({self.hosts[url]: load.in_use > 0 for url, load in self.loads.items()
                                      if url not in self.vanished})

    def _add_agent(self, url: str, host: str) -> None:
        self.agents[url] = self.make_client(url)
        self.hosts[url] = host
        self.loads[url] = AgentLoad(draining=True)  # no kernels until its health is read
        self._followers[url] = asyncio.create_task(self._follow_exits(self.agents[url]))
        log.info("executor_added", agent=url, host=host)

    async def _read_load(self, url: str) -> None:
        """The agent's load from its health; a vanished agent that no longer answers is dropped."""
        agent = self.agents[url]
        try:
            health = await agent.health(HEALTH_TIMEOUT)
        except AgentError as exc:
            if url in self.vanished:
                self._remove_agent(url)
            else:
                log.warning("executor_unhealthy", agent=url, error=str(exc))
                self.loads[url] = dataclasses.replace(self.loads[url], draining=True)
                self.unreachable.add(url)
            return
        self.unreachable.discard(url)
        self.loads[url] = dataclasses.replace(AgentLoad.from_health(health),
                                              draining=health.get("draining", False) or url in self.vanished)
        self.metrics.ready.labels(url).set(health["pool"]["ready"])
        self.image_version = health["image_version"]

    def agent_lost(self, url: str, message: str) -> None:
        """The agent at ``url`` is gone with its kernels (its process died): no kernels go there until it
        answers again, and the sessions it served hear ``message``."""
        agent = self.agents.get(url)
        if agent is None:
            return
        log.error("executor_lost", agent=url, reason=message)
        self.unreachable.add(url)
        self.loads[url] = dataclasses.replace(self.loads[url], draining=True)
        self._agent_lost(agent, message)

    def readiness(self) -> str | None:
        """Why no executor can take a new kernel now, or None when one can (from the last readings)."""
        if not self.agents:
            return "no executor agent is configured or found"
        serving = [load for url, load in self.loads.items() if url not in self.unreachable and not load.draining]
        if not serving:
            if self.unreachable >= set(self.agents):
                return "no executor agent answers"
            return "every executor agent is draining or starting"
        if all(load.in_use >= load.capacity for load in serving):
            return FULL
        return None

    async def _make_room(self, user_id: str, queue: bool = False) -> bool:
        """Every executor is full: free a kernel for ``user_id`` (True), or refuse with ``no_capacity`` at once;
        with ``queue`` (a card run, which holds its kernel for one run), answer False instead of refusing: the
        open waits for a kernel to be destroyed.

        The fair share is the serving capacity over the users holding kernels (``user_id`` included),
        at least one. A user under it gets the least recently used idle session of whoever holds the
        most beyond it, which is closed with the reason ``reclaimed``; a user at or over it, or with
        nothing idle to reclaim, is refused.
        """
        capacity = sum(load.capacity for url, load in self.loads.items()
                       if url not in self.unreachable and not load.draining)
        held = collections.Counter(s.user_id for s in self.sessions.values()) + self._starting
        users = len(set(held) | {user_id})
        share = max(1, capacity // users)
        mine = held[user_id] - 1  # the open that asks is counted while it starts
        if mine >= share:
            if queue:
                return False
            raise ServiceUnavailableError(
                f"Every executor is full and you hold {mine} of its {capacity} kernels, at least your fair share "
                f"({share} while {users} people use them): close a session you no longer need, or try again "
                "later.", {"held": mine, "fair_share": share, "capacity": capacity}, code=NO_CAPACITY)
        idle = [s for s in self.sessions.values() if held[s.user_id] > share and not s.executing and not s.closed]
        if not idle:
            if queue:
                return False
            raise ServiceUnavailableError(
                f"Every executor is full and none of its {capacity} kernels can be given to you now (each is running "
                "code, or held within someone's fair share); try again in a moment.",
                {"held": mine, "fair_share": share, "capacity": capacity}, code=NO_CAPACITY)
        victim = min(idle, key=lambda s: (-held[s.user_id], s.last_used))
        log.warning("session_reclaimed", session_id=victim.id, user_id=victim.user_id, held=held[victim.user_id],
                    fair_share=share, for_user_id=user_id)
        await self.close_session(victim, RECLAIMED)
        return True

    def _remove_agent(self, url: str) -> None:
        """The agent is gone: its sessions get a kernel elsewhere."""
        agent = self.agents.pop(url)
        self.loads.pop(url, None)
        self.hosts.pop(url, None)
        self.vanished.discard(url)
        self.unreachable.discard(url)
        self._followers.pop(url).cancel()
        with contextlib.suppress(KeyError):
            self.metrics.ready.remove(url)
        log.warning("executor_removed", agent=url)
        self.spares.drop(agent)
        self._agent_lost(agent, GONE)
        agent.close()

    async def _follow_exits(self, agent: AgentClient) -> None:
        """Long-poll the agent's exit events and hand each to the kernel's session."""
        agent_id, after = None, 0
        while True:
            try:
                answer = await agent.events(after)
            except AgentError as exc:
                log.warning("agent_events_failed", agent=agent.base_url, error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if agent_id is not None and answer["agent_id"] != agent_id:
                log.error("agent_restarted", agent=agent.base_url)
                self._agent_lost(agent, "its executor agent restarted", survivor=answer["agent_id"])
            agent_id, after = answer["agent_id"], answer["last"]
            for event in answer["events"]:
                if self.bus is None:
                    self._kernel_exited(event["kernel_id"], event)
                else:  # to the task holding the kernel's session, whichever it is
                    await self.bus.publish(KERNEL_EXITED, {"kernel_id": event["kernel_id"], "event": event})

    def _kernel_exited(self, kernel_id: str, event: dict[str, Any]) -> None:
        kernel = self._kernels.get(kernel_id)
        if kernel is None or kernel.exited.done():
            return
        log.warning("kernel_exited", kernel_id=kernel_id, status=event.get("status"), oom=event.get("oom"))
        self._end_kernel(kernel, "memory" if event.get("oom") else "exited", event)

    def _kernel_failed(self, kernel: Kernel, code: str, reason: str, **fields: Any) -> None:
        """``kernel`` broke a bound no run holds it to: log ``code`` and replace it as if it had died."""
        if kernel.exited.done():
            return
        log.warning(code, kernel_id=kernel.kernel_id, reason=reason, **fields)
        self._end_kernel(kernel, code, {"status": None, "oom": False, "message": reason, "code": code})

    def _end_kernel(self, kernel: Kernel, cause: str, event: dict[str, Any]) -> None:
        """``kernel`` is gone (``event`` says why): its session gets a fresh one."""
        self.metrics.deaths.labels(cause).inc()
        kernel.exited.set_result(event)
        for session in list(self.sessions.values()):
            if session.kernel is kernel:
                asyncio.create_task(session.kernel_exited(kernel.kernel_id))

    def _agent_lost(self, agent: AgentClient, message: str, survivor: str | None = None) -> None:
        """Every kernel the agent held is gone, but those of the ``survivor`` agent id (a restarted
        agent at the same address may have handed out kernels before its restart was noticed)."""
        for kernel in list(self._kernels.values()):
            if kernel.agent is agent and (survivor is None or kernel.agent_id != survivor):
                self._kernel_exited(kernel.kernel_id, {"status": None, "oom": False, "message": message})

    # background work ---------------------------------------------------------
    async def _housekeeping(self) -> None:
        """Close idle sessions: past ``idle_timeout`` without use, or a longer limit while connected."""
        while True:
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if not session.executing and now - session.last_used > session.limits.idle_limit(session.connections > 0):
                    await self.close_session(session, "idle")
            await asyncio.sleep(min(self.discovery_interval, self.idle_timeout / 4))

    async def _rediscover(self) -> None:
        while True:
            await asyncio.sleep(self.discovery_interval)
            await self.refresh()

    async def _read_cpu(self) -> None:
        """Charge the CPU time kernels use between runs to their background budgets (one call per agent)."""
        while True:
            await asyncio.sleep(self.background_poll_seconds)
            agents = list({kernel.agent for kernel in self._kernels.values() if not kernel.exited.done()})
            readings = await asyncio.gather(*(agent.usage() for agent in agents), return_exceptions=True)
            for agent, usage in zip(agents, readings, strict=True):
                if isinstance(usage, BaseException):  # its health and events report an agent gone quiet
                    log.warning("kernel_usage_failed", agent=agent.base_url, error=str(usage))
                    continue
                for kernel_id, seconds in usage["cpu_seconds"].items():
                    kernel = self._kernels.get(kernel_id)
                    if kernel is not None and not kernel.exited.done():
                        kernel.budget.cpu_reading(seconds)

    async def _publish_metrics(self) -> None:
        while True:
            await asyncio.sleep(self.metrics_interval)
            self.publish_utilisation()

    def publish_utilisation(self) -> None:
        """One log line in CloudWatch's embedded metric format: what the executor service scales on.

        While opens wait for room, or found none since the last publication, the pool is full, whatever
        the agents say.
        """
        serving = [load for load in self.loads.values() if not load.draining]
        short = self._waiting or time.monotonic() - self._short_at < self.metrics_interval
        percent = 100.0 if short else utilisation(self.loads)
        log.info("pool_utilisation", **self.metrics.emf(self.executors.name, {
            "PoolUtilization": percent, "ExecutorTasks": len(serving),
            "KernelsInUse": sum(load.in_use for load in self.loads.values())}))

    async def close(self, keep_kernels: bool = False) -> None:
        """Stop the pool and end its sessions; with ``keep_kernels`` (this task is being replaced), the kernels
        of recorded sessions are left running on their agents, which keep their output until another task
        reattaches (or destroy them once orphaned), and only the others are destroyed."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for follower in self._followers.values():
            follower.cancel()
        await asyncio.gather(*self._followers.values(), return_exceptions=True)
        for session in list(self.sessions.values()):
            if keep_kernels and self.records is not None and session.id not in self._one_shot:
                self._leave(session)
            else:
                await self.close_session(session, "server_stopping")
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self.spares.close()
        for agent in self.agents.values():
            agent.close()


async def all_of(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await ``awaitables`` at once, their results in order; when one fails, the others are cancelled (and
    awaited) before its error is raised, so nothing is left running against a kernel being given up."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
