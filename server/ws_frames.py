"""Websocket messages framed once for many sockets.

Tornado frames every ``write_message`` itself: it copies the payload behind a new header and wraps the
write in a task of its own, per socket. A message pushed to a thousand viewers is one ``Frame`` instead: its
bytes on the wire (RFC 6455: one final text or binary frame, unmasked as a server sends it, uncompressed,
which a permessage-deflate client accepts too) made once, then queued as they are on every socket
(``BoundedSocket.send_frame``).
"""

from __future__ import annotations

import struct

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
