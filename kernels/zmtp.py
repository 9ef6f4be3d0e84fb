"""Message sizes in one direction of a ZMTP 3 byte stream, so that the relay can bound them without ZeroMQ.

A ZMTP 3 stream is a 64-byte greeting, then frames: a flags byte (MORE 1, LONG 2, COMMAND 4), the
body's size in 1 byte (8 bytes, big-endian, when LONG), and the body. Commands (the handshake,
heartbeats) belong to no message; a message is its frames up to one without MORE. ``MessageBound``
reads only the frame headers and counts the bodies it passes over, so what it costs does not grow
with the traffic's size.
"""

from __future__ import annotations

GREETING_BYTES = 64
MORE, LONG, COMMAND = 1, 2, 4


class MessageTooLarge(ValueError):
    """A message in the stream passed the bound; the connection must be dropped."""


class MessageBound:
    """Follows the frames fed to it; ``feed`` raises ``MessageTooLarge`` once a message passes ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._skip = GREETING_BYTES  # bytes of the greeting or of a frame body still to pass over
        self._header = bytearray()  # a frame header read so far
        self._message = 0  # bytes of the message under way

    def feed(self, data: bytes) -> None:
        i, end = 0, len(data)
        while i < end:
            if self._skip:
                step = min(self._skip, end - i)
                self._skip -= step
                i += step
                continue
            self._header.append(data[i])
            i += 1
            flags = self._header[0]
            if len(self._header) < (9 if flags & LONG else 2):
                continue
            size = int.from_bytes(self._header[1:], "big")
            self._header.clear()
            self._skip = size
            if not flags & COMMAND:
                self._message += size
                if self._message > self.max_bytes:
                    raise MessageTooLarge(f"a message of more than {self.max_bytes} bytes")
                if not flags & MORE:
                    self._message = 0
