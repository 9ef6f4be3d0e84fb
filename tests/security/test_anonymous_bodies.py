"""Anonymous bodies: the token (or a public route's small limit) is checked before any body is read.

Today eight anonymous 95 MB bodies grew the server by 1.1 GB: Tornado read every body before the
handler looked at the token. Every route must answer before the body arrives and close the
connection (``Connection: close``) instead of reading it.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest

from server.urls import ROUTES

from .conftest import (
    closed_within,
    connect,
    error_code,
    read_response,
    sign_in,
    start_serve,
    vm_kb,
)

BIG = 50 * 1024 * 1024
PATHS = [re.sub(r"\{\w+\}", "x", pattern) for pattern, _ in ROUTES] + ["/some/page", "/api/nothing-here"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_serve(tmp_path_factory.mktemp("anonymous"))
    yield running
    running.proc.kill()
    running.proc.wait()


def send_head(server, method: str, path: str, headers: str, timeout: float = 2) -> socket.socket:
    sock = connect(server, timeout=timeout)
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: bi\r\n{headers}\r\n".encode())
    return sock


def test_every_route_answers_before_an_anonymous_body(server):
    """A declared 50 MB body gets its 4xx at once, and the connection is closed unread."""
    head = f"Content-Type: application/json\r\nContent-Length: {BIG}\r\n"
    sockets = {path: send_head(server, "POST", path, head) for path in PATHS}
    deadline = time.monotonic() + 10
    waited = []
    for path, sock in sockets.items():
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            status, _, _ = read_response(sock)
        except TimeoutError:
            waited.append(path)
            continue
        assert 400 <= status < 500, (path, status)
        assert closed_within(sock, 2), path
        sock.close()
    assert not waited, f"these routes waited for the body before answering: {waited}"


def test_api_rejection_says_connection_close(server):
    """A keep-alive client learns the connection ends, so its next request is not reset."""
    sock = send_head(server, "PUT", "/api/cards/x", f"Content-Length: {BIG}\r\n")
    status, headers, body = read_response(sock)
    assert status == 401 and error_code(body) == "unauthorized"
    assert headers.get("connection", "").lower() == "close"
    assert closed_within(sock, 2)


def test_chunked_anonymous_body_is_not_read(server):
    sock = send_head(server, "POST", "/api/dashboards/import", "Transfer-Encoding: chunked\r\n")
    sock.sendall(b"100000\r\n")
    status, headers, _ = read_response(sock)
    assert status == 401
    assert headers.get("connection", "").lower() == "close"


def test_public_route_takes_only_a_small_body(server):
    """Sign-in is anonymous: its body is limited to a few kilobytes, refused before it is read."""
    sock = send_head(server, "POST", "/api/auth/login", "Content-Type: application/json\r\nContent-Length: 1000000\r\n")
    status, headers, body = read_response(sock)
    assert status == 413 and error_code(body) == "payload_too_large"
    assert headers.get("connection", "").lower() == "close"


def test_signed_in_json_body_over_the_limit_is_refused_unread(server):
    token = sign_in(server)
    sock = send_head(server, "POST", "/api/cards",
                     f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {BIG}\r\n")
    status, _, body = read_response(sock)
    assert status == 413 and error_code(body) == "payload_too_large"
    assert "1 MB" in json_message(body)


def test_signed_in_chunked_json_body_is_bounded(server):
    """Without a Content-Length the body is counted as it arrives and cut off at the limit."""
    token = sign_in(server)
    sock = send_head(server, "POST", "/api/cards",
                     f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n")
    piece = b"x" * 65536
    try:
        for _ in range(40):  # 2.5 MB
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    except ConnectionError:
        pass
    assert read_response(sock)[0] in (400, 413)


def test_eight_anonymous_bodies_cost_nothing(server):
    """Eight anonymous 24 MB bodies sent in full at once: the server's peak memory barely moves."""
    before = vm_kb(server.proc.pid, "VmHWM")
    body = b"{" + b" " * (24 * 1024 * 1024 - 2) + b"}"

    def attack() -> None:
        sock = connect(server, timeout=10)
        try:
            sock.sendall(b"POST /api/cards HTTP/1.1\r\nHost: bi\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body))
            sock.sendall(body)
            read_response(sock)
        except (ConnectionError, OSError):
            pass
        finally:
            sock.close()

    threads = [threading.Thread(target=attack) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    time.sleep(0.2)
    grown_mb = (vm_kb(server.proc.pid, "VmHWM") - before) / 1024
    assert grown_mb < 30, f"the server's peak memory grew by {grown_mb:.0f} MB"


def json_message(body: bytes) -> str:
    return json.loads(body)["error"]["message"]
