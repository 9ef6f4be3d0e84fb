"""Cards, datasets, dashboards and their versions in each API task's memory (``services/record_memory.py``): a card
saved or deleted, a dataset renamed or given a new version, a dashboard saved or deleted on one task is forgotten by
every task (over a real ``redis-server``, in milliseconds), and the memory (and the user cache) is bypassed while the
bus is down; a dashboard's shares are read on every request."""

from __future__ import annotations

import asyncio

from ..redis_server import RedisServer
from .test_datasets import upload
from .test_result_memory import until

CARD = {"title": "合計", "code": "1 + 1", "datasets": [], "parameters": []}


async def code_on(api, token: str, card_id: str) -> tuple[int, str | None]:
    response = await api.fetch("GET", f"/api/cards/{card_id}", token=token)
    return response.code, response.json()["code"] if response.code == 200 else None


async def answers(read, expected: tuple, seconds: float = 2.0) -> bool:
    """Whether ``read()`` answers ``expected`` within ``seconds`` (a bus message takes milliseconds)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while await read() != expected:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def shows(api, token: str, card_id: str, expected: tuple[int, str | None]) -> bool:
    """Whether ``api`` answers ``expected`` for the card within 2 s."""
    return await answers(lambda: code_on(api, token, card_id), expected)


async def save(api, token: str, card_id: str, version: int, code: str) -> None:
    response = await api.fetch("PUT", f"/api/cards/{card_id}", token=token, json_body={**CARD, "code": code},
                               headers={"If-Match": f'"{version}"'})
    assert response.code == 200, response.body


async def test_a_change_on_one_task_is_forgotten_by_all_and_memory_waits_for_the_bus(start_server, tmp_path):
    redis_server = RedisServer(tmp_path / "redis")
    try:
        bus = {"ServeApp__redis_url": redis_server.url, "RedisBus__ca_file": str(redis_server.ca_file),
               "RedisBus__reconnect_seconds": 0.2, "AuthService__user_cache_seconds": 60.0}
        a = await start_server(**bus)
        b = await start_server(BIApp__data_dir=str(tmp_path / "data0"), **bus)  # one store
        token = await a.login()
        member = await a.add_user("member@example.com")
        assert (await b.fetch("GET", "/api/me", token=member)).code == 200, "B keeps the member's record"
        member_id = (await b.fetch("GET", "/api/me", token=member)).json()["id"]
        card = (await a.fetch("POST", "/api/cards", token=token, json_body=CARD)).json()
        assert await code_on(b, token, card["id"]) == (200, "1 + 1")
        records = b.app.datasets.records
        assert records.bytes > 0, "B keeps the card and its version"

        await save(a, token, card["id"], 1, "2 + 2")
        assert await shows(b, token, card["id"], (200, "2 + 2")), "B forgot the card it kept"

        uploaded = await upload(a, "sales", b"x\n1\n", token)
        assert uploaded.code == 201, uploaded.body
        dataset_id = uploaded.json()["id"]
        assert (await records.dataset(dataset_id)).name == "sales"
        renamed = await a.fetch("PATCH", f"/api/datasets/{dataset_id}", token=token, json_body={"name": "uriage"})
        assert renamed.code == 200, renamed.body
        await until(lambda: not records._parts.get(("dataset", dataset_id)), "B to hear of the rename")
        assert (await records.dataset(dataset_id)).name == "uriage"
        added = await a.fetch("POST", f"/api/datasets/{dataset_id}/versions", token=token, body=b"x\n2\n",
                              headers={"Content-Type": "text/csv"})
        assert added.code == 201, added.body
        await until(lambda: not records._parts.get(("dataset", dataset_id)), "B to hear of the new version")
        assert (await records.dataset(dataset_id)).current_version == 2

        redis_server.stop()
        await until(lambda: not a.app.bus.connected and not b.app.bus.connected, "both buses to be down")
        await save(a, token, card["id"], 2, "3 + 3")  # B cannot hear of this one
        assert await code_on(b, token, card["id"]) == (200, "3 + 3"), "B read the store"
        assert (await a.fetch("PATCH", f"/api/users/{member_id}", token=token, json_body={"active": False})).code == 200
        assert (await b.fetch("GET", "/api/me", token=member)).code == 401, "B read the user from the store"

        redis_server.start()
        await until(lambda: a.app.bus.connected and b.app.bus.connected, "both buses to be back")
        assert records.bytes == 0, "forgotten when the bus came back"
        assert await code_on(b, token, card["id"]) == (200, "3 + 3")
        assert (await a.fetch("DELETE", f"/api/cards/{card['id']}", token=token)).code == 204
        assert await shows(b, token, card["id"], (404, None)), "B forgot the deleted card"
    finally:
        redis_server.stop()


DASHBOARD = {"schemaVersion": 1, "title": "記録", "parameters": [], "cards": [], "layout": []}


async def version_on(api, token: str, dashboard_id: str) -> tuple[int, int | None]:
    response = await api.fetch("GET", f"/api/dashboards/{dashboard_id}", token=token)
    return response.code, response.json()["version"] if response.code == 200 else None


async def dashboard_shows(api, token: str, dashboard_id: str, expected: tuple[int, int | None]) -> bool:
    """Whether ``api`` answers ``expected`` for the dashboard within 2 s."""
    return await answers(lambda: version_on(api, token, dashboard_id), expected)


async def save_dashboard(api, token: str, dashboard_id: str, version: int, title: str) -> None:
    response = await api.fetch("PUT", f"/api/dashboards/{dashboard_id}", token=token,
                               json_body={**DASHBOARD, "title": title}, headers={"If-Match": f'"{version}"'})
    assert response.code == 200, response.body


async def test_a_dashboard_record_is_kept_until_a_task_saves_or_deletes_it_and_shares_are_read_every_time(
        start_server, tmp_path):
    redis_server = RedisServer(tmp_path / "redis")
    try:
        bus = {"ServeApp__redis_url": redis_server.url, "RedisBus__ca_file": str(redis_server.ca_file),
               "RedisBus__reconnect_seconds": 0.2}
        a = await start_server(**bus)
        b = await start_server(BIApp__data_dir=str(tmp_path / "data0"), **bus)  # one store
        token = await a.login()
        member = await a.add_user("member@example.com")
        dashboard_id = (await a.fetch("POST", "/api/dashboards", token=token, json_body=DASHBOARD)).json()["id"]
        records = b.app.datasets.records
        assert await version_on(b, token, dashboard_id) == (200, 1)
        assert 0 in records._parts.get(("dashboard", dashboard_id), ()), "B keeps the dashboard's record"

        assert await version_on(b, member, dashboard_id) == (404, None), "not shared with the member"
        shared = await a.fetch("PUT", f"/api/dashboards/{dashboard_id}/shares", token=token,
                               json_body={"email": "member@example.com", "permission": "view"})
        assert shared.code == 200, shared.body
        assert await version_on(b, member, dashboard_id) == (200, 1), "B read the new share at once"

        await save_dashboard(a, token, dashboard_id, 1, "二")
        assert await dashboard_shows(b, token, dashboard_id, (200, 2)), "B forgot the record it kept"
        await save_dashboard(b, token, dashboard_id, 2, "三")  # B saves from the store's record
        assert await dashboard_shows(a, token, dashboard_id, (200, 3))

        redis_server.stop()
        await until(lambda: not a.app.bus.connected and not b.app.bus.connected, "both buses to be down")
        await save_dashboard(a, token, dashboard_id, 3, "四")  # B cannot hear of this one
        assert await version_on(b, token, dashboard_id) == (200, 4), "B read the store"

        redis_server.start()
        await until(lambda: a.app.bus.connected and b.app.bus.connected, "both buses to be back")
        assert await version_on(b, token, dashboard_id) == (200, 4)
        assert (await a.fetch("DELETE", f"/api/dashboards/{dashboard_id}", token=token)).code == 204
        assert await dashboard_shows(b, token, dashboard_id, (404, None)), "B forgot the deleted dashboard"
    finally:
        redis_server.stop()
