"""Cache hits from each API task's memory (``services/result_memory.py``): a result deleted from the store on
one task is forgotten by every task (over a real ``redis-server``), the memory is bypassed while the bus is
down, and a hit from memory still checks the caller's current rights."""

from __future__ import annotations

import asyncio

from server.execution.local_agent import PRIVATE_KEY_FILE

from ..redis_server import RedisServer
from .test_sessions import root, start_cards  # noqa: F401 - fixtures

CARD = {"title": "乱数", "code": "import random\nrandom.random()", "datasets": [], "parameters": []}


async def run(api, token: str, card_id: str, force: bool = False) -> dict:
    response = await api.fetch("POST", f"/api/cards/{card_id}/run", token=token, json_body={"force": force})
    assert response.code == 200, response.body
    return response.json()


async def forget_in_store(api, result_id: str) -> None:
    """Delete the cache entry whose outputs are ``result_id`` behind the servers' backs (no deletion is
    reported): a hit after this can only come from a server's memory."""
    store = api.app.store_instance
    table = await store.get_output_table(result_id)
    await store.delete_cached_result(table.result_key)


async def until(condition, what: str, seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"waited {seconds} s for {what}")


async def test_a_result_deleted_on_one_task_is_forgotten_by_all_and_memory_waits_for_the_bus(
        start_server, start_cards, tmp_path):
    redis_server = RedisServer(tmp_path / "redis")
    try:
        bus = {"ServeApp__redis_url": redis_server.url, "RedisBus__ca_file": str(redis_server.ca_file),
               "RedisBus__reconnect_seconds": 0.2}
        a = await start_cards(own_agent=True, **bus)
        b = await start_server(BIApp__data_dir=str(tmp_path / "data0"),  # one store, A's agent
                               ServeApp__executor_urls=[a.app.kernel_pool.executors.urls[0]],
                               ServeApp__executor_private_key_file=str(tmp_path / "data0" / PRIVATE_KEY_FILE), **bus)
        token = await a.login()
        card = (await a.fetch("POST", "/api/cards", token=token, json_body=CARD)).json()
        first = await run(a, token, card["id"])
        assert first["cached"] is False
        await a.app.card_runs.settled()  # A caches its result just after answering
        assert (await run(b, token, card["id"]))["result_id"] == first["result_id"], "B read the store"
        assert len(b.app.card_runs.memory) == 1, "and keeps the result"
        kept = await run(b, token, card["id"])
        assert kept["cached"] is True and kept["outputs"] == first["outputs"]

        forced = await run(a, token, card["id"], force=True)  # replaces the entry: its tables are deleted on A
        assert forced["cached"] is False and forced["outputs"] != first["outputs"]
        await until(lambda: len(b.app.card_runs.memory) == 0, "B to hear of the deletion")
        hit = await run(b, token, card["id"])
        assert hit["result_id"] == forced["result_id"] and hit["outputs"] == forced["outputs"]

        redis_server.stop()
        await until(lambda: not a.app.bus.connected and not b.app.bus.connected, "both buses to be down")
        while_down = await run(b, token, card["id"])
        assert while_down["cached"] is True and while_down["result_id"] == forced["result_id"]
        again = await run(a, token, card["id"], force=True)  # B cannot hear of this deletion
        await a.app.card_runs.settled()
        assert (await run(b, token, card["id"]))["result_id"] == again["result_id"], "B read the store"
        assert len(b.app.card_runs.memory) == 1, "(what it kept before: not served while the bus is down)"

        redis_server.start()
        await until(lambda: a.app.bus.connected and b.app.bus.connected, "both buses to be back")
        assert len(b.app.card_runs.memory) == 0, "forgotten when the bus came back"
        assert (await run(b, token, card["id"]))["result_id"] == again["result_id"]
        assert len(b.app.card_runs.memory) == 1, "kept again"
    finally:
        redis_server.stop()


async def test_a_hit_from_memory_checks_the_callers_rights_now(start_cards):
    api = await start_cards()
    owner = await api.login()
    viewer = await api.add_user("viewer@example.com")
    document = {"schemaVersion": 1, "title": "共有", "parameters": [], "refresh": None,
                "cards": [{"key": "r", **{k: CARD[k] for k in ("title", "code")}}],
                "layout": [{"card": "r", "x": 0, "y": 0, "w": 6, "h": 4}]}
    dashboard = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=document)).json()
    card_id = dashboard["document"]["cards"][0]["card"]
    shared = await api.fetch("PUT", f"/api/dashboards/{dashboard['id']}/shares", token=owner,
                             json_body={"email": "viewer@example.com", "permission": "view"})
    assert shared.code == 200, shared.body
    first = await run(api, owner, card_id)
    assert (await run(api, viewer, card_id))["result_id"] == first["result_id"]
    await forget_in_store(api, first["result_id"])
    assert (await run(api, viewer, card_id))["cached"] is True, "from memory"

    revoked = await api.fetch("DELETE", f"/api/dashboards/{dashboard['id']}/shares", token=owner,
                              json_body={"email": "viewer@example.com"})
    assert revoked.code == 204, revoked.body
    refused = await api.fetch("POST", f"/api/cards/{card_id}/run", token=viewer, json_body={})
    assert refused.code == 404, "the memory answers only runs that may read it now"
    assert (await run(api, owner, card_id))["outputs"] == first["outputs"], "the owner still may"
