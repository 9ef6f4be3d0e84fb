"""One user's kernel session: runs code in its kernel under the runbook's limits.

A session keeps its kernel (and the kernel's variables) between executions, like a notebook.
The limits are enforced from the server, outside the kernel:

- wall clock: past ``wall_seconds`` the kernel is interrupted; if it has not stopped
  ``interrupt_grace`` seconds later (card code can ignore SIGINT or sit in one C call), the
  agent kills it and the session gets a fresh kernel. Either way the caller gets
  ``ExecutionTimeoutError`` (HTTP 408) with what the card printed before;
- output: past ``output_bytes`` a notice is added, the rest is dropped and the run is
  interrupted (then killed the same way);
- memory: a ``MemoryError`` (address space limit) or the kernel's death by the OOM killer
  (memory cgroup) becomes an error output naming the limit, not a hang;
- one message: a part past the pool's ``kernel_message_bytes`` never reaches the server
  (``links``); the run ends with ``OutputTooLargeError`` (``output_too_large``) and a fresh kernel.
- parsing: a message part of more values than ``links`` allows is never parsed (the run gets the error
  output ``output_too_complex``); every other message waits for its parsed cost in the pool's
  ``DecodeBudget``, shared by all sessions, and gives it back once its run has handled it.

A run ends at its ``execute_reply`` (and the ``idle`` status that follows it), not at an ``idle``
alone, which card code can publish itself. What the kernel sends outside runs is charged to its
``BackgroundBudget`` and dropped. A kernel that dies by itself, or that the pool ends for breaking a
bound outside runs, is replaced at once and the session's listeners hear of it.
``RunLimit`` holds the wall-clock and output-cap logic, so that code relayed to the kernel by other
means (the Jupyter websocket) is stopped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any, Protocol

import zmq
from jupyter_client.asynchronous import AsyncKernelClient

from kernels.disk_bounds import DISK_LIMIT

from ..errors import (BIError, ConflictError, ExecutionTimeoutError, KernelLostError, OutputTooComplexError,
                      OutputTooLargeError)
from ..limits import OUTPUT_BYTES, RUN_QUEUE_BYTES
from ..logs import get_logger
from ..models import utcnow
from .agent_client import AgentClient, AgentError
from .background import BackgroundBudget
from .decode_budget import DecodeBudget
from .links import message_cost, unpack_part
from .outputs import TIMEOUT, OutputCollector, OutputListener, amount, error_output, timeout_output
from .pool_metrics import PoolMetrics
from .run_queue import RunQueue
from .tables import table_name

log = get_logger("bi.execution")

POLL_SECONDS = 0.25  # how soon a kernel's death is noticed while waiting for its output
REPLY_TIMEOUT = 5
IDLE_WAIT_SECONDS = 2.0  # the least a run waits for its idle after its execute_reply (more: to its wall clock)
MESSAGE_TOO_LARGE = "kernel_message_too_large"  # a kernel ended for a message past MAXMSGSIZE
BACKGROUND_LIMIT = "kernel_background_limit"  # a kernel ended past its background budget
LABEL = "|run="  # between a request's own msg_id and its run's label (``run_label``)
ENAME_OF_CODE = {MESSAGE_TOO_LARGE: "OutputTooLarge", BACKGROUND_LIMIT: "BackgroundLimitExceeded",
                 DISK_LIMIT: "DiskLimitExceeded"}


@dataclasses.dataclass
class Limits:
    """The bounds of one kind of session (``KernelPool.limits_for``)."""

    wall_seconds: float = 10
    interrupt_grace: float = 2
    output_bytes: int = OUTPUT_BYTES
    idle_seconds: float = 600  # without use, then the session and its kernel are destroyed
    connected_idle_seconds: float = 600  # the same while a client is connected (``KernelSession.connections``)

    def idle_limit(self, connected: bool) -> float:
        return self.connected_idle_seconds if connected else self.idle_seconds


@dataclasses.dataclass
class Kernel:
    """A kernel on an agent, with its client; ``exited`` gets the agent's exit event (or the pool's,
    for a kernel it ends for breaking a bound: then with a ``code``).

    ``agent_id`` is the agent process's (its ``/events`` id): one restarted at the same address has another.
    """

    agent: AgentClient
    kernel_id: str
    memory_mb: int
    client: AsyncKernelClient
    exited: asyncio.Future[dict[str, Any]]
    budget: BackgroundBudget
    agent_id: str | None = None
    connection: dict[str, Any] = dataclasses.field(default_factory=dict)  # as the client connects, key included
    watch: asyncio.Task[None] | None = None  # the pool's watch on its links, done once one drops
    link_dropped: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    released: Callable[[], None] | None = None  # the pool's: its place on the agent is free again

    def leave(self) -> None:
        """Let go of the kernel and leave it running on its agent (for another task to reattach to)."""
        if self.watch is not None:
            self.watch.cancel()
        self.client.stop_channels()

    async def stop(self) -> None:
        """Destroy the kernel on its agent; once this returns its place there is free (the pool hears so once)."""
        if self.watch is not None:
            self.watch.cancel()
        self.client.stop_channels()
        with contextlib.suppress(AgentError):
            await self.agent.delete_kernel(self.kernel_id)
        released, self.released = self.released, None
        if released is not None:
            released()


KernelStarter = Callable[[list[tuple[str, Path]]], Awaitable[Kernel]]


@dataclasses.dataclass(frozen=True)
class Grant:
    """What a session was opened on, checked again before every run and resume (``Gate``), and for every
    session of a user whose rights change (``SessionRights.sweep``: the only check of a Jupyter kernel's,
    whose messages are not runs of ours): its user's right to read each dataset it loaded and, for a
    card's editor, to edit the card."""

    dataset_ids: tuple[str, ...] = ()
    card_id: str | None = None


Gate = Callable[["KernelSession"], Awaitable[None]]
"""Raises (a ``BIError``) once the session's grant no longer holds, having ended the session."""
ACCESS_REVOKED = "access_revoked"  # the reason a session ends when its grant no longer holds


class TableKeeper(Protocol):
    """Keeps the tables of DataFrame outputs (``services/output_tables.py``)."""

    def new_file(self) -> Path:
        """A path to fetch a table file to, which ``keep`` then takes over."""

    def keep(self, stream: Path, user_id: str, card_id: str | None, session_id: str) -> str:
        """Store the Arrow stream in the file ``stream`` (removing the file); its output_id (a ``BIError``
        for a stream it refuses)."""

    def drop_session(self, session_id: str) -> None:
        """The session's earlier editor tables are superseded or closed with it."""


SessionListener = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class ExecutionResult:
    status: str                       # "ok" or "error"
    outputs: list[dict[str, Any]]
    execution_count: int | None
    execution_time_ms: int
    truncated: bool = False
    kernel_restarted: bool = False

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RunLimit:
    """The wall clock and output cap of one run, enforced from outside the kernel.

    Call ``check`` as the run goes on. Once the run passes ``wall_seconds`` (or ``over_output``
    says its output passed the cap) it interrupts the kernel through the agent and gives it
    ``interrupt_grace`` seconds; past those it answers True: kill the kernel and start a fresh one.
    ``reason`` is then "timeout" or "output".
    """

    def __init__(self, session: KernelSession):
        self.session = session
        self.kernel = session.kernel
        self._loop = asyncio.get_running_loop()
        self.started = self._loop.time()
        self.deadline = self.started + session.limits.wall_seconds
        self.reason: str | None = None

    async def check(self, over_output: bool = False) -> bool:
        now = self._loop.time()
        if self.reason is None and (now >= self.deadline or over_output):
            self.reason = "timeout" if now >= self.deadline else "output"
            if self.reason == "timeout":
                self.session.metrics.timeouts.inc()
            self.deadline = now + self.session.limits.interrupt_grace
            await self.session.interrupt_kernel(self.kernel)
            return False
        return self.reason is not None and now >= self.deadline

    def remaining(self) -> float:
        """Seconds until ``check`` has something to do (without more output)."""
        return max(0.0, self.deadline - self._loop.time())

    def elapsed_ms(self) -> int:
        return round((self._loop.time() - self.started) * 1000)

    @property
    def kill_reason(self) -> str:
        return f"it did not stop when interrupted ({self.reason})"

    def message(self, restarted: bool) -> str:
        """What the user is told of a run stopped at a limit."""
        limits = self.session.limits
        passed = (f"ran longer than the {limits.wall_seconds:g} s limit" if self.reason == "timeout"
                  else f"produced more than {amount(limits.output_bytes)} of output")
        lost = " Its kernel did not stop when interrupted and was restarted: variables are lost." if restarted else ""
        return f"The code {passed} and was stopped.{lost}"


class KernelSession:
    """A kernel bound to one user; ``kind`` says who drives it ("card" sessions or "jupyter" kernels)."""

    def __init__(self, session_id: str, user_id: str, datasets: list[tuple[str, Path]], kernel: Kernel,
                 start_kernel: KernelStarter, limits: Limits, metrics: PoolMetrics, tables: TableKeeper,
                 kind: str = "card", grant: Grant | None = None, gate: Gate | None = None, *,
                 decoding: DecodeBudget):
        self.id = session_id
        self.user_id = user_id
        self.kind = kind
        self.datasets = datasets
        self.kernel = kernel
        self.start_kernel = start_kernel
        self.limits = limits
        self.metrics = metrics
        self.tables = tables
        self.grant = grant
        self.gate = gate
        self.decoding = decoding
        self.created_at = utcnow()
        self.last_used = time.monotonic()
        self.last_used_at = self.created_at
        self.executing = False
        self.connections = 0  # clients connected to it (Jupyter channels), which lengthen its idle limit
        self.closed = False
        self.broken = ""
        self.listeners: set[SessionListener] = set()
        self._lock = asyncio.Lock()
        self._run: tuple[str, RunQueue] | None = None  # the running execute_request
        self.expected: str | None = None  # the label of another task's run to ``follow``
        self._reader: asyncio.Task[None] | None = None
        self._read_iopub(kernel)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at, "last_used_at": self.last_used_at,
                "busy": self.executing, "card_id": self.grant.card_id if self.grant else None,
                "datasets": [name for name, _ in self.datasets],
                "limits": {"wall_seconds": self.limits.wall_seconds, "output_bytes": self.limits.output_bytes,
                           "memory_mb": self.kernel.memory_mb}}

    # executing ---------------------------------------------------------------
    async def execute(self, code: str, listener: OutputListener | None = None,
                      card_id: str | None = None, prelude: str = "", label: str | None = None) -> ExecutionResult:
        """Run ``code`` in the kernel; outputs go to ``listener`` as they come, and into the result. ``label``
        (an editor's run id) goes in the request's msg_id (``run_label``), so that a server reattaching to
        the kernel knows whose run its outputs are.

        DataFrame tables are kept for paging by this session's user (and viewers of ``card_id``); an
        editor run's (no ``card_id``) replace those of the session's previous run. A ``prelude`` (a card's
        parameter bindings: literals, no output) is sent just before, as a silent execution the kernel runs
        first: no round trip of its own, and if it failed, the kernel would abort ``code`` (an error result).
        """
        if self.executing:
            raise ConflictError("This session is already running code; wait for it or interrupt it.")
        self._check_not_broken()
        self.executing = True
        self.metrics.busy.inc()
        try:
            await self.check_grant()
            async with self._lock:
                self._check_not_broken()  # a replacement of a lost kernel that failed may have held the lock
                with self.metrics.execution_seconds.time():
                    return await self._execute(code, listener, card_id, prelude, label)
        finally:
            self.executing = False
            self.metrics.busy.dec()
            self.touch()

    def _check_not_broken(self) -> None:
        if self.broken:
            raise KernelLostError(f"{self.broken} Open a new session to go on.")

    def expect(self, msg_id: str) -> None:
        """The labelled run ``msg_id`` another task started is going on (a reattachment's gap shows it): its
        messages are kept from now on for ``follow``, and nothing else runs before it ends."""
        self._run = (msg_id, RunQueue(RUN_QUEUE_BYTES, self.decoding))
        self.executing = True
        self.expected = run_label(msg_id)

    async def follow(self, listener: OutputListener) -> ExecutionResult:
        """Follow the run ``expect`` named to its ``idle`` (its reply went to the task that sent it), its outputs
        going to ``listener``, held to the wall clock and output cap from now."""
        assert self._run is not None
        messages = self._run[1]
        self.expected = None
        self.metrics.busy.inc()
        try:
            async with self._lock:
                self._check_not_broken()
                kernel = self.kernel
                collector = OutputCollector(self.limits.output_bytes, kernel.memory_mb, listener,
                                            lambda stream: self.tables.keep(stream, self.user_id, None, self.id))
                kernel.budget.run_started()
                try:
                    return await self._follow(kernel, RunLimit(self), collector, messages, None)
                finally:
                    self._run = None
                    await messages.close()
                    kernel.budget.run_ended()
        finally:
            self.executing = False
            self.metrics.busy.dec()
            self.touch()

    async def check_grant(self) -> None:
        """Raise (and end the session) if the grant it was opened on no longer holds; sessions without a
        grant (a saved card's run, checked just before) pass."""
        if self.grant is not None and self.gate is not None:
            await self.gate(self)

    async def _execute(self, code: str, listener: OutputListener | None, card_id: str | None,
                       prelude: str, label: str | None) -> ExecutionResult:
        kernel = self.kernel
        limit = RunLimit(self)
        self.tables.drop_session(self.id)
        collector = OutputCollector(self.limits.output_bytes, kernel.memory_mb, listener,
                                    lambda stream: self.tables.keep(stream, self.user_id, card_id, self.id))
        messages = RunQueue(RUN_QUEUE_BYTES, self.decoding)
        if prelude:
            kernel.client.execute(prelude, silent=True, store_history=False, allow_stdin=False, stop_on_error=True)
        request = kernel.client.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False,
            "stop_on_error": True})
        if label is not None:
            request["header"]["msg_id"] = f"{request['header']['msg_id']}{LABEL}{label}"
        msg_id = request["header"]["msg_id"]
        kernel.client.shell_channel.send(request)
        self._run = (msg_id, messages)
        kernel.budget.run_started()
        replied = asyncio.ensure_future(message_for(
            kernel.client.get_shell_msg, msg_id,
            self.limits.wall_seconds + self.limits.interrupt_grace + REPLY_TIMEOUT))
        try:
            return await self._follow(kernel, limit, collector, messages, replied)
        finally:
            replied.cancel()
            self._run = None
            await messages.close()
            kernel.budget.run_ended()

    async def _follow(self, kernel: Kernel, limit: RunLimit, collector: OutputCollector,
                      messages: RunQueue,
                      replied: asyncio.Future[dict[str, Any] | None] | None) -> ExecutionResult:
        """Collect the run's outputs until its ``execute_reply`` (the wall clock and output cap applying), then
        until its ``idle`` on iopub: the kernel sends that after every output of the run, and iopub keeps its
        order, so no output is lost however far a loaded machine lets iopub fall behind the shell reply. The
        wait for the idle ends with the wall clock (at least ``IDLE_WAIT_SECONDS`` after the reply), or when the
        kernel's link drops.

        Only the reply ends the code's part: card code can publish an ``idle`` status of its own (it only cuts
        its own outputs short). A run followed without its reply (``replied`` None: ``follow``) ends at its idle.
        """
        loop = asyncio.get_running_loop()
        reply: dict[str, Any] | None = None
        idle, idle_until = False, float("inf")
        while reply is None or not (idle or loop.time() >= idle_until or kernel.link_dropped.is_set()):
            if self.closed:
                collector.add(error_output("SessionClosed", "the session was closed while the card ran"))
                return ExecutionResult("error", collector.outputs, None, limit.elapsed_ms())
            if kernel.exited.done():
                return await self._died_while_running(collector, limit)
            if reply is None and await limit.check(collector.truncated):  # the code ran to its reply: no limit left
                await self._replace_kernel(limit.kill_reason)
                return self._stopped(limit, collector, restarted=True)
            if limit.reason == "timeout":  # the KeyboardInterrupt our interrupt raises reads as the timeout
                collector.timed_out = self.limits.wall_seconds
            if reply is None and replied is not None and replied.done():
                reply = (replied.result() or {}).get("content", {})
                idle_until = max(limit.started + self.limits.wall_seconds, loop.time() + IDLE_WAIT_SECONDS)
                continue
            wait = min(POLL_SECONDS, limit.remaining() if reply is None else max(0.0, idle_until - loop.time()))
            message = await next_message(messages, replied if reply is None else None, wait)
            if message is None:
                continue
            if message["msg_type"] == "status" and message["content"].get("execution_state") == "idle":
                idle = True
                reply = {} if replied is None else reply
            else:
                room = collector.table_room()
                name = table_name(message) if room else None
                await collector.add_message(message, await self._fetch_table(kernel, name, room) if name else None)
        if kernel.link_dropped.is_set() and kernel.watch is not None:
            await asyncio.wait([kernel.watch])  # the pool's verdict: a message too large, or a death
            if kernel.exited.done():
                return await self._died_while_running(collector, limit)
        if limit.reason is not None:
            return self._stopped(limit, collector, restarted=False)
        status = "error" if collector.has_error or reply.get("status") in ("error", "aborted") else "ok"
        return ExecutionResult(status, collector.outputs, reply.get("execution_count"),
                               limit.elapsed_ms(), collector.truncated)

    async def _fetch_table(self, kernel: Kernel, name: str, max_bytes: int) -> Path | None:
        """The table file ``name`` the kernel wrote for a DataFrame output, fetched from its agent (at most
        ``max_bytes``: what the run may still store); None (the output keeps its first rows) when the agent
        cannot serve it."""
        target = self.tables.new_file()
        try:
            await kernel.agent.fetch_table(kernel.kernel_id, name, target, max_bytes)
        except (AgentError, OSError) as exc:
            target.unlink(missing_ok=True)
            log.warning("output_table_unavailable", session_id=self.id, kernel_id=kernel.kernel_id, error=str(exc))
            return None
        return target

    def _stopped(self, limit: RunLimit, collector: OutputCollector, restarted: bool) -> ExecutionResult:
        """The result of a run stopped from outside; a timeout is an ``ExecutionTimeoutError`` whose outputs end
        with the ``timeout`` error (with the traceback of where the code was, if it stopped when interrupted)."""
        if limit.reason == "output":
            return ExecutionResult("error", collector.outputs, None, limit.elapsed_ms(), True, restarted)
        seconds = self.limits.wall_seconds
        if not any(output.get("ename") == TIMEOUT for output in collector.outputs):
            collector.timed_out = seconds
            collector.add(timeout_output(seconds, []))
        raise ExecutionTimeoutError(limit.message(restarted), {
            "outputs": collector.outputs, "kernel_restarted": restarted, "execution_time_ms": limit.elapsed_ms(),
            "seconds": seconds})

    async def _died_while_running(self, collector: OutputCollector, limit: RunLimit) -> ExecutionResult:
        event = self.kernel.exited.result()
        await self._replace_kernel(event["message"])
        if event.get("code") == MESSAGE_TOO_LARGE:
            raise OutputTooLargeError(f"The run was stopped: {event['message']}. The kernel was restarted: "
                                      "variables are lost.", {
                "outputs": collector.outputs, "kernel_restarted": True, "execution_time_ms": limit.elapsed_ms()})
        collector.truncated = False  # the cause goes in even after a truncation notice
        collector.add(death_output(event, replaced=not self.broken))
        return ExecutionResult("error", collector.outputs, None, limit.elapsed_ms(), False, not self.broken)

    def _read_iopub(self, kernel: Kernel) -> None:
        """Read a card kernel's iopub from now on: the run's messages go to it, the rest is charged
        to the kernel's background budget (and dropped)."""
        if self.kind == "card":
            self._reader = asyncio.create_task(self._iopub(kernel))

    async def _iopub(self, kernel: Kernel) -> None:
        socket, session = kernel.client.iopub_channel.socket, kernel.client.session
        with contextlib.suppress(zmq.ZMQError):  # its kernel was stopped
            while True:
                frames = await socket.recv_multipart()
                size = sum(len(frame) for frame in frames)
                try:
                    parts = session.feed_identities(frames)[1]
                    cost = message_cost(parts)
                except ValueError as exc:  # no delimiter, or a part too deep or with too many values
                    log.warning("kernel_message_dropped", session_id=self.id, kernel_id=kernel.kernel_id,
                                error=str(exc))
                    await self._refused(frames, str(exc))
                    continue
                await self.decoding.take(cost)
                try:
                    message = session.deserialize(parts)
                except (ValueError, KeyError, TypeError) as exc:  # a bad signature or part: one message
                    self.decoding.give(cost)
                    log.warning("kernel_message_dropped", session_id=self.id, kernel_id=kernel.kernel_id,
                                error=str(exc))
                    continue
                del frames, parts  # only the parsed message is held from here
                run = self._run
                if run is not None and message["parent_header"].get("msg_id") == run[0]:
                    await run[1].put(message, cost)  # given back once handled
                    continue
                self.decoding.give(cost)
                if message["msg_type"] != "status":
                    kernel.budget.charge_bytes(size)

    async def _refused(self, frames: list[bytes], reason: str) -> None:
        """Tell the run a message of it was refused unparsed (an error output ``output_too_complex``), if the
        message names the run as its parent in a part that can be read."""
        run = self._run
        with contextlib.suppress(ValueError, IndexError, AttributeError):
            parent = unpack_part(self.kernel.client.session.feed_identities(frames)[1][2])
            if run is not None and parent.get("msg_id") == run[0]:
                error = OutputTooComplexError(f"An output was not shown: {reason.rstrip('.')}; show less at once.")
                await run[1].put({"msg_type": "error", "parent_header": parent, "content": {
                    "ename": error.code, "evalue": error.message, "traceback": []}}, 0)

    async def interrupt_kernel(self, kernel: Kernel | None = None) -> None:
        """Send SIGINT to ``kernel`` (default: the current one) through its agent; failures are logged."""
        kernel = kernel or self.kernel
        try:
            await kernel.agent.interrupt(kernel.kernel_id)
        except AgentError as exc:
            log.warning("interrupt_failed", session_id=self.id, kernel_id=kernel.kernel_id, error=str(exc))

    async def interrupt(self) -> None:
        """Interrupt the running code (a no-op when nothing runs)."""
        if self.executing:
            await self.interrupt_kernel()

    def touch(self) -> None:
        """Count now as use, which keeps the session from idling out."""
        self.last_used = time.monotonic()
        self.last_used_at = utcnow()

    # the kernel's life -------------------------------------------------------
    async def _replace_kernel(self, reason: str) -> None:
        """Destroy the current kernel and start a fresh one with the same datasets."""
        old = self.kernel
        self._stop_reading()
        await old.stop()
        if self.closed:
            return
        try:
            new = await self.start_kernel(self.datasets)
        except BIError as exc:
            self.broken = f"This session's kernel was lost ({reason}) and no new one could be started: {exc.message}"
            log.error("kernel_replacement_failed", session_id=self.id, error=exc.message)
            self._notify({"event": "broken", "reason": self.broken})
            return
        if self.closed:
            await new.stop()
            return
        self.kernel = new
        self._read_iopub(new)
        log.info("kernel_replaced", session_id=self.id, user_id=self.user_id, old_kernel_id=old.kernel_id,
                 kernel_id=self.kernel.kernel_id, reason=reason)
        self._notify({"event": "kernel_restarted", "reason": reason})

    async def restart(self, reason: str, kernel: Kernel | None = None) -> None:
        """Replace the kernel (only if it is still ``kernel``, when given) by a fresh one; variables are lost."""
        async with self._lock:
            if not self.closed and (kernel is None or kernel is self.kernel):
                await self._replace_kernel(reason)

    async def kernel_exited(self, kernel_id: str) -> None:
        """The pool heard that ``kernel_id`` ended; replace it unless a running execution will."""
        kernel = self.kernel
        if not self.closed and kernel_id == kernel.kernel_id and not self.executing:
            await self.restart(kernel.exited.result()["message"], kernel)

    def _stop_reading(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None

    def _notify(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(event)

    def leave(self, reason: str) -> None:
        """End the session in this task but not its kernel, which its agent keeps (and what the kernel publishes
        from now on) for the task that reattaches to it; a running execution ends here with an error, and
        listeners hear ``reason`` (the event ``left``)."""
        if self.closed:
            return
        self.closed = True
        self.tables.drop_session(self.id)
        self._stop_reading()
        self.kernel.leave()
        self._notify({"event": "left", "reason": reason})

    async def close(self, reason: str) -> None:
        """Destroy the kernel at once (a running execution ends with an error); listeners hear why."""
        if self.closed:
            return
        self.closed = True
        self.tables.drop_session(self.id)
        self._stop_reading()
        await self.kernel.stop()
        self._notify({"event": "closed", "reason": reason})


def run_label(msg_id: str | None) -> str | None:
    """The label ``execute`` put in a request's msg_id, or None."""
    return msg_id.partition(LABEL)[2] or None if msg_id else None


async def message_for(get: Callable[..., Awaitable[dict[str, Any]]], msg_id: str | Collection[str],
                      timeout: float) -> dict[str, Any] | None:
    """The first message from channel getter ``get`` answering ``msg_id`` (or one of several), skipping others."""
    wanted = {msg_id} if isinstance(msg_id, str) else msg_id
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = await get(timeout=remaining)
        except queue.Empty:
            return None
        if message["parent_header"].get("msg_id") in wanted:
            return message
    return None


async def next_message(messages: RunQueue, replied: asyncio.Future[Any] | None,
                       timeout: float) -> dict[str, Any] | None:
    """The next of ``messages``, or None after ``timeout`` or once ``replied`` is done."""
    getter = asyncio.ensure_future(messages.get())
    await asyncio.wait([getter] if replied is None else [getter, replied], timeout=timeout,
                       return_when=asyncio.FIRST_COMPLETED)
    if getter.done():
        return getter.result()
    getter.cancel()
    return None


def death_output(event: dict[str, Any], replaced: bool = True) -> dict[str, Any]:
    """The error output for a kernel that died (or was ended by the pool) while running code (``event``)."""
    ename = ENAME_OF_CODE.get(event.get("code", ""), "MemoryLimitExceeded" if event.get("oom") else "KernelDied")
    then = ("a fresh kernel is ready (variables are lost)" if replaced
            else "no new kernel could be started: open a new session")
    return error_output(ename, f"{event['message']}; {then}")

