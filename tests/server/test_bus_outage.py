"""Revocation holds through a Redis outage: two ``bi serve`` processes on one store and a real
``redis-server`` that the test stops and starts again.

While Redis is down both tasks keep serving (sign-ins, dashboards, saves), ``/api/ready`` says the bus
is ``degraded`` (``/api/health``, what the load balancer uses, stays 200), and signing out everywhere on task A
closes the user's socket on task B within B's degraded re-check period (``Revocations.
degraded_recheck_seconds``), read from the store since the bus cannot carry it. Once Redis is back, B's
viewers get a fresh snapshot with what A did meanwhile, and A's pushes reach them again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from ..redis_server import RedisServer
from ..serve_process import ROOT, Server, clean_env, free_port, request, stop_all
from .test_card_socket import Socket, connect

ADMIN = {"email": "admin@example.com", "password": "outage admin password"}
VIEWER = {"email": "viewer@example.com", "password": "outage viewer password"}
RECHECK_SECONDS = 2.0
DOCUMENT = {"schemaVersion": 1, "title": "障害", "parameters": [], "refresh": None,
            "cards": [{"key": "n", "title": "答え", "code": "print(42)"}],
            "layout": [{"card": "n", "x": 0, "y": 0, "w": 6, "h": 4}]}


class Task:
    """One ``bi serve``, as the websocket helper wants it."""

    def __init__(self, server: Server):
        self.server = server
        self.port = server.port
        self.base_url = server.url


@pytest.fixture
def tasks(tmp_path) -> Iterator[tuple[RedisServer, Task, Task]]:
    redis_server = RedisServer(tmp_path / "redis")
    env = clean_env(PYTHONPATH=str(ROOT), BI_ADMIN_EMAIL=ADMIN["email"], BI_ADMIN_PASSWORD=ADMIN["password"],
                    BI_REDIS_URL=redis_server.url)
    args = ["--data-dir", str(tmp_path / "data"), "--ServeApp.local_executor=False",
            f"--RedisBus.ca_file={redis_server.ca_file}", "--RedisBus.reconnect_seconds=0.2",
            f"--Revocations.degraded_recheck_seconds={RECHECK_SECONDS}"]
    started: list[Server] = []

    def serve(index: int) -> Server:
        port = free_port()
        with open(tmp_path / f"serve{index}.log", "w") as log:
            server = Server(tmp_path, ["--port", str(port), *args], env, port, log, start_seconds=60)
        started.append(server)
        return server

    try:
        first = serve(0)  # alone: it makes the store and the signing key
        yield redis_server, Task(first), Task(serve(1))
    finally:
        stop_all(started)
        redis_server.stop()


def login(task: Task, who: dict[str, str]) -> str:
    status, body = request(task.port, "/api/auth/login", who)
    assert status == 200, body
    return body["access_token"]


def wait_bus(task: Task, degraded: bool, seconds: float = 20) -> dict:
    """The bus's check in ``/api/ready`` once it is (or is no longer) degraded. (The tasks have no executor,
    so the answer is 503 ``not_ready`` for that, whatever the bus.)"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bus = request(task.port, "/api/ready")[1]["checks"]["bus"]
        if bool(bus.get("degraded")) == degraded:
            return bus
        time.sleep(0.1)
    raise AssertionError(f"/api/ready of :{task.port} did not say degraded={degraded} in {seconds} s: {bus}")


async def until_snapshot(socket: Socket, version: int) -> dict:
    """Read until a snapshot of the dashboard's ``version`` (outputs and presence may come between)."""
    while True:
        message = await socket.receive()
        if message["type"] == "snapshot" and message["dashboard"]["version"] == version:
            return message


async def closed_code(socket: Socket, seconds: float) -> int | None:
    while await asyncio.wait_for(socket.connection.read_message(), seconds) is not None:
        pass
    return socket.connection.close_code


async def test_sign_out_everywhere_during_an_outage_closes_sockets_on_the_other_task(tasks):
    redis_server, a, b = tasks
    owner = login(a, ADMIN)
    status, _ = request(a.port, "/api/users", {"email": VIEWER["email"], "name": "viewer", "role": "member",
                                                "password": VIEWER["password"]}, token=owner)
    assert status == 201
    status, dashboard = request(a.port, "/api/dashboards", DOCUMENT, token=owner)
    assert status == 201, dashboard
    path = f"/api/dashboards/{dashboard['id']}"
    status, shared = request(a.port, f"{path}/shares", {"email": VIEWER["email"], "permission": "view"},
                             token=owner, method="PUT")
    assert status == 200, shared
    assert wait_bus(b, degraded=False) == {"ok": True}

    owner_on_b = await connect(b, login(b, ADMIN), path=f"{path}/ws")
    viewer_on_b = await connect(b, login(b, VIEWER), path=f"{path}/ws")
    for socket in (owner_on_b, viewer_on_b):
        assert (await until_snapshot(socket, 1))["dashboard"]["document"]["title"] == "障害"

    redis_server.stop()
    for task in (a, b):
        bus = wait_bus(task, degraded=True)
        assert bus["ok"] and "Redis" in bus["reason"], bus
        assert request(task.port, "/api/health") == (200, {"status": "ok"})
    # each task still serves whoever reaches it: a sign-in, a save, a dashboard's snapshot
    status, saved = request(a.port, path, {"version": 1, "document": {**DOCUMENT, "title": "障害中"}},
                            token=login(a, ADMIN), method="PUT")
    assert status == 200, saved
    late = await connect(b, login(b, VIEWER), path=f"{path}/ws")
    assert (await until_snapshot(late, 2))["dashboard"]["document"]["title"] == "障害中"

    status, _ = request(a.port, "/api/auth/logout-everywhere", {}, token=login(a, ADMIN))
    assert status == 204
    signed_out = time.monotonic()
    assert await closed_code(owner_on_b, 3 * RECHECK_SECONDS) == 4401, "B re-read the revocation from the store"
    took = time.monotonic() - signed_out
    assert took < RECHECK_SECONDS + 1.5, f"closed {took:.1f} s after the sign-out, past B's re-check period"
    assert owner_on_b.connection.close_reason.startswith("session_revoked")

    redis_server.start()
    for task in (a, b):
        assert wait_bus(task, degraded=False) == {"ok": True}
    # B's viewer from before the outage is shown what it missed, then A's pushes reach it again
    assert (await until_snapshot(viewer_on_b, 2))["dashboard"]["document"]["title"] == "障害中"
    status, saved = request(a.port, path, {"version": 2, "document": {**DOCUMENT, "title": "復旧"}},
                            token=login(a, ADMIN), method="PUT")
    assert status == 200, saved
    for socket in (viewer_on_b, late):
        assert (await until_snapshot(socket, 3))["dashboard"]["document"]["title"] == "復旧"

