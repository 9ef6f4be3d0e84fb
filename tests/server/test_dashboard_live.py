"""Live dashboards over real sockets, with real kernels: snapshots, shared and personal outputs,
re-runs on saves, new dataset versions and scheduled refreshes, presence, revocation."""

from __future__ import annotations

import asyncio
import json
import time

from structlog.testing import capture_logs

from server import limits

from .test_card_socket import Socket, connect
from .test_dashboards import document
from .test_datasets import JAPANESE_CSV, upload
from .test_result_memory import until
from .test_sessions import root, start_cards  # noqa: F401 - fixtures


async def join(api, token: str, dashboard_id: str) -> Socket:
    return await connect(api, token, path=f"/api/dashboards/{dashboard_id}/ws")


async def output(socket: Socket, card: str = "total") -> dict:
    """The next output of ``card``, skipping presence, places in line and news of data (``socket.seen`` keeps them)."""
    return (await outputs(socket, card))[card]


async def outputs(socket: Socket, *cards: str) -> dict[str, dict]:
    """The next output of each of ``cards``, in whatever order they come (tiles run at once), skipping what
    ``output`` skips."""
    found: dict[str, dict] = {}
    while len(found) < len(cards):
        message = await socket.receive()
        if message["type"] == "output" and message["card"] in cards:
            found.setdefault(message["card"], message)
            continue
        assert message["type"] in ("presence", "snapshot", "queued", "new_data"), message
    return found


def printed(message: dict) -> str:
    return "".join(o.get("text", "") for o in message["result"]["outputs"])


async def test_a_live_dashboard(start_cards):
    api = await start_cards()
    owner = await api.login()
    dataset = (await upload(api, "売上", JAPANESE_CSV.encode("cp932"), owner)).json()
    created = await api.fetch("POST", "/api/dashboards", token=owner,
                              json_body=document(refresh={"every_seconds": 60}))
    dashboard = created.json()
    card_id = dashboard["document"]["cards"][0]["card"]
    viewer = await api.add_user("viewer@example.com")
    await api.fetch("PUT", f"/api/dashboards/{dashboard['id']}/shares", token=owner,
                    json_body={"email": "viewer@example.com", "permission": "view"})

    mine = await join(api, owner, dashboard["id"])
    snapshot = await mine.receive()
    assert snapshot["type"] == "snapshot" and snapshot["cards"]["total"]["result"] is None, "never run yet"
    assert snapshot["cards"]["total"]["title"] == "合計" and snapshot["dashboard"]["access"] == "owner"
    assert snapshot["cards"]["total"]["dataset_versions"] == {dataset["id"]: 1}
    first = await output(mine)
    assert first["seq"] == 1 and printed(first) == "9001.0\n", "run with the dashboard's factor, 2"
    fresh = {name: first["result"][name] for name in ("computed_at", "reason", "card_version", "dataset_versions")}
    assert fresh["reason"] == "edit" and fresh["card_version"] == 1 and fresh["dataset_versions"] == {dataset["id"]: 1}
    assert {"type": "queued", "card": "total", "position": 0} in [
        {k: v for k, v in m.items() if k != "_at"} for m in mine.seen], "the tile hears its run start"

    theirs = await join(api, viewer, dashboard["id"])
    snapshot = await theirs.receive()
    assert snapshot["cards"]["total"]["seq"] == 0 and snapshot["cards"]["total"]["result"] is None, "outputs follow"
    shown = await output(theirs)
    assert shown["seq"] == 1 and printed(shown) == "9001.0\n"
    assert {name: shown["result"][name] for name in fresh} == fresh, "a cache hit keeps the run's freshness"
    assert snapshot["dashboard"]["access"] == "view"
    assert {v["email"] for v in snapshot["viewers"]} == {"admin@example.com", "viewer@example.com"}
    presence = await mine.receive()
    assert presence["type"] == "presence" and len(presence["viewers"]) == 2

    saved = await api.fetch("PUT", f"/api/cards/{card_id}", token=owner, json_body={
        "version": 1, "title": "合計", "datasets": [dataset["id"]],
        "parameters": [{"name": "factor", "type": "number", "default": 1}],
        "code": "df = load_dataset('売上')\nprint('合計', df['売上'].sum() * factor)"})
    assert saved.code == 200
    for socket in (mine, theirs):
        pushed = await output(socket)
        assert (pushed["seq"], printed(pushed)) == (2, "合計 9001.0\n"), "a saved card re-runs for everyone"

    theirs.send(type="parameters", values={"factor": 3})
    personal = await output(theirs)
    assert personal["personal"] and "seq" not in personal and printed(personal) == "合計 13501.5\n"

    newer = JAPANESE_CSV + "福岡,なし,2,999.5\n"
    added = await api.fetch("POST", f"/api/datasets/{dataset['id']}/versions", token=owner,
                            body=newer.encode("cp932"), headers={"Content-Type": "text/csv"})
    assert added.code in (200, 201), added.body
    for socket in (mine, theirs):
        pushed = await output(socket)
        assert (pushed["seq"], printed(pushed)) == (3, "合計 11000.0\n"), "new data re-runs by itself"
        assert pushed["result"]["reason"] == "new_data" and pushed["result"]["dataset_versions"] == {dataset["id"]: 2}
        assert any(m["type"] == "new_data" and m["dataset_id"] == dataset["id"] and m["version"] == 2
                   for m in socket.seen), "viewers hear of the new version before its output"

    rerun = await api.fetch("POST", f"/api/dashboards/{dashboard['id']}/cards/total/run", token=viewer, json_body={})
    assert rerun.code == 200 and rerun.json()["cached"] is True
    assert (await output(mine))["seq"] == (await output(theirs))["seq"] == 4

    hub = api.app.dashboard_hub
    assert await hub.refresh_due() == [], "the first round is due a refresh interval after the dashboard was made"
    assert await hub.refresh_due(time.time() + 61) == [dashboard["id"]]
    assert await hub.refresh_due(time.time() + 61) == [], "no second refresh of a round while the first runs"
    refreshed = await output(theirs)
    assert refreshed["seq"] == 5 and refreshed["result"]["cached"] is False, "a refresh runs past the cache"
    assert refreshed["result"]["reason"] == "schedule"
    assert (await output(mine))["seq"] == 5

    forced = await api.fetch("POST", f"/api/dashboards/{dashboard['id']}/cards/total/run", token=viewer,
                             json_body={"force": True})
    assert forced.code == 403 and forced.error_code == "forbidden", "viewers see outputs as they are"
    forced = await api.fetch("POST", f"/api/dashboards/{dashboard['id']}/cards/total/run", token=owner,
                             json_body={"force": True})
    assert forced.code == 200 and forced.json()["cached"] is False and forced.json()["reason"] == "forced"
    assert forced.json()["computed_at"] > refreshed["result"]["computed_at"]
    assert (await output(theirs))["result"]["reason"] == "forced"

    theirs.send(type="hello")
    assert (await theirs.receive())["code"] == "bad_message"
    theirs.send(type="resync")
    assert (await theirs.receive())["type"] == "snapshot"

    await api.fetch("DELETE", f"/api/dashboards/{dashboard['id']}/shares", token=owner,
                    json_body={"email": "viewer@example.com"})
    while (message := await theirs.connection.read_message()) is not None:
        assert '"personal"' not in message
    assert theirs.connection.close_code == 4403, "revoking closes the viewer's socket at once"
    while (left := await mine.receive())["type"] != "presence":
        assert left["type"] in ("output", "queued") and not left.get("personal")
    assert len(left["viewers"]) == 1
    stranger = await api.add_user("stranger@example.com")
    refused = await api.fetch("GET", f"/api/dashboards/{dashboard['id']}/ws", token=stranger)
    assert refused.code == 404


async def test_bokeh_charts_and_their_patches_reach_viewers(start_cards):
    """A card's Bokeh item and the document patches that followed it arrive in order on the dashboard,
    run once for viewers who joined together; an editor whose share is revoked can no longer run the card from its editor."""
    api = await start_cards()
    owner = await api.login()
    code = ("from bokeh.plotting import figure, show\nfrom bokeh.models import ColumnDataSource\n"
            "src = ColumnDataSource({'x': [1], 'y': [1]})\np = figure(title='売上')\np.line('x', 'y', source=src)\n"
            "show(p)\nsrc.stream({'x': [2], 'y': [20]})")
    spec = document(parameters=[], cards=[{"key": "chart", "title": "グラフ", "code": code}],
                    layout=[{"card": "chart", "x": 0, "y": 0, "w": 12, "h": 6}])
    dashboard = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=spec)).json()
    editor = await api.add_user("editor@example.com")
    await api.fetch("PUT", f"/api/dashboards/{dashboard['id']}/shares", token=owner,
                    json_body={"email": "editor@example.com", "permission": "edit"})
    with capture_logs() as logs:
        socket, other = await asyncio.gather(join(api, editor, dashboard["id"]), join(api, owner, dashboard["id"]))
        assert (await socket.receive())["type"] == "snapshot"
        pushed = await output(socket, "chart")
        await output(other, "chart")
    runs = [e for e in logs if e["event"] == "card_executed" and not e["cached"]]
    assert len(runs) == 1, "viewers joining at once start one run"
    outputs = pushed["result"]["outputs"]
    assert [o["output_type"] for o in outputs] == ["display_data", "bokeh_patch"]
    assert outputs[1]["root_id"] == outputs[0]["data"]["application/vnd.bi.bokeh-item.v1+json"]["root_id"]
    assert [e["kind"] for e in outputs[1]["patch"]["events"]] == ["ColumnsStreamed"]

    card_id = dashboard["document"]["cards"][0]["card"]
    card_socket = await connect(api, editor, path=f"/api/cards/{card_id}/ws")
    assert (await card_socket.receive())["type"] == "session"
    await api.fetch("DELETE", f"/api/dashboards/{dashboard['id']}/shares", token=owner,
                    json_body={"email": "editor@example.com"})
    card_socket.send(type="execute", code="print('still here?')")
    while (message := await card_socket.connection.read_message()) is not None:
        assert "still here" not in message
    assert card_socket.connection.close_code == 4403


async def test_a_slow_socket_is_dropped_and_rejoins(api, monkeypatch):
    """Outputs are written to every socket; one that stops reading is closed with 4008 once too far
    behind, while the others get everything; rejoining gives a snapshot with the latest output."""
    monkeypatch.setattr(limits, "SOCKET_PENDING_BYTES", 2 * 1024 * 1024)
    owner = await api.login()
    spec = document(parameters=[], cards=[{"key": "total", "title": "合計", "code": "1"}])
    dashboard = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=spec)).json()
    fast, slow = await join(api, owner, dashboard["id"]), await join(api, owner, dashboard["id"])
    room = api.app.dashboard_hub.rooms[dashboard["id"]]
    received: list[int] = []

    async def read_all() -> None:
        while (text := await fast.connection.read_message()) is not None:
            message = json.loads(text)
            if message["type"] == "output":
                received.append(message["seq"])

    reader = asyncio.create_task(read_all())
    big = {"status": "ok", "cached": True, "execution_time_ms": 1,
           "outputs": [{"output_type": "stream", "name": "stdout", "text": "x" * 1024 * 1024}]}
    for _ in range(40):
        room.publish("total", big)
        await asyncio.sleep(0.01)
    last = room.seq["total"]
    for _ in range(500):
        if received and received[-1] == last:
            break
        await asyncio.sleep(0.02)
    assert received[-10:] == list(range(last - 9, last + 1)), "the fast socket got every output in order"
    while await asyncio.wait_for(slow.connection.read_message(), 30) is not None:
        pass
    assert slow.connection.close_code == 4008
    again = await join(api, owner, dashboard["id"])
    snapshot = await again.receive()
    assert snapshot["type"] == "snapshot" and snapshot["cards"]["total"]["seq"] == last - 1
    latest = await output(again)
    assert latest["seq"] == last and latest["result"] == big
    fast.close()
    await reader
    other = (await api.fetch("POST", "/api/cards", token=owner, json_body={"title": "別のカード", "code": "2"})).json()
    swapped = {**dashboard["document"], "cards": [{"key": "total", "card": other["id"]}]}
    saved = await api.fetch("PUT", f"/api/dashboards/{dashboard['id']}", token=owner,
                            json_body={"version": 1, "document": swapped})
    assert saved.code == 200, saved.body
    while (message := await again.receive())["type"] != "snapshot":
        pass
    card = message["cards"]["total"]
    assert card["card_id"] == other["id"]
    assert (await output(again))["result"] != big, "another card under the key: not its output"
    assert (await api.fetch("DELETE", f"/api/dashboards/{dashboard['id']}", token=owner)).code == 204
    while await asyncio.wait_for(again.connection.read_message(), 30) is not None:
        pass
    assert again.connection.close_code == 4404, "deleting a dashboard closes its sockets"


async def test_a_run_shows_on_every_tile_of_its_card(start_cards):
    """A tile's run shows on the other tiles of its card (same values), on its dashboard and on others, and so
    does a run through the card API; a dashboard without the card hears nothing."""
    api = await start_cards()
    owner = await api.login()
    card = (await api.fetch("POST", "/api/cards", token=owner,
                            json_body={"title": "乱数", "code": "import random\nprint(random.random())"})).json()
    other = (await api.fetch("POST", "/api/cards", token=owner, json_body={"title": "別", "code": "print(2)"})).json()
    assert (await api.fetch("POST", f"/api/cards/{card['id']}/run", token=owner, json_body={})).code == 200

    async def dashboard(*tiles: tuple[str, str]) -> str:
        spec = document(parameters=[], cards=[{"key": key, "card": card_id} for key, card_id in tiles],
                        layout=[{"card": key, "x": 0, "y": 4 * n, "w": 6, "h": 4} for n, (key, _) in enumerate(tiles)])
        created = await api.fetch("POST", "/api/dashboards", token=owner, json_body=spec)
        assert created.code == 201, created.body
        return created.json()["id"]

    both, one, none = (await dashboard(("a", card["id"]), ("b", card["id"])), await dashboard(("c", card["id"])),
                       await dashboard(("d", other["id"])))
    sockets = [await join(api, owner, both), await join(api, owner, one), await join(api, owner, none)]
    for socket, keys in zip(sockets, (("a", "b"), ("c",), ("d",)), strict=True):
        for key in keys:
            await output(socket, key)
    for path in (f"/api/dashboards/{both}/cards/a/run", f"/api/cards/{card['id']}/run"):
        ran = await api.fetch("POST", path, token=owner, json_body={"force": True})
        assert ran.code == 200, ran.body
        for socket, keys in zip(sockets, (("a", "b"), ("c",)), strict=False):
            for key in keys:
                assert (await output(socket, key))["result"]["outputs"] == ran.json()["outputs"], (path, key)
    sockets[2].send(type="resync")
    while (message := await sockets[2].receive())["type"] != "snapshot":
        assert message["type"] == "presence", message
    for socket in sockets:
        socket.close()


async def test_viewers_joining_a_room_at_once_read_each_cached_output_once(start_cards):
    """Many viewers opening a dashboard that nobody on the task watches read its cached outputs from the store
    once between them, not once each (1,000 viewers spread over four tasks read them thousands of times, and the
    store's slowness under that kept them from joining)."""
    api = await start_cards()
    owner = await api.login()
    cards = [(await api.fetch("POST", "/api/cards", token=owner,
                              json_body={"title": f"札 {n}", "code": f"print({n})"})).json()["id"] for n in range(2)]
    spec = document(parameters=[], cards=[{"key": f"k{n}", "card": card_id} for n, card_id in enumerate(cards)],
                    layout=[{"card": f"k{n}", "x": 0, "y": 4 * n, "w": 6, "h": 4} for n in range(2)])
    dashboard_id = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=spec)).json()["id"]
    first = await join(api, owner, dashboard_id)
    await outputs(first, "k0", "k1")  # run once: cached
    first.close()
    await until(lambda: not api.app.dashboard_hub.rooms, "the room to close")
    api.app.card_runs.memory.clear()  # as on a task that never read them
    store, reads = api.app.store_instance, []
    read = store.get_cached_result

    async def counted(key: str):
        reads.append(key)
        return await read(key)

    store.get_cached_result = counted

    async def viewer() -> None:
        socket = await join(api, owner, dashboard_id)
        await outputs(socket, "k0", "k1")
        socket.close()

    await asyncio.gather(*(viewer() for _ in range(6)))
    assert len(reads) == 2, reads
