"""A dashboard socket costs the server at most its pending budget, however big the dashboard's tiles:
a snapshot (on join and on ``resync``) never builds every tile's output into one message for a
client that is not reading. Attack: one card printing just under the output cap on every tile of
a dashboard (the result cache makes it one run), joined by sockets that never read and ask again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server import limits
from tests.server.test_card_socket import connect

from .raw_sockets import MB, peak_since, reset_peak, send_text, stalled_socket

TILES = 50
PRINTED = 4_900_000  # under the 5 MB output cap
SOCKETS = 3


async def test_stalled_dashboard_sockets_cost_at_most_their_budget(start_cards):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs /proc/self/clear_refs to measure peak memory")
    assert PRINTED < limits.OUTPUT_BYTES
    api = await start_cards()
    token = await api.login()
    card = await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "big", "code": f"print('x' * {PRINTED})", "datasets": [], "parameters": []})
    assert card.code == 201, card.body
    keys = [f"t{n}" for n in range(TILES)]
    created = await api.fetch("POST", "/api/dashboards", token=token, json_body={
        "schemaVersion": 1, "title": "big tiles", "refresh": None,
        "cards": [{"key": key, "card": card.json()["id"]} for key in keys],
        "layout": [{"card": key, "x": 0, "y": n, "w": 6, "h": 4} for n, key in enumerate(keys)]})
    assert created.code == 201, created.body
    dashboard_id = created.json()["id"]
    ran = await api.fetch("POST", f"/api/dashboards/{dashboard_id}/cards/t0/run", token=token, json_body={})
    assert ran.code == 200 and len(ran.body) > PRINTED

    baseline = reset_peak()
    sockets = [await stalled_socket(api, token, f"/api/dashboards/{dashboard_id}/ws") for _ in range(SOCKETS)]
    room = api.app.dashboard_hub.rooms[dashboard_id]
    for _ in range(600):
        if len(room.viewers) == SOCKETS:
            break
        await asyncio.sleep(0.05)
    for sock in sockets:
        await send_text(sock, '{"type": "resync"}')
    await asyncio.sleep(2)
    grown = peak_since(baseline)
    for sock in sockets:
        sock.close()
    assert grown < 100 * MB, f"{SOCKETS} stalled sockets grew the server by {grown // MB} MB"

    reader = await connect(api, token, path=f"/api/dashboards/{dashboard_id}/ws")
    snapshot = await reader.receive()
    assert snapshot["type"] == "snapshot" and {card["result"] for card in snapshot["cards"].values()} == {None}
    shown = {}
    while len(shown) < TILES:
        message = await reader.receive()
        if message["type"] == "output":
            shown[message["card"]] = message
    assert all(m["seq"] == snapshot["cards"][key]["seq"] + 1 for key, m in shown.items()), "each output follows"
    assert {sum(len(o["text"]) for o in m["result"]["outputs"]) for m in shown.values()} == {PRINTED + 1}
    reader.close()
