"""One user's open websockets are capped: upgraded sockets leave the per-address connection cap, so before
this one member held 16,000 dashboard sockets (the server's descriptors toward RLIMIT_NOFILE, +257 MB).

Every kind counts against the one cap (``ServeApp.max_sockets_per_user``): dashboard, card editor and
scratch, and Jupyter channels. Past it the handshake is answered 429 ``too_many_sockets`` with
``Retry-After`` right after the token is checked, before a session, kernel or dashboard is looked up; a
refused or closed socket frees its place, and other users are not held up.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time

import pytest

from ..serve_process import Server, request
from .conftest import ADMIN_PASSWORD, connect, error_code, read_response, sign_in, start_serve

CAP = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_serve(tmp_path_factory.mktemp("sockets"), f"--ServeApp.max_sockets_per_user={CAP}")
    yield running
    running.proc.kill()
    running.proc.wait()


def member(server: Server, name: str) -> str:
    admin = sign_in(server)
    email = f"{name}@example.com"
    request(server.port, "/api/users", {"email": email, "name": name, "password": ADMIN_PASSWORD,
                                        "role": "member"}, admin)
    status, body = request(server.port, "/api/auth/login", {"email": email, "password": ADMIN_PASSWORD})
    assert status == 200, body
    return body["access_token"]


def dashboard(server: Server, token: str) -> str:
    status, body = request(server.port, "/api/dashboards",
                           {"schemaVersion": 1, "title": "t", "cards": [], "layout": []}, token)
    assert status == 201, body
    return body["id"]


def upgrade(server: Server, token: str, path: str) -> tuple[int, dict[str, str], bytes, socket.socket]:
    """Ask for a websocket on ``path``; the status, headers and body of the answer, and the connection."""
    sock = connect(server)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    status, headers, body = read_response(sock)
    return status, headers, body, sock


def test_sockets_past_the_cap_are_refused(server):
    token = member(server, "holder")
    path = f"/api/dashboards/{dashboard(server, token)}/ws"
    answers = [upgrade(server, token, path) for _ in range(CAP + 3)]
    try:
        assert [status for status, *_ in answers] == [101] * CAP + [429] * 3
        _, headers, body, _ = answers[-1]
        assert error_code(body) == "too_many_sockets" and int(headers["retry-after"]) > 0
        assert json.loads(body)["error"]["details"] == {"limit": CAP}
    finally:
        for *_, sock in answers:
            sock.close()


def test_every_kind_of_socket_counts_and_is_refused_before_its_work(server):
    """At the cap with dashboard sockets, a scratch card socket and a Jupyter channel are refused with 429
    (not 503 for want of an executor, nor 404 for an unknown kernel): nothing was started for them."""
    token = member(server, "mixed")
    path = f"/api/dashboards/{dashboard(server, token)}/ws"
    held = [upgrade(server, token, path) for _ in range(CAP)]
    try:
        assert [status for status, *_ in held] == [101] * CAP
        for other in ("/api/cards/scratch/ws", "/api/kernels/0123456789abcdef0123456789abcdef/channels"):
            status, _, body, sock = upgrade(server, token, other)
            sock.close()
            assert (status, error_code(body)) == (429, "too_many_sockets"), other
    finally:
        for *_, sock in held:
            sock.close()


def test_places_are_freed_and_other_users_are_not_held_up(server):
    token, other = member(server, "freed"), member(server, "other")
    path = f"/api/dashboards/{dashboard(server, token)}/ws"
    held = [upgrade(server, token, path) for _ in range(CAP)]
    refused = [upgrade(server, token, path) for _ in range(3)]
    assert [status for status, *_ in refused] == [429] * 3
    status, _, _, sock = upgrade(server, other, f"/api/dashboards/{dashboard(server, other)}/ws")
    sock.close()
    assert status == 101
    for *_, sock in held[:2] + refused:
        sock.close()
    again = []
    for _ in range(20):  # the server notices the closes within moments
        answer = upgrade(server, token, path)
        if answer[0] == 101:
            again.append(answer)
            if len(again) == 2:
                break
        else:
            answer[3].close()
            time.sleep(0.1)
    try:
        assert len(again) == 2
        status, _, _, sock = upgrade(server, token, path)
        sock.close()
        assert status == 429
    finally:
        for *_, sock in held[2:] + again:
            sock.close()
