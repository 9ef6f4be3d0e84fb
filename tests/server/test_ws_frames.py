"""Frames made once (``server/ws_frames.py``) are what a websocket client reads, at each length encoding
(7-bit, 16-bit and 64-bit lengths), text and binary, also on a connection that negotiated compression."""

from __future__ import annotations

from tornado import web, websocket
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from server.ws_frames import Frame

MESSAGES = [b"", "見出し".encode() * 41, b"x" * 1000, "売上".encode() * 40_000]


class Pushing(websocket.WebSocketHandler):
    def get_compression_options(self) -> dict:
        return {}  # permessage-deflate on: a prepared frame is an uncompressed message within it

    def open(self) -> None:
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        for payload in MESSAGES:
            self.ws_connection.stream.write(Frame(payload).wire)
        self.ws_connection.stream.write(Frame(b"\x00\xff", binary=True).wire)


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
