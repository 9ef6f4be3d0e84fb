"""The bus between API tasks on a real ``redis-server`` (TLS and AUTH, as ElastiCache): versioned
messages between two buses, and two API servers on one store whose viewers see each other's runs,
presence and revocations."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from server.bus import Envelope, RedisBus
from server.execution.local_agent import PRIVATE_KEY_FILE

from ..redis_server import RedisServer
from .test_card_socket import connect
from .test_sessions import root, start_cards  # noqa: F401 - fixtures

CARD = {"schemaVersion": 1, "title": "バス", "parameters": [], "refresh": None,
        "cards": [{"key": "n", "title": "答え", "code": "print('答え', 6 * 7)"}],
        "layout": [{"card": "n", "x": 0, "y": 0, "w": 6, "h": 4}]}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """One redis-server for the module's tests."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


async def until_viewers(socket, emails: set[str]) -> None:
    """Read presence messages (and outputs, snapshots) until one names exactly ``emails``."""
    while True:
        message = await socket.receive()
        assert message["type"] in ("presence", "output", "snapshot"), message
        if message["type"] == "presence" and {v["email"] for v in message["viewers"]} == emails:
            return


def bus_of(server: RedisServer, **traits) -> RedisBus:
    return RedisBus(url=server.url, ca_file=str(server.ca_file), channel_prefix="test-bus:", **traits)


async def test_messages_reach_every_bus_and_unknown_versions_are_skipped(redis_server):
    """What one bus publishes reaches every bus (itself too), in order; a message of a version this
    release cannot read is logged and skipped, and the ones after it still arrive."""
    buses = [bus_of(redis_server), bus_of(redis_server)]
    got: list[list[Envelope]] = [[], []]
    for bus, seen in zip(buses, got, strict=True):
        bus.subscribe("dashboard.output", seen.append)
        await bus.start()
    try:
        with capture_logs() as logs:
            await buses[0].publish("dashboard.output", {"n": 1, "text": "売上"})
            async with aioredis.Redis.from_url(redis_server.url, ssl_ca_certs=str(redis_server.ca_file)) as raw:
                await raw.publish("test-bus:dashboard.output", json.dumps({"v": 99, "topic": "dashboard.output",
                                                                         "origin": "next-release", "body": {}}))
            await buses[1].publish("dashboard.output", {"n": 2})
            for _ in range(100):
                if all(len(seen) == 2 for seen in got):
                    break
                await asyncio.sleep(0.05)
        for seen in got:
            assert [(e.body.get("n"), e.origin, e.version) for e in seen] == [
                (1, buses[0].origin, 1), (2, buses[1].origin, 1)]
        assert got[1][0].body["text"] == "売上"
        skipped = [entry for entry in logs if entry["event"] == "bus_message_skipped"]
        assert len(skipped) == 2 and {entry["version"] for entry in skipped} == {"99"}
    finally:
        for bus in buses:
            await bus.close()


async def test_redis_wants_tls_and_the_password(redis_server):
    """Without the password, or without TLS, the bus does not connect (and says so)."""
    for url in (redis_server.url.replace(f":{redis_server.password}@", ":wrong@"),
                redis_server.url.replace("rediss://", "redis://")):
        bus = RedisBus(url=url, ca_file=str(redis_server.ca_file), reconnect_seconds=30, socket_timeout=2)
        bus.subscribe("dashboard.output", lambda envelope: None)
        with capture_logs() as logs:
            await bus.start()
        await bus.close()
        assert not bus.connected and [entry["event"] for entry in logs] == ["bus_disconnected"]


async def test_two_api_servers_share_runs_presence_and_revocations(start_server, start_cards, redis_server, tmp_path):
    """A re-run on server A reaches a viewer on server B, who sees A's viewers and A's new version of the
    dashboard; revoking the share on A closes the viewer's socket on B, and signing out everywhere on B
    closes the owner's socket on A."""
    bus = {"ServeApp__redis_url": redis_server.url, "RedisBus__ca_file": str(redis_server.ca_file)}
    a = await start_cards(own_agent=True, **bus)  # its key file is in its data dir, for B
    agent = a.app.kernel_pool.executors.urls[0]  # B runs cards on A's agent: the same kernel image version
    b = await start_server(BIApp__data_dir=str(tmp_path / "data0"), ServeApp__executor_urls=[agent],  # one store
                           ServeApp__executor_private_key_file=str(tmp_path / "data0" / PRIVATE_KEY_FILE), **bus)
    owner = await a.login()
    dashboard = (await a.fetch("POST", "/api/dashboards", token=owner, json_body=CARD)).json()
    viewer = await a.add_user("viewer@example.com")
    shared = await a.fetch("PUT", f"/api/dashboards/{dashboard['id']}/shares", token=owner,
                           json_body={"email": "viewer@example.com", "permission": "view"})
    assert shared.code == 200, shared.body
    first = await a.fetch("POST", f"/api/dashboards/{dashboard['id']}/cards/n/run", token=owner, json_body={})
    assert first.code == 200 and first.json()["cached"] is False, first.body

    on_b = await connect(b, viewer, path=f"/api/dashboards/{dashboard['id']}/ws")
    assert (await on_b.receive())["type"] == "snapshot"
    while (shown := await on_b.receive())["type"] != "output":  # the tile's output follows the snapshot
        assert shown["type"] == "presence", shown
    assert shown["result"]["outputs"][0]["text"] == "答え 42\n", "from the store's cache"
    on_a = await connect(a, owner, path=f"/api/dashboards/{dashboard['id']}/ws")
    assert (await on_a.receive())["type"] == "snapshot"
    both = {"admin@example.com", "viewer@example.com"}
    await until_viewers(on_a, both)
    await until_viewers(on_b, both)

    rerun = await a.fetch("POST", f"/api/dashboards/{dashboard['id']}/cards/n/run", token=owner, json_body={})
    assert rerun.code == 200, rerun.body
    while (pushed := await on_b.receive())["type"] != "output":
        assert pushed["type"] == "presence"
    assert pushed["card"] == "n" and pushed["seq"] == 2 and pushed["result"] == rerun.json()

    saved = await a.fetch("PUT", f"/api/dashboards/{dashboard['id']}", token=owner,
                          json_body={"version": 1, "document": {**CARD, "title": "バス 2"}})
    assert saved.code == 200, saved.body
    while (fresh := await on_b.receive())["type"] != "snapshot":
        assert fresh["type"] in ("presence", "output"), fresh
    assert fresh["dashboard"]["document"]["title"] == "バス 2" and fresh["dashboard"]["version"] == 2, "on B"

    revoked = await a.fetch("DELETE", f"/api/dashboards/{dashboard['id']}/shares", token=owner,
                            json_body={"email": "viewer@example.com"})
    assert revoked.code == 204, revoked.body
    while await asyncio.wait_for(on_b.connection.read_message(), 10) is not None:
        pass
    assert on_b.connection.close_code == 4403, "the revocation on A closed the socket on B"
    await until_viewers(on_a, {"admin@example.com"})

    signed_out = await b.fetch("POST", "/api/auth/logout-everywhere", token=owner)
    assert signed_out.code == 204, signed_out.body
    while await asyncio.wait_for(on_a.connection.read_message(), 10) is not None:
        pass
    assert on_a.connection.close_code == 4401, "signing out everywhere on B closed the socket on A"
