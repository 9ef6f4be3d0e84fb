"""A minimal websocket client for the fan-out bench: raw sockets, one epoll loop per process, no message
parsing beyond the frame headers, so that the load generator's CPU does not set the result.

Each connection opens a live dashboard (the upgrade with the bearer token), answers pings, and counts
the ``output`` frames it receives (their payload starts ``{"type":"output"``). After the ``owed`` outputs
that follow its snapshot, its n-th further output is update n; once every connection of this process has
update n, the process reports ``(n, time.time())`` on its pipe.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import time
from collections import Counter
from multiprocessing.connection import Connection
from urllib.parse import urlsplit

OUTPUT = b'{"type":"output"'
PING, PONG, CLOSE = 0x9, 0xA, 0x8


class Viewer:
    def __init__(self, url: str, token: str):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: Bearer {token}\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the upgrade")
            answer += chunk
        head, _, rest = answer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        self.buffer = bytearray(rest)
        self.outputs = 0
        self.sock.setblocking(False)

    def frames(self) -> list[tuple[int, bytes]]:
        """The whole frames received so far: (opcode, the payload's first bytes)."""
        got = []
        buffer = self.buffer
        while len(buffer) >= 2:
            length, start = buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                break
            got.append((buffer[0] & 0x0F, bytes(buffer[start:start + min(length, 125 if buffer[0] & 0x08 else 16)])))
            del buffer[:start + length]
        return got

    def pong(self, payload: bytes) -> None:
        """A masked pong (a zero mask leaves the payload as it is)."""
        self.sock.send(bytes((0x80 | PONG, 0x80 | len(payload))) + b"\0\0\0\0" + payload)


def run(url: str, token: str, count: int, owed: int, pipe: Connection, batch: int = 1) -> None:
    """Open ``count`` viewers of ``url`` (a list of URLs: spread over them), then report updates until told.
    Viewers already open are read between batches of new ones (their pings answered)."""
    urls = url.split(",")
    selector = selectors.DefaultSelector()
    viewers: list[Viewer] = []
    counts = Counts(count, owed, pipe)
    for start in range(0, count, batch):
        for n in range(start, min(count, start + batch)):
            viewer = Viewer(urls[n % len(urls)], token)
            viewers.append(viewer)
            selector.register(viewer.sock, selectors.EVENT_READ, viewer)
        pump(selector, counts, 0)
    selector.register(pipe.fileno(), selectors.EVENT_READ, None)
    while pump(selector, counts, 1.0):
        pass
    for viewer in viewers:
        viewer.sock.close()


class Counts:
    """Outputs counted over a process's viewers: reports ``ready`` once all have their owed outputs, then
    each update once all have it."""

    def __init__(self, count: int, owed: int, pipe: Connection):
        self.count = count
        self.owed = owed
        self.pipe = pipe
        self.opened = 0
        self.reached: Counter[int] = Counter()

    def output(self, viewer: Viewer) -> None:
        viewer.outputs += 1
        if viewer.outputs == self.owed:
            self.opened += 1
            if self.opened == self.count:
                self.pipe.send(("ready", time.time()))
        elif viewer.outputs > self.owed:
            update = viewer.outputs - self.owed
            self.reached[update] += 1
            if self.reached[update] == self.count:
                del self.reached[update]
                self.pipe.send((update, time.time()))


def pump(selector: selectors.BaseSelector, counts: Counts, timeout: float) -> bool:
    """Read what has arrived (waiting up to ``timeout``); False once told to stop."""
    for key, _ in selector.select(timeout):
        viewer = key.data
        if viewer is None:
            counts.pipe.recv()  # told to stop
            return False
        try:
            data = viewer.sock.recv(1 << 16)
        except BlockingIOError:
            continue
        if not data:
            raise ConnectionError(f"the server closed a viewer after {viewer.outputs} outputs")
        viewer.buffer += data
        for opcode, head in viewer.frames():
            if opcode == PING:
                viewer.pong(head)
            elif opcode == CLOSE:
                raise ConnectionError(f"the server closed a viewer: {head!r}")
            elif head.startswith(OUTPUT):
                counts.output(viewer)
    return True
