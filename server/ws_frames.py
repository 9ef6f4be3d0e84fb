"""Websocket messages framed once for many sockets.

Tornado frames every ``write_message`` itself: it copies the payload behind a new header and wraps the
write in a task of its own, per socket. A message pushed to a thousand viewers is one ``Frame`` instead: its
bytes on the wire (RFC 6455: one final text or binary frame, unmasked as a server sends it, uncompressed,
which a permessage-deflate client accepts too) made once, then queued as they are on every socket
(``BoundedSocket.send_frame``), or to many sockets at once by ``send_to_all``: straight to each OS socket that
has nothing waiting ahead of the frame, one ``send`` each and nothing else looked up per socket.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

TEXT, BINARY = 0x1, 0x2
FIN = 0x80


class Frame:
    """One message's bytes on the wire: ``wire``, header and payload."""

    __slots__ = ("wire",)

    def __init__(self, payload: bytes, binary: bool = False):
        first = FIN | (BINARY if binary else TEXT)
        size = len(payload)
        if size < 126:
            header = bytes((first, size))
        elif size <= 0xFFFF:
            header = struct.pack("!BBH", first, 126, size)
        else:
            header = struct.pack("!BBQ", first, 127, size)
        self.wire = header + payload

    @classmethod
    def of(cls, message: str | bytes, binary: bool = False) -> Frame:
        return cls(message.encode() if isinstance(message, str) else message, binary)


class Queueing(Protocol):
    """A socket's own writes, which queue and bound what it does not take at once (``BoundedSocket``)."""

    def send_frame(self, frame: Frame) -> None: ...

    def send_rest(self, wire: bytes, sent: int) -> None: ...


class Writer(NamedTuple):
    """One socket as ``send_to_all`` writes to it (``BoundedSocket.writer``, ``handlers/socket_base.py``): its OS
    socket's ``send``, its stream's write buffer (``queued``: bytes wait in it while its ``_size`` is not 0), its
    websocket ``connection`` (closing once ``server_terminated``) and the ``handler`` that queues and bounds what
    the socket does not take at once. The buffer is looked at directly, not through ``IOStream.writing()``: two
    calls and two objects fewer a socket, which after each ``send`` are mostly out of the CPU's caches (0.3 to
    0.5 us a socket here; ``tests/server/test_ws_frames.py`` fails if Tornado's buffer stops keeping ``_size``)."""

    send: Callable[[bytes], int]
    queued: Any
    connection: Any
    handler: Queueing


def send_to_all(writers: Iterable[Writer], frame: Frame) -> None:
    """Write ``frame`` (framed once) to every socket of ``writers``. A socket with nothing waiting ahead of the
    frame is written straight to, one ``send`` each; what it does not take at once is queued (``send_rest``).
    A socket that is closing, or behind, gets the frame through ``send_frame``: skipped, queued behind what
    waits, or closed as too slow (``limits.SOCKET_PENDING_BYTES``)."""
    data = frame.wire
    size = len(data)
    for send, queued, connection, handler in writers:
        if connection.server_terminated or queued._size:
            handler.send_frame(frame)
            continue
        try:
            sent = send(data)
        except OSError:  # full, or gone: the stream's write queues it or closes the stream
            sent = 0
        if sent != size:
            handler.send_rest(data, sent)
