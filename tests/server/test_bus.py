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


async def test_raw_values_pass_as_they_are_and_releases_read_each_other(redis_server):
    """A value published as JSON text reaches every task byte for byte, never parsed (version 2); a task
    writing version 1 (the default, for a rolling deploy) splices it into the body, which the previous release's reader (one
    JSON object of version 1) parses whole, and this release reads both, and the previous release's messages."""
    result = b'{"outputs": [{"text": "\xe5\xa3\xb2\xe4\xb8\x8a 42\\n"}],  "cached":true}'  # not as json_io writes it
    new, deploying, reader = bus_of(redis_server, message_version=2), bus_of(redis_server), bus_of(redis_server)
    assert deploying.message_version == 1, "the previous release reads only version 1: written by default"
    seen: list[Envelope] = []
    reader.subscribe("dashboard.output", seen.append)
    raw_messages: list[bytes] = []
    for bus in (new, deploying, reader):
        await bus.start()
    async with aioredis.Redis.from_url(redis_server.url, ssl_ca_certs=str(redis_server.ca_file)) as client:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe("test-bus:dashboard.output")
            try:
                for bus in (new, deploying):
                    await bus.publish("dashboard.output", {"card": "n"}, raw={"result": result})
                await deploying.publish("dashboard.output", {}, raw={"result": result, "more": b"[1]"})
                await client.publish("test-bus:dashboard.output", json.dumps(  # as the previous release wrote it
                    {"v": 1, "topic": "dashboard.output", "origin": "previous", "body": {"result": {"n": 1}}}))
                while len(raw_messages) < 4:
                    message = await pubsub.get_message(timeout=5)
                    assert message is not None, raw_messages
                    if message["type"] == "message":
                        raw_messages.append(message["data"])
                for _ in range(100):
                    if len(seen) == 4:
                        break
                    await asyncio.sleep(0.05)
            finally:
                for bus in (new, deploying, reader):
                    await bus.close()
    v2, v1, v1_bare, previous = seen
    assert (v2.version, v2.body, v2.raw) == (2, {"card": "n"}, {"result": result})
    assert v2.text("result") == result, "byte for byte, not parsed and written again"
    assert v2.value("result") == json.loads(result)
    assert (v1.version, v1.body, v1.raw) == (1, {"card": "n", "result": json.loads(result)}, {})
    assert v1.text("result") == json.dumps(json.loads(result), ensure_ascii=False, separators=(",", ":")).encode()
    assert (v1_bare.body, previous.text("result")) == ({"result": json.loads(result), "more": [1]}, b'{"n":1}')
    for data, body in zip(raw_messages[1:3], (v1.body, v1_bare.body), strict=True):
        old = json.loads(data)  # the previous release's reader
        assert (old["v"], old["origin"], old["body"]) == (1, deploying.origin, body)


async def test_a_task_hears_its_own_message_as_it_sent_it(redis_server):
    """A task's own message comes back with its raw values byte for byte and a copy of its body, whatever the
    version it writes (version 1 here: the result inside the body on the wire), not parsed and serialised again;
    another task reads what came over the wire."""
    result = b'{"outputs": [],  "cached":true}'  # not as json_io writes it
    own, other = bus_of(redis_server), bus_of(redis_server)
    heard: list[list[Envelope]] = [[], []]
    for bus, seen in zip((own, other), heard, strict=True):
        bus.subscribe("dashboard.output", seen.append)
        await bus.start()
    body = {"card": "n", "pins": ["t1"]}
    try:
        await own.publish("dashboard.output", body, raw={"result": result})
        for _ in range(100):
            if all(heard):
                break
            await asyncio.sleep(0.05)
    finally:
        for bus in (own, other):
            await bus.close()
    (mine,), (theirs,) = heard
    assert mine.text("result") == result, "the task's own result as it sent it"
    assert mine.body == body and mine.body is not body and mine.body["pins"] is not body["pins"]
    assert theirs.text("result") == json.dumps(json.loads(result), separators=(",", ":")).encode()
    assert theirs.body == {**body, "result": json.loads(result)}
    assert not own._own, "forgotten once heard"


async def test_a_message_whose_raw_lengths_do_not_add_up_is_skipped(redis_server):
    """A version 2 message cut short (or with bytes past its raw values) is logged and skipped, not half read."""
    bus = bus_of(redis_server)
    seen: list[Envelope] = []
    bus.subscribe("dashboard.output", seen.append)
    head = json.dumps({"v": 2, "topic": "dashboard.output", "origin": "x", "body": {}, "raw": [["result", 4]]})
    with capture_logs() as logs:
        for data in (head + "\n[1]", head + "\n[1,2]", head + "\n[12]"):
            bus.deliver(data.encode())
    assert [e.raw for e in seen] == [{"result": b"[12]"}]
    assert [entry["reason"] for entry in logs if entry["event"] == "bus_message_skipped"] == ["unreadable"] * 2


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
    await a.app.card_runs.settled()  # A caches the result just after answering; B reads it from the store

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
