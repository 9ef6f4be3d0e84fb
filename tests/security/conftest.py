"""Servers to attack: ``bi serve`` in a subprocess over raw sockets (what an anonymous caller can make it
hold), and the in-process server fixtures of ``tests/server`` (what card code can make it hold)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..serve_process import ROOT, Server, clean_env, free_port, request, stop_all
from ..server.conftest import any_api, api, start_server  # noqa: F401 - fixtures
from ..server.test_sessions import root, start_cards  # noqa: F401 - fixtures

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"

Serve = Callable[..., Server]


def start_serve(directory: Path, *flags: str, **env: str) -> Server:
    """``bi serve`` without a local executor, on a free port, with a known admin."""
    port = free_port()
    args = ["--port", str(port), "--data-dir", str(directory / "data"),
            "--ServeApp.local_executor=False", *flags]
    return Server(directory, args, clean_env(PYTHONPATH=str(ROOT), BI_ADMIN_EMAIL=ADMIN_EMAIL,
                                             BI_ADMIN_PASSWORD=ADMIN_PASSWORD, **env), port)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start servers with the given ``--Class.trait=value`` flags; all are stopped after the test."""
    started: list[Server] = []

    def start(*flags: str, **env: str) -> Server:
        server = start_serve(tmp_path, *flags, **env)
        started.append(server)
        return server

    yield start
    stop_all(started)


def sign_in(server: Server) -> str:
    status, body = request(server.port, "/api/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert status == 200, body
    return body["access_token"]


def connect(server: Server, timeout: float = 5) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response (status, lower-cased headers, body) read off ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (what it sends meanwhile is dropped)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    return False


def vm_kb(pid: int, field: str) -> int:
    """``VmRSS``/``VmHWM`` of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)

