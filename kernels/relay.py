"""Relay a kernel's ZeroMQ sockets to its ipc sockets, byte for byte, bounding each message it sends.

Kernels live in a network namespace with no network: they bind their five Jupyter sockets
with the ``ipc`` transport (unix stream sockets in their directory). The server never connects
to those: for each kernel it hands out, the agent listens on one socket per channel and, for each
accepted connection, opens a unix stream connection to that channel's ipc socket and copies bytes
both ways until either side closes; then it closes both. Where it listens is its ``Listeners``':

- ``UnixListeners`` (the default, for a server on this host such as ``bi serve``'s own agent):
  unix sockets in a directory of the run directory that only the agent's uid (and root) can enter,
  handed out as ``ipc`` connection info;
- ``TcpListeners`` (``--relay``, ``--advertise-host``: a server on another host): one TCP port per
  channel, handed out as ``tcp`` connection info with the advertised host.

Copying bytes is enough because ZMTP, the ZeroMQ wire protocol, is the same over every stream
transport: ``tcp://`` and ``ipc://`` differ only in how the stream is opened. The client and
the kernel speak ZMTP to each other through the relay (greeting, handshake, the SUB's
subscriptions travelling up to the kernel's PUB, heartbeats, message frames), so the relay
needs no ZeroMQ and parses nothing, and each connection is one peer of the kernel's
socket, exactly as a direct connection would be. Backpressure is the streams' own: a side
that stops reading stops the relay reading from the other.

The relay reads the frame headers of what the kernel sends (``zmtp.MessageBound``, no bodies):
a message over ``message_bytes`` in all ends the link, so the server sees the link drop. The
server's ``MAXMSGSIZE`` bounds one part only, and ZeroMQ holds every part of a message until the
last one arrives: without the relay, a kernel could make the server hold a message of a thousand
parts, each under that bound.

Each relay tells its kernel's ``GapBuffer`` (``gap``) how many iopub links are live: with none, what the
kernel publishes is kept for the server that reattaches.

Security: the relayed ZMTP uses the NULL mechanism, neither encrypted nor authenticated. The
HMAC key in the connection info signs every message and the kernel ignores shell, control and
stdin messages without a valid signature, so knowing a port is not enough to run code; but
anyone who can connect to the iopub port reads every output, the heartbeat answers anyone,
and the traffic can be read on the wire. The listening ports must therefore be reachable
only by the server (security group, firewall, private network); a fixed ``ports`` range
(``--relay-ports``) makes that rule easy to write. The unix sockets are reachable only by the
agent's uid and root; kernels have their own uids and do not see the run directory (without the
uid layer they share the agent's, and could reach one another's sockets directly anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Protocol

import structlog

from .launcher import CHANNELS
from .limits import KERNEL_MESSAGE_BYTES
from .gap import GapBuffer
from .zmtp import MessageBound, MessageTooLarge

CHUNK = 1 << 18
NAME_BYTES = 6  # a relay's unix socket names: 12 hex characters, as short as the kernels' directories

log = structlog.get_logger("bi.executor.relay")


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bound: MessageBound | None = None) -> None:
    while data := await reader.read(CHUNK):
        if bound is not None:
            bound.feed(data)
        writer.write(data)
        await writer.drain()


def parse_port_range(text: str) -> range:
    """``"20000-20999"`` as ``range(20000, 21000)``; ValueError when it is not such a range."""
    low, sep, high = text.partition("-")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()) or not 0 < int(low) <= int(high) < 65536:
        raise ValueError(f"a port range is LOW-HIGH with 0 < LOW <= HIGH < 65536, not {text!r}")
    return range(int(low), int(high) + 1)


def listen(host: str, ports: range | None) -> socket.socket:
    """A TCP socket listening on ``host``: on an OS-assigned port, or on the first free one of ``ports``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in ports or (0,):
        try:
            return socket.create_server((host, port), family=family)  # one address, one port
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    assert ports is not None  # port 0 never runs out
    raise OSError(errno.EADDRINUSE, f"no free port left in {ports.start}-{ports.stop - 1}")


class Listeners(Protocol):
    """Where relays listen, and how the server reaches them."""

    transport: str

    def prepare(self) -> None:
        """Before the first relay."""

    def close(self) -> None:
        """After the last relay closed."""

    def place(self) -> str:
        """The ``ip`` of a new relay's connection info."""

    def listen(self, place: str, number: int) -> tuple[socket.socket, int]:
        """A listening socket for channel ``number`` of the relay at ``place``, and its ``_port`` value."""


class TcpListeners:
    """Each channel on a TCP port of ``bind_host`` (a free one of ``ports``, or OS-assigned), reached at
    ``advertise_host``."""

    transport = "tcp"

    def __init__(self, bind_host: str, advertise_host: str, ports: range | None = None):
        self.bind_host = bind_host
        self.advertise_host = advertise_host
        self.ports = ports

    def prepare(self) -> None:
        pass

    def close(self) -> None:
        pass

    def place(self) -> str:
        return self.advertise_host

    def listen(self, place: str, number: int) -> tuple[socket.socket, int]:
        listening = listen(self.bind_host, self.ports)
        return listening, listening.getsockname()[1]


class UnixListeners:
    """Each channel on a unix socket ``<directory>/<relay name>-<number>``, as the ``ipc`` transport names them."""

    transport = "ipc"

    def __init__(self, directory: Path):
        self.directory = directory

    def prepare(self) -> None:
        """Make the directory anew, empty (sockets of an agent that was killed go) and private to this uid."""
        self.close()
        self.directory.mkdir(mode=0o700)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def place(self) -> str:
        return str(self.directory / secrets.token_hex(NAME_BYTES))

    def listen(self, place: str, number: int) -> tuple[socket.socket, int]:
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listening.bind(f"{place}-{number}")
            listening.listen(socket.SOMAXCONN)
        except BaseException:
            listening.close()
            raise
        return listening, number


class KernelRelay:
    """Listens on one socket per channel of a kernel and relays each connection to its ipc socket."""

    def __init__(self, kernel_connection: dict[str, Any], listeners: Listeners,
                 message_bytes: int = KERNEL_MESSAGE_BYTES, gap: GapBuffer | None = None):
        self.kernel_connection = kernel_connection
        self.listeners = listeners
        self.message_bytes = message_bytes
        self.gap = gap  # hears how many iopub links are live
        self.connection: dict[str, Any] | None = None
        self._servers: list[asyncio.Server] = []
        self._paths: list[str] = []  # of unix sockets, removed on close
        self._links: set[asyncio.Task[Any]] = set()
        self._iopub_links = 0
        self._closed = False

    @staticmethod
    def kernel_path(connection: dict[str, Any], channel: str) -> str:
        """The kernel's own ipc socket of ``channel``."""
        return f"{connection['ip']}-{connection[f'{channel}_port']}"

    @property
    def live_connections(self) -> int:
        return len(self._links)

    async def start(self) -> dict[str, Any]:
        """Listen; return the connection info that reaches the kernel through the relay."""
        place, ports = self.listeners.place(), {}
        try:
            for number, name in enumerate(CHANNELS, 1):
                path = self.kernel_path(self.kernel_connection, name)
                listening, port = self.listeners.listen(place, number)
                if listening.family == socket.AF_UNIX:
                    self._paths.append(listening.getsockname())
                self._servers.append(await asyncio.start_server(
                    functools.partial(self._link, path, name == "iopub"), sock=listening))
                ports[f"{name}_port"] = port
        except BaseException:
            await self.close()
            raise
        self.connection = {**self.kernel_connection, "transport": self.listeners.transport, "ip": place, **ports}
        return self.connection

    async def _link(self, path: str, iopub: bool, client_reader: asyncio.StreamReader,
                    client_writer: asyncio.StreamWriter) -> None:
        """Relay one accepted connection to the kernel's socket at ``path`` until either side closes."""
        if self._closed:  # accepted just before close(), run just after it
            client_writer.transport.abort()
            return
        link = asyncio.current_task()
        assert link is not None  # start_server runs each connection in its own task
        self._links.add(link)
        writers = [client_writer]
        self._count_iopub(iopub, 1)
        try:
            accepted = client_writer.get_extra_info("socket")
            if accepted.family != socket.AF_UNIX:
                # asyncio sets TCP_NODELAY only on sockets made with proto IPPROTO_TCP, and those of
                # socket.create_server have proto 0: without this, Nagle and delayed ACKs add 40 ms.
                accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            kernel_reader, kernel_writer = await asyncio.open_unix_connection(path)
            writers.append(kernel_writer)
            pumps = [asyncio.create_task(_pump(client_reader, kernel_writer)),
                     asyncio.create_task(_pump(kernel_reader, client_writer, MessageBound(self.message_bytes)))]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                for ended in await asyncio.gather(*pumps, return_exceptions=True):  # a reset peer ends one too
                    if isinstance(ended, MessageTooLarge):
                        log.warning("relay_message_too_large", socket=path, error=str(ended))
        except OSError:
            pass  # the kernel's socket is gone: drop the client
        except asyncio.CancelledError:
            # close() cancelled this link and awaits it: drop what is still buffered. Not re-raised,
            # as asyncio (3.11) logs a connection handler that ends cancelled as an error.
            for writer in writers:
                writer.transport.abort()
        finally:
            for writer in writers:
                writer.close()
            self._links.discard(link)
            self._count_iopub(iopub, -1)

    def _count_iopub(self, iopub: bool, change: int) -> None:
        if iopub:
            self._iopub_links += change
            if self.gap is not None:
                self.gap.links(self._iopub_links)

    async def close(self) -> None:
        """Stop listening and close every live connection, both sides."""
        self._closed = True
        for server in self._servers:
            server.close()
        links = list(self._links)
        for link in links:
            link.cancel()
        await asyncio.gather(*links, return_exceptions=True)
        self._servers.clear()
        for path in self._paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._paths.clear()


class Relays:
    """The agent's relays, one per kernel it handed out."""

    def __init__(self, listeners: Listeners, message_bytes: int = KERNEL_MESSAGE_BYTES, gap_bytes: int = 0):
        self.listeners = listeners
        self.message_bytes = message_bytes
        self.gap_bytes = gap_bytes  # kept per kernel while no server is attached (``gap``); 0: nothing
        self.relays: dict[str, KernelRelay] = {}

    async def open(self, kernel_id: str, kernel_connection: dict[str, Any]) -> dict[str, Any]:
        """Relay the kernel; return the connection info to hand to the server."""
        gap = (GapBuffer(KernelRelay.kernel_path(kernel_connection, "iopub"), self.gap_bytes, self.message_bytes)
               if self.gap_bytes else None)
        relay = KernelRelay(kernel_connection, self.listeners, self.message_bytes, gap)
        try:
            connection = await relay.start()
        except BaseException:
            if gap is not None:
                await gap.close()
            raise
        self.relays[kernel_id] = relay
        return connection

    def connection(self, kernel_id: str) -> dict[str, Any] | None:
        """The connection info that reaches the kernel through its relay, if it has one."""
        relay = self.relays.get(kernel_id)
        return relay.connection if relay is not None else None

    def orphans(self, seconds: float) -> list[str]:
        """The kernels no server has been attached to for ``seconds``."""
        since = time.monotonic() - seconds
        return [kernel_id for kernel_id, relay in self.relays.items()
                if relay.gap is not None and relay.gap.detached_at is not None and relay.gap.detached_at < since]

    def gap(self, kernel_id: str) -> GapBuffer | None:
        relay = self.relays.get(kernel_id)
        return relay.gap if relay is not None else None

    async def close(self, kernel_id: str) -> None:
        relay = self.relays.pop(kernel_id, None)
        if relay is not None:
            await relay.close()
            if relay.gap is not None:
                await relay.gap.close()

    async def close_all(self) -> None:
        while self.relays:
            await self.close(next(iter(self.relays)))
