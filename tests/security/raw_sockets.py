"""Websocket clients that never read, over raw sockets with a tiny receive buffer, on the event loop the
in-process server runs on; and the peak memory of this process (the server's)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

MB = 1024 * 1024


async def stalled_socket(api, token: str, path: str) -> socket.socket:
    """A websocket on ``path`` that reads its upgrade response and nothing more."""
    port = urlsplit(api.base_url).port
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(sock, (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 30)
        assert chunk, f"closed during the upgrade: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def send_text(sock: socket.socket, text: str) -> None:
    """One masked text frame from the client (under 126 bytes)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    await asyncio.get_running_loop().sock_sendall(sock, bytes([0x81, 0x80 | len(payload)]) + mask + masked)


def _status_bytes(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def reset_peak() -> int:
    """Reset this process's peak RSS to its current RSS, which is returned."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def peak_since(baseline: int) -> int:
    return _status_bytes("VmHWM") - baseline
