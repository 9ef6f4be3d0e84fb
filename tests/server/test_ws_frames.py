"""Frames made once (``server/ws_frames.py``) are what a websocket client reads, at each length encoding
(7-bit, 16-bit and 64-bit lengths), text and binary, also on a connection that negotiated compression; written
straight to the socket by ``BoundedSocket.send_frame`` or ``send_to_all``, they stay in order with what Tornado frames
and queues, and a closing socket gets none."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import pytest
from tornado import web, websocket
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from server.handlers.socket_base import BoundedSocket
from server.ws_frames import Frame, send_to_all
from tests.security.raw_sockets import stalled_socket

MESSAGES = [b"", "見出し".encode() * 41, b"x" * 1000, "売上".encode() * 40_000]


class Pushing(websocket.WebSocketHandler):
    def get_compression_options(self) -> dict:
        return {}  # permessage-deflate on: a prepared frame is an uncompressed message within it

    def open(self) -> None:
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        for payload in MESSAGES:
            self.ws_connection.stream.write(Frame(payload).wire)
        self.ws_connection.stream.write(Frame(b"\x00\xff", binary=True).wire)


BIG = ["表".encode() * 100_000, "図".encode() * 100_000]
SENT: list[int] = []


class Trickle:
    """A server socket that takes at most ``CHUNK`` bytes a write and then is full once (``BlockingIOError``), as a
    socket whose client reads slowly: frames are taken in part and the rest queued."""

    CHUNK = 16 * 1024

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._full = False

    def send(self, data: bytes) -> int:
        self._full = not self._full
        if not self._full:
            raise BlockingIOError
        return self._sock.send(data[:self.CHUNK])

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class Mixing(BoundedSocket):
    """Frames made once and messages Tornado frames, all written before the client reads any."""

    def open(self) -> None:
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        self.ws_connection.stream.socket = Trickle(self.ws_connection.stream.socket)  # type: ignore[assignment]
        for big in BIG:
            self.send_frame(Frame(b"first"))
            self.send_frame(Frame(big))  # the socket takes part: the rest is queued
            self.send_frame("framed by Tornado")  # queued behind it
            self.send_frame(Frame(b"last"))  # queued too: the socket is not written to ahead of the queue
        SENT.append(self.pending_bytes)


class Fanning(BoundedSocket):
    """As ``Mixing``, the frames for many sockets written by ``send_to_all``."""

    def open(self) -> None:
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        self.ws_connection.stream.socket = Trickle(self.ws_connection.stream.socket)  # type: ignore[assignment]
        writers = [self.writer()]
        assert writers[0] is not None
        for big in BIG:
            send_to_all(writers, Frame(b"first"))
            send_to_all(writers, Frame(big))
            self.send_frame("framed by Tornado")
            send_to_all(writers, Frame(b"last"))
        SENT.append(self.pending_bytes)


class Closing(BoundedSocket):
    """A frame for many sockets, then the socket closes, then more frames for many sockets."""

    def open(self) -> None:
        writers = [self.writer()]
        send_to_all(writers, Frame(b"before"))
        self.close(4000, "closing")
        send_to_all(writers, Frame(b"after"))
        self.send_frame(Frame(b"after too"))


async def test_a_client_reads_prepared_frames_as_messages():
    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([("/ws", Pushing)]))
    server.add_sockets([sock])
    try:
        for compression in (None, {}):
            client = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws", compression_options=compression)
            got = [await client.read_message() for _ in range(len(MESSAGES) + 1)]
            assert got == [payload.decode() for payload in MESSAGES] + [b"\x00\xff"]
            client.close()
    finally:
        server.stop()


@pytest.mark.parametrize("handler", [Mixing, Fanning])
async def test_frames_written_straight_to_the_socket_stay_in_order_with_queued_ones(handler):
    SENT.clear()
    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([("/ws", handler)]))
    server.add_sockets([sock])
    try:
        client = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws", max_message_size=4 * 1024 * 1024)
        got = [await asyncio.wait_for(client.read_message(), 30) for _ in range(4 * len(BIG))]
        assert got == [text for big in BIG for text in ("first", big.decode(), "framed by Tornado", "last")]
        assert SENT and SENT[0] > 0, "part of the frames waited in Tornado's queue"
        client.close()
    finally:
        server.stop()


async def test_a_closing_socket_gets_no_frame_after_its_close():
    """On the wire: the frame before the close, the close frame, and nothing after it."""
    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([("/ws", Closing)]))
    server.add_sockets([sock])
    loop = asyncio.get_running_loop()
    try:
        client = await stalled_socket(SimpleNamespace(base_url=f"http://127.0.0.1:{port}"), "-", "/ws")
        wire = b""
        while b"\x88" not in wire[len(Frame(b"before").wire):]:
            wire += await asyncio.wait_for(loop.sock_recv(client, 4096), 30)
        await loop.sock_sendall(client, bytes((0x88, 0x80)) + b"\0\0\0\0")  # the client's close: the server ends
        while chunk := await asyncio.wait_for(loop.sock_recv(client, 4096), 30):
            wire += chunk
        client.close()
        before = Frame(b"before").wire
        assert wire.startswith(before)
        close = wire[len(before):]
        assert close[0] == 0x88 and int.from_bytes(close[2:4], "big") == 4000
        assert len(close) == 2 + close[1], f"nothing follows the close frame: {close!r}"
    finally:
        server.stop()
