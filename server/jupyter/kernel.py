"""A Jupyter kernel: one pool session whose ZeroMQ channels are relayed to websockets.

Messages from clients go to the kernel's shell, control and stdin channels as they are, signed
with the kernel's key. Everything the kernel sends goes to every socket connected to it: they are
all its user's, and Jupyter clients ignore replies to requests they did not make. While no socket
is connected, messages are kept (up to ``buffer_bytes``, oldest dropped first: ``replay.py``) and
replayed to the next socket of the same client session (``?session_id=``), as Jupyter Server does,
after a notice on stderr if some were dropped or a socket too slow to read them was closed.

Every shell message the kernel handles (execute, inspection and completion requests, comm
messages: each can run card code) is a run held to the pool's limits (``RunLimit``, as for cards),
from its ``busy`` status to its reply (comm messages, which have none: to their ``idle``; code can
publish an ``idle`` of its own, not a reply's timing): past the wall clock or the output cap the
kernel is interrupted and clients get a notice on stderr; output past the cap is dropped. A kernel
that does not stop within the grace is killed and replaced. A run cut short that way (or by the
kernel's death) ends with an error, a reply and the ``restarting`` status that Jupyter clients know
from a kernel their server restarted after it died; a restart its user asked for reports
``starting``, as a fresh kernel does (JupyterLab takes ``restarting`` for a death). Output outside runs is charged to the kernel's background budget. The control
channel serves ``CONTROL_REQUESTS`` only; other control messages, and shell messages ipykernel does
not handle, get an error reply from here. ``history_request`` is answered here too, from the inputs
the kernel published (``history.py``).

Shell requests go to the kernel one at a time, each once the one before is answered, and none
waits for ever: a request ipykernel could not answer (``requests.problem``: a header or content it
cannot read) or one it has seen (a repeated ``msg_id``) is answered here with an error; one the
kernel does not start within ``answer_seconds`` while it runs nothing else, or does not reply to
within ``REPLY_GRACE`` of its ``idle``, ends with a ``NoReply`` error; one the kernel can no longer
answer (it died or was replaced) ends with the error that ended the kernel. Each such end is a
shell reply with status ``error`` and an ``idle`` status, as Jupyter clients wait for both.

While a client is connected the kernel counts as connected (``KernelSession.connections``), which
gives it the pool's longer connected-idle limit; when the last one leaves, its idle time starts
afresh. When the kernel ends, every connected client gets the reason in a close frame (and, unless its
user shut it down, on stderr with the ``dead`` status before); ``JupyterKernels`` remembers it
for clients that come back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import uuid
from typing import Any, Protocol
from collections.abc import Callable

import zmq
from jupyter_client import protocol_version

from kernels.wire import CONTROL_REQUESTS, control_refusal

from ..execution.outputs import error_output, truncation_notice
from ..execution.gap import signed_parts
from ..execution.replay import ReplayBuffer
from ..execution.session import ACCESS_REVOKED, Kernel, KernelSession, RunLimit, death_output
from .history import InputHistory
from ..limits import JUPYTER_HELD_BYTES
from ..logs import get_logger
from ..models import utcnow
from . import requests
from .wire import BadFrame, KernelMessage, from_fields

log = get_logger("bi.jupyter")

KERNEL_NAME = "python3"
CLIENT_CHANNELS = ("shell", "control", "stdin")
KERNEL_CHANNELS = ("shell", "control", "stdin", "iopub")
SHELL_MESSAGES = frozenset({*requests.CONTENT, "comm_open", "comm_msg", "comm_close"})  # interrupts: on control
UNCOUNTED = frozenset({"status", "execute_input"})  # iopub messages no output cap or budget counts
PENDING_REQUESTS = 1000  # shell messages sent but not started, requests held back, ids remembered: at most
REPLY_GRACE = 1.0  # seconds a shell reply may trail its request's idle status
STOP_ERRORS = {"timeout": "ExecutionTimeout", "output": "OutputLimitExceeded"}
USER_SHUTDOWN = "shut down by its user"  # the close reason of a kernel its user shut down


def span(seconds: float) -> str:
    """``8 hours``, ``10 minutes``, ``1 second``: a limit in the largest whole unit."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g} {unit}{'s' if seconds != size else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


class Socket(Protocol):
    session_id: str | None

    def send(self, message: KernelMessage) -> None: ...

    def end(self, reason: str) -> None: ...

    def closing(self) -> bool: ...


@dataclasses.dataclass(eq=False)
class Run:
    """The execute_request the kernel is running now."""

    request: dict[str, Any]  # its header
    limit: RunLimit
    output_bytes: int = 0
    over_output: bool = False
    idle: bool = False  # its idle status came (before its reply, which may happen)
    replied: bool = False  # its reply came (before its busy status, which may happen: two sockets, two readers)
    done: bool = False
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    enforcer: asyncio.Task[None] | None = None  # held here so that it is not garbage-collected


class JupyterKernel:
    def __init__(self, session: KernelSession, buffer_bytes: int, answer_seconds: float,
                 on_closed: Callable[[JupyterKernel], None]):
        self.session = session
        self.buffer_bytes = buffer_bytes
        self.answer_seconds = answer_seconds
        self.on_closed = on_closed
        self.sockets: set[Socket] = set()
        self.last_activity = dt.datetime.now(dt.UTC)
        self._state = "idle"
        self._kernel = session.kernel
        self._readers: list[asyncio.Task[None]] = []
        self._pending: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._replied_early: set[str] = set()  # pending requests whose reply came before their busy status
        self._run: Run | None = None
        self._ended: Run | None = None  # the last run, until its idle: its trailing output is still its own
        self._kept: ReplayBuffer[KernelMessage] = ReplayBuffer(buffer_bytes)
        self._kept_for: str | None = None  # the client session the kept messages are for
        self._kept_for_next = False  # or the next socket, whichever (a reattachment's gap, its client unknown)
        self._awaiting: KernelMessage | None = None  # the shell request the kernel is answering
        self._answer_timer: asyncio.TimerHandle | None = None  # ends it if no answer comes
        self._held: collections.deque[KernelMessage] = collections.deque()  # shell requests after it
        self._held_bytes = 0  # their size, at most JUPYTER_HELD_BYTES
        self._user_restart = False  # the restart under way is its user's
        self.history = InputHistory()
        self.end_reason: str | None = None  # why it ended, once it has
        self._request_ids: collections.OrderedDict[str, None] = collections.OrderedDict()  # the last ones received
        self._replayed: set[str] = set()  # msg_ids of a reattachment's gap, whose live copies are dropped
        session.listeners.add(self._session_event)
        self._follow(session.kernel)

    @property
    def id(self) -> str:
        return self.session.id

    def model(self) -> dict[str, Any]:
        """The kernel as Jupyter Server describes one."""
        return {"id": self.id, "name": KERNEL_NAME,
                "last_activity": self.last_activity.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "execution_state": "busy" if self._run else self._state, "connections": len(self.sockets)}

    # clients -----------------------------------------------------------------
    def attach(self, socket: Socket) -> None:
        """Send the kernel's messages to ``socket`` too; a returning client session first gets what it missed."""
        if self.session.closed:  # shut down while the socket was opening
            socket.end("the kernel was shut down")
            return
        if not self.sockets:
            if self._kept_for_next or socket.session_id is not None and socket.session_id == self._kept_for:
                lost, messages = self._kept.since(0)
                if lost:
                    socket.send(self._lost_notice(lost, messages[0].parent_header if messages else None))
                for message in messages:
                    socket.send(message)
                log.info("jupyter_replayed", kernel_id=self.id, messages=len(messages), lost=lost)
            self._kept.clear()
            self._kept_for_next = False
        self.sockets.add(socket)
        self.session.connections = len(self.sockets)

    def detach(self, socket: Socket, undelivered: int = 0) -> None:
        """``socket`` is gone; ``undelivered`` messages sent to it may never have reached its client."""
        if socket not in self.sockets:
            return
        self.sockets.discard(socket)
        self.session.connections = len(self.sockets)
        if not self.sockets:
            self._kept_for = socket.session_id
            self._kept.skip(undelivered)
            self.session.touch()  # its idle limit without clients counts from now

    def replay_gap(self, gap: list[list[bytes]], lost: int, client_session: str | None) -> None:
        """What the kernel published while no server held it (``KernelPool.reattach``): kept for the client
        session ``client_session`` (the one reconnecting; None: the next socket), like messages sent while a
        client is away, after a notice of the ``lost`` ones; each must bear the kernel's signature. Live
        copies are dropped."""
        self._kept_for = client_session
        self._kept_for_next = client_session is None
        self._kept.skip(lost)
        for parts in signed_parts(self._kernel, gap):
            try:
                message = KernelMessage("iopub", parts[1:])
                self._replayed.add(message.msg_id)
                self._from_kernel(message)
            except ValueError as exc:  # BadFrame included
                log.warning("jupyter_gap_message_dropped", kernel_id=self.id, error=str(exc))
        log.info("jupyter_gap_replayed", kernel_id=self.id, messages=len(gap), lost=lost)

    def _lost_notice(self, lost: int, parent: dict[str, Any] | None) -> KernelMessage:
        text = (f"\n[{lost} kernel messages (outputs) sent while this client was away or too slow to read "
                f"them were dropped: a kernel keeps its last {self.buffer_bytes // (1024 * 1024)} MB for a "
                "client that reconnects.]\n")
        return self.server_message("iopub", "stream", {"name": "stderr", "text": text}, parent or None)

    def receive(self, message: KernelMessage) -> None:
        """A message from a client: on to the kernel's channel (a shell request in its turn).

        ``BadFrame`` for a channel clients do not send on."""
        if message.channel not in CLIENT_CHANNELS:
            raise BadFrame(f"clients send on the channels {', '.join(CLIENT_CHANNELS)}, not {message.channel[:40]!r}")
        if (message.channel == "control" and message.msg_type not in CONTROL_REQUESTS
                or message.channel == "shell" and message.msg_type not in SHELL_MESSAGES):
            self._refuse(message)
            return
        self.session.touch()
        self.last_activity = dt.datetime.now(dt.UTC)
        if message.channel == "shell" and message.msg_type == "history_request":
            self._answer_history(message)
        elif message.channel != "shell" or not message.msg_type.endswith("_request"):
            self._forward(message)
        elif len(self._held) >= PENDING_REQUESTS or self._held_bytes + message.size > JUPYTER_HELD_BYTES:
            self._end_request(message.header, "TooManyRequests", f"{len(self._held)} requests are already waiting "
                              "for this kernel; send this one again once the kernel has answered them.")
        elif (problem := requests.problem(message)) is not None:
            self._end_request(message.header, "BadRequest", f"The kernel cannot answer this {message.msg_type}: "
                                                             f"{problem}. Send it as the Jupyter messaging spec says.")
        elif message.msg_id in self._request_ids:
            self._end_request(message.header, "DuplicateMessage", f"A request with the msg_id {message.msg_id!r} "
                                                                   "was sent already; give each request its own.")
        else:
            self._request_ids[message.msg_id] = None
            while len(self._request_ids) > PENDING_REQUESTS:
                self._request_ids.popitem(last=False)
            self._held.append(message)
            self._held_bytes += message.size
            self._next_request()

    def _next_request(self, answered: str | None = None) -> None:
        """Send the next held shell request once the kernel has answered the one before (``answered``).

        One at a time, because ipykernel 7 can lose the reply to a request that reaches it while it
        sends the previous reply: the client then waits forever (reproduced here about once in 350
        back-to-back kernel_info_requests). The kernel runs shell requests in turn anyway.
        """
        if answered is not None and self._awaiting is not None and answered == self._awaiting.msg_id:
            self._awaiting = None
            self._wait_for_answer(None)
        while self._awaiting is None and self._held:
            message = self._held.popleft()
            self._held_bytes -= message.size
            if self._forward(message):
                self._awaiting = message
                self._wait_for_answer(self.answer_seconds)
            else:
                self._end_request(message.header, "KernelRestarting",
                                  "The kernel is being replaced; send the request again once it is idle.")

    def _wait_for_answer(self, seconds: float | None) -> None:
        """Check on the awaited request in ``seconds`` (None: no longer)."""
        if self._answer_timer is not None:
            self._answer_timer.cancel()
            self._answer_timer = None
        if seconds is not None and self._awaiting is not None:
            self._answer_timer = asyncio.get_running_loop().call_later(seconds, self._check_answer)

    def _check_answer(self) -> None:
        """The awaited request is overdue: end it with an error, unless a run goes on (held to its own limits)."""
        self._answer_timer = None
        request, run = self._awaiting, self._run
        if request is None:
            return
        if run is not None and (not run.idle or run.request["msg_type"] == "execute_request"):
            # an execute_request's run ends at its reply or its wall clock: card code can publish an idle
            # of its own, and ending the run there would free the code of its limits
            self._wait_for_answer(self.answer_seconds)
            return
        if run is not None and run.request["msg_id"] == request.msg_id:
            self._end_run(run)  # idle without a reply
        self._pending.pop(request.msg_id, None)  # a late start is the kernel's background work
        self._replied_early.discard(request.msg_id)
        self._awaiting = None
        self._end_request(request.header, "NoReply", f"The kernel did not answer this {request.msg_type} in time "
                                                     "and the requests after it went on; send it again if need be.")
        self._next_request()

    def _forward(self, message: KernelMessage) -> bool:
        """Send ``message`` to the kernel; False if its channels are closed."""
        kernel = self.session.kernel
        try:
            kernel.client.session.send_raw(getattr(kernel.client, f"{message.channel}_channel").socket,
                                           message.parts)
        except zmq.ZMQError as exc:  # the kernel is being replaced
            log.warning("jupyter_message_dropped", kernel_id=self.id, msg_type=message.msg_type, error=str(exc))
            return False
        if message.channel == "shell" and message.msg_id:
            self._pending[message.msg_id] = message.header
            while len(self._pending) > PENDING_REQUESTS:
                self._replied_early.discard(self._pending.popitem(last=False)[0])
        return True

    async def interrupt(self) -> None:
        """SIGINT the kernel, unless it is idle with nothing queued: a signal relayed to an idle kernel
        (which ignores it only until its next request starts) could interrupt the next cell instead."""
        if self._run is None and self._state == "idle" and not self._held and not self._pending:
            log.info("jupyter_interrupt_idle", kernel_id=self.id)
            return
        await self.session.interrupt_kernel()

    async def restart(self) -> None:
        self._user_restart = True
        try:
            await self.session.restart("restarted by its user")
        finally:
            self._user_restart = False

    def _answer_history(self, request: KernelMessage) -> None:
        """Reply to a ``history_request`` from the inputs kept here (busy, the reply, idle: as a kernel does)."""
        parent = request.header
        self._send(self.server_message("iopub", "status", {"execution_state": "busy"}, parent))
        self._send(self.server_message("shell", "history_reply", self.history.reply(request.content), parent))
        self._send(self.server_message("iopub", "status", {"execution_state": "idle"}, parent))

    # the kernel's messages -----------------------------------------------------
    def _follow(self, kernel: Kernel) -> None:
        """Relay the channels of ``kernel``, a ready kernel (the session's now)."""
        self._kernel = kernel
        self._state = "idle"
        self._readers = [asyncio.create_task(self._read(kernel, channel)) for channel in KERNEL_CHANNELS]

    async def _read(self, kernel: Kernel, channel: str) -> None:
        socket = getattr(kernel.client, f"{channel}_channel").socket
        with contextlib.suppress(zmq.ZMQError):  # its kernel was stopped
            while True:
                frames = await socket.recv_multipart()
                try:
                    _, parts = kernel.client.session.feed_identities(frames)  # ValueError without a delimiter
                    if len(parts) < 5:
                        raise BadFrame("a kernel message has a signature and four JSON parts")
                    message = KernelMessage(channel, parts[1:])  # without the signature
                    if channel == "iopub" and self._replayed and self._live_copy(message):
                        continue
                    self._from_kernel(message)
                except ValueError as exc:  # BadFrame included
                    log.warning("jupyter_kernel_message_dropped", kernel_id=self.id, channel=channel, error=str(exc))
                except Exception:  # one bad message must not end the relay
                    log.exception("jupyter_kernel_message_failed", kernel_id=self.id, channel=channel)

    def _live_copy(self, message: KernelMessage) -> bool:
        """Whether ``message`` came in a reattachment's gap too; the first that did not ends the overlap."""
        if message.msg_id in self._replayed:
            self._replayed.discard(message.msg_id)
            return True
        self._replayed.clear()
        return False

    def _from_kernel(self, message: KernelMessage) -> None:
        if message.channel == "iopub" and not self._track(message):
            return
        if message.channel == "shell":
            run = self._run
            if run is not None and message.parent_id == run.request["msg_id"]:
                self._end_run(run)
            elif message.parent_id is not None and message.parent_id in self._pending:
                self._replied_early.add(message.parent_id)  # its run starts at its busy and ends at its idle
            self._next_request(answered=message.parent_id)
        self._send(message)

    def _track(self, message: KernelMessage) -> bool:
        """Follow runs and state on iopub; False for output past the cap."""
        run, parent_id = self._run, message.parent_id
        if message.msg_type == "status":
            state = message.content.get("execution_state")
            self._state = state if isinstance(state, str) else self._state
            if state == "idle" and self._ended is not None and parent_id == self._ended.request["msg_id"]:
                self._ended = None
            if state == "busy" and parent_id is not None and parent_id in self._pending:
                self._start_run(self._pending.pop(parent_id), replied=parent_id in self._replied_early)
                self._replied_early.discard(parent_id)
            elif state == "idle" and run is not None and parent_id == run.request["msg_id"]:
                run.idle = True
                if (run.replied or run.limit.reason is not None
                        or not run.request["msg_type"].endswith("_request")):
                    self._end_run(run)  # no reply comes after an interrupt, nor for comm messages
            if state == "idle" and self._awaiting is not None and parent_id == self._awaiting.msg_id:
                self._wait_for_answer(REPLY_GRACE)  # a handler that failed sends no reply
            return True
        if message.msg_type == "execute_input":
            self.history.add(message.content.get("execution_count"), message.content.get("code"))
        if message.msg_type in UNCOUNTED:
            return True
        if run is None or parent_id != run.request["msg_id"]:
            run = self._ended if self._ended is not None and parent_id == self._ended.request["msg_id"] else None
        if run is None:
            self._kernel.budget.charge_bytes(message.size)
            return True
        if run.over_output:
            return False
        run.output_bytes += message.size
        if run.output_bytes > self.session.limits.output_bytes:
            run.over_output = True
            run.wake.set()
            self._notice(run, truncation_notice(self.session.limits.output_bytes))
            return False
        return True

    def _send(self, message: KernelMessage) -> None:
        for socket in list(self.sockets):
            if socket.closing():  # its client has left, its close not yet handled: keep what follows for it
                self.detach(socket)
            else:
                socket.send(message)
        if not self.sockets:  # a reply (or input request) outlasts outputs: its client waits for it
            self._kept.append(message, message.size, pinned=message.channel != "iopub")

    def server_message(self, channel: str, msg_type: str, content: dict[str, Any],
                        parent: dict[str, Any] | None) -> KernelMessage:
        header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "bi", "session": self.id,
                  "date": utcnow(), "version": protocol_version}
        return from_fields(channel, {"header": header, "parent_header": parent, "content": content}, [])

    def _notice(self, run: Run, text: str) -> None:
        self._send(self.server_message("iopub", "stream", {"name": "stderr", "text": text}, run.request))

    # runs ----------------------------------------------------------------------
    def _start_run(self, request: dict[str, Any], replied: bool = False) -> None:
        if self._run is not None:  # its reply never came
            self._end_run(self._run)
        self._ended = None
        run = Run(request, RunLimit(self.session), replied=replied)
        self._run = run
        run.limit.kernel.budget.run_started()
        self.session.metrics.busy.inc()
        run.enforcer = asyncio.create_task(self._enforce(run))

    def _end_run(self, run: Run) -> None:
        if run.done:
            return
        run.done = True
        run.wake.set()
        run.limit.kernel.budget.run_ended()
        self.session.metrics.busy.dec()
        if run.request["msg_type"] == "execute_request":
            self.session.metrics.execution_seconds.observe(run.limit.elapsed_ms() / 1000)
        self.session.touch()
        if self._run is run:
            self._run = None
            self._ended = None if run.idle else run

    async def _enforce(self, run: Run) -> None:
        """Hold ``run`` to the limits while it lasts; past the grace, its kernel is replaced."""
        while not run.done:
            stopping = run.limit.reason
            if await run.limit.check(run.over_output):
                await self.session.restart(run.limit.kill_reason, run.limit.kernel)
                return
            if stopping is None and run.limit.reason == "timeout":
                self._notice(run, f"\n[{run.limit.message(restarted=False)}]\n")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.wake.wait(), run.limit.remaining())
            run.wake.clear()

    def _fail(self, request: dict[str, Any], error: dict[str, Any], replied: bool = False) -> None:
        """End a shell message that no kernel will finish: a failed execution, an error reply (unless ``replied``)."""
        ename, evalue = error["ename"], error["evalue"]
        content = {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
        msg_type = request["msg_type"]
        if msg_type == "execute_request":
            self._send(self.server_message("iopub", "error", content, request))
        if msg_type.endswith("_request") and not replied:
            reply_type = msg_type.removesuffix("_request") + "_reply"
            self._send(self.server_message("shell", reply_type,
                                            {"status": "error", "execution_count": None, **content}, request))
        self._send(self.server_message("iopub", "status", {"execution_state": "idle"}, request))

    def _end_request(self, request: dict[str, Any], ename: str, evalue: str) -> None:
        """Answer a shell request the kernel will not answer with an error."""
        log.warning("jupyter_request_ended", kernel_id=self.id, msg_type=request.get("msg_type"), error=ename,
                    reason=evalue)
        self._fail(request, error_output(ename, evalue))

    def _refuse(self, message: KernelMessage) -> None:
        """Answer a message no channel here serves with an error reply on its channel."""
        reply_type, content = control_refusal(message.msg_type)
        if message.channel == "shell":
            content = {**content, "ename": "UnknownMessageType",
                       "evalue": f"{message.msg_type} is not a shell message this kernel handles"}
        log.warning("jupyter_message_refused", kernel_id=self.id, channel=message.channel, msg_type=message.msg_type)
        self._send(self.server_message(message.channel, reply_type, content, message.header))

    # the session's life --------------------------------------------------------
    def _session_event(self, event: dict[str, Any]) -> None:
        if event["event"] == "kernel_restarted":
            self._restarted()
        elif event["event"] == "broken":
            self._kernel_gone(error_output("KernelDead", event["reason"]))
            self._send(self.server_message("iopub", "status", {"execution_state": "dead"}, None))
        elif event["event"] == "left":  # the kernel lives on, held by another task: its clients reconnect there
            for socket in list(self.sockets):
                socket.end(event["reason"])
            self.on_closed(self)
        elif event["event"] == "closed":
            self.end_reason = self._describe_end(event["reason"])
            text = f"The kernel was shut down: {self.end_reason}."
            self._kernel_gone(error_output("KernelDead", text))
            if event["reason"] != USER_SHUTDOWN:  # the user knows; any other end is news to their clients
                self._send(self.server_message("iopub", "stream", {"name": "stderr", "text": f"\n[{text}]\n"}, None))
                self._send(self.server_message("iopub", "status", {"execution_state": "dead"}, None))
            for socket in list(self.sockets):
                socket.end(text)
            self.on_closed(self)

    def _describe_end(self, reason: str) -> str:
        """A person's words for a session's close ``reason`` (the pool says "idle" for a cull)."""
        if reason == ACCESS_REVOKED:
            return ("access_revoked: you may no longer read a dataset it loaded, or your account was "
                    "deactivated")
        if reason != "idle":
            return reason
        limit = self.session.limits.idle_limit(bool(self.sockets))
        return f"culled after {span(limit)} without activity" + (" (with a client connected)" if self.sockets else "")

    def _restarted(self) -> None:
        """The session has a fresh kernel: end what the old one ran, tell clients, relay the new one."""
        run, old = self._run, self._kernel
        if run is not None and run.limit.reason is not None:
            self._kernel_gone(error_output(STOP_ERRORS[run.limit.reason], run.limit.message(restarted=True)))
        elif old.exited.done():
            self._kernel_gone(death_output(old.exited.result()))
        else:
            self._kernel_gone(error_output("KernelRestarted", "the kernel was restarted"))
        state = "starting" if self._user_restart else "restarting"
        self._send(self.server_message("iopub", "status", {"execution_state": state}, None))
        self.history.new_session()
        self._follow(self.session.kernel)

    def _kernel_gone(self, error: dict[str, Any]) -> None:
        """Stop relaying the kernel; what it ran, or had been sent to run, fails with ``error``.

        A kernel that dies at once may never publish the ``busy`` status of the code that killed it.
        """
        for task in self._readers:
            task.cancel()
        self._readers = []
        self._state = "dead"
        awaited = [self._awaiting] if self._awaiting is not None else []
        unanswered = [message.header for message in [*awaited, *self._held]]
        self._awaiting = None
        self._wait_for_answer(None)
        self._pending.clear()
        self._replied_early.clear()
        self._held.clear()
        self._held_bytes = 0
        if self._run is not None:
            if not awaited or self._run.request["msg_id"] != awaited[0].msg_id:
                unanswered.insert(0, self._run.request)  # a comm message's
            self._end_run(self._run)
        elif self._ended is not None and self._ended.request["msg_type"] == "execute_request":
            self._fail(self._ended.request, error, replied=True)  # its idle (and output) went with the kernel
        self._ended = None
        for request in unanswered:
            self._fail(request, error)
