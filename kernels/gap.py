"""What a kernel publishes while no server is attached, kept for the server that reattaches to it.

The kernel's iopub is a PUB socket: what it publishes while no server subscribes (the API task that held
the kernel died, and the next has not reattached yet) would be dropped. The agent therefore subscribes to
each kernel it hands out, on the kernel's own ipc socket, and once the relay's last iopub link is gone
keeps what comes, each message as its signed frames, up to ``max_bytes`` in all: past them the oldest go and
are counted as ``lost``. A server killed mid-stream loses what was relayed to it in its last moments, before
the relay saw its link drop: so what came in the ``margin`` seconds before that is kept too (a client may get
some of it twice, rather than not at all). The server that reattaches takes them (``take``, the
agent's ``POST /kernels/{id}/gap``) once its own subscription is live, and replays them; keeping stops
then, while a link is live. The frames stay signed with the kernel's key, so the agent needs no key and
the server checks every message as it checks those it receives.

A run that published nothing since long before the link dropped (a quiet computation) still shows: the
``busy`` status of each request whose ``idle`` has not come yet (the newest ``PENDING_STATUSES``) leads what
``take`` hands over, unless it is kept anyway, so the server that reattaches follows the run to its end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time

import structlog
import zmq
import zmq.asyncio

from .limits import GAP_MARGIN_SECONDS

log = structlog.get_logger("bi.executor.gap")

DELIMITER = b"<IDS|MSG>"
PENDING_STATUSES = 8  # busy statuses of unanswered requests held for ``take`` (the newest)
STATUS_BYTES = 4096  # a larger "status" is no status ipykernel sends: not held


class GapBuffer:
    """One kernel's messages published while no server is attached; ``path``: its iopub ipc socket."""

    def __init__(self, path: str, max_bytes: int, message_bytes: int, margin: float = GAP_MARGIN_SECONDS):
        self.max_bytes = max_bytes
        self.margin = margin
        self.keeping = False
        self.recent: collections.deque[tuple[float, list[bytes]]] = collections.deque()  # while attached
        self.recent_bytes = 0
        self.messages: collections.deque[list[bytes]] = collections.deque()
        self.bytes = 0
        self.lost = 0
        self.attached = 0  # live iopub links of servers
        self.detached_at: float | None = time.monotonic()  # since when none is (None: one is)
        self.pending: collections.OrderedDict[bytes, list[bytes]] = collections.OrderedDict()  # parent -> busy
        self._socket = zmq.asyncio.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.MAXMSGSIZE, message_bytes)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(f"ipc://{path}")
        self._reader = asyncio.create_task(self._read())

    def links(self, attached: int) -> None:
        """The relay's live iopub links are now ``attached``: with none, keep what comes."""
        self.attached = attached
        self.detached_at = None if attached else self.detached_at or time.monotonic()
        if not attached and not self.keeping:
            self.keeping = True
            since = time.monotonic() - self.margin
            for at, frames in self.recent:
                if at >= since:
                    self._keep(frames)
            log.info("kernel_detached", margin_messages=len(self.messages))
        self.recent.clear()
        self.recent_bytes = 0

    def take(self) -> tuple[list[list[bytes]], int]:
        """The messages kept (oldest first) and how many were lost; keeping stops while a server is attached."""
        kept = {id(frames) for frames in self.messages}
        messages = [frames for frames in self.pending.values() if id(frames) not in kept] + list(self.messages)
        lost = self.lost
        self.messages.clear()
        self.bytes = self.lost = 0
        self.keeping = not self.attached
        return messages, lost

    async def _read(self) -> None:
        while True:
            try:
                frames = await self._socket.recv_multipart()
            except zmq.ZMQError as exc:
                if exc.errno == zmq.ETERM:
                    return
                raise
            self._note_status(frames)
            if self.keeping:
                self._keep(frames)
            else:
                self._remember(frames)

    def _note_status(self, frames: list[bytes]) -> None:
        """Hold a ``busy`` status until its request's ``idle`` comes (only the topic and two small parts are
        read: the server checks the signature of whatever it is handed)."""
        if not frames[0].endswith(b".status") or sum(len(frame) for frame in frames) > STATUS_BYTES:
            return
        try:
            at = frames.index(DELIMITER)
            parent = json.loads(frames[at + 3]).get("msg_id")
            state = json.loads(frames[at + 5]).get("execution_state")
        except (ValueError, IndexError, AttributeError):
            return
        if not isinstance(parent, str):
            return
        key = parent.encode()
        if state == "busy":
            self.pending[key] = frames
            while len(self.pending) > PENDING_STATUSES:
                self.pending.popitem(last=False)
        elif state == "idle":
            self.pending.pop(key, None)

    def _remember(self, frames: list[bytes]) -> None:
        """Hold ``frames`` for ``margin`` seconds (at most ``max_bytes`` of them)."""
        now = time.monotonic()
        self.recent.append((now, frames))
        self.recent_bytes += sum(len(frame) for frame in frames)
        while self.recent and (self.recent[0][0] < now - self.margin or self.recent_bytes > self.max_bytes):
            self.recent_bytes -= sum(len(frame) for frame in self.recent.popleft()[1])

    def _keep(self, frames: list[bytes]) -> None:
        size = sum(len(frame) for frame in frames)
        self.messages.append(frames)
        self.bytes += size
        while self.bytes > self.max_bytes and self.messages:
            self.bytes -= sum(len(frame) for frame in self.messages.popleft())
            self.lost += 1

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._socket.close(linger=0)
