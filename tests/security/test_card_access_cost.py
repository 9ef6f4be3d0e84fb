"""Opening a card costs the same however many dashboards the caller has.

Before, the check of who may open a card that is not yours (``DashboardService.card_access``: GET it, run it, page
its output rows, open its socket) read the current document of every dashboard the caller owned and of every one
shared with them: a member with many 200 KB dashboards made each such request read and parse all of them. Now the
stores keep which dashboards hold each card (with every save), and the check reads only those.

The attack: a viewer of one shared card adds dashboards of their own, as large as a store takes; the bytes the
server reads from its store to answer ``GET /api/cards/{id}`` must not grow.
"""

from __future__ import annotations

import pytest

from tests.server.conftest import any_api, start_server  # noqa: F401 - fixtures
from tests.security.test_list_page_cost import PARAMETERS, reads_of

BIG = {"schemaVersion": 1, "title": "mine", "description": "d" * 5000, "cards": [], "layout": [],
       "parameters": PARAMETERS}


@pytest.mark.parametrize("store_kind", ["embedded", "aws"])
async def test_card_access_reads_do_not_grow_with_the_callers_dashboards(any_api):
    api = any_api
    owner = await api.add_user("owner@example.com")
    viewer = await api.add_user("viewer@example.com")
    card = (await api.fetch("POST", "/api/cards", token=owner, json_body={"title": "shared", "code": "1"})).json()
    shared = await api.fetch("POST", "/api/dashboards", token=owner, json_body={
        "schemaVersion": 1, "title": "shared", "cards": [{"key": "k", "card": card["id"]}],
        "layout": [{"card": "k", "x": 0, "y": 0, "w": 4, "h": 3}]})
    assert shared.code == 201, shared.body
    assert (await api.fetch("PUT", f"/api/dashboards/{shared.json()['id']}/shares", token=owner,
                            json_body={"email": "viewer@example.com", "permission": "view"})).code == 200
    other = await api.fetch("POST", "/api/dashboards", token=owner, json_body={**BIG, "title": "other"})
    assert (await api.fetch("PUT", f"/api/dashboards/{other.json()['id']}/shares", token=owner,
                            json_body={"email": "viewer@example.com", "permission": "view"})).code == 200
    read = reads_of(api)

    async def opening() -> int:
        read()
        response = await api.fetch("GET", f"/api/cards/{card['id']}", token=viewer)
        assert response.code == 200, response.body
        return read()

    await opening()  # the viewer's user and sign-in are kept from here on
    few = await opening()
    for n in range(3):
        assert (await api.fetch("POST", "/api/dashboards", token=viewer, json_body={**BIG, "title": f"{n}"})).code == 201
    many = await opening()
    assert many <= few + 2048, f"opening the card read {few} bytes with 0 dashboards of the viewer's, {many} with 3"
    assert few < 50_000, f"opening the card read {few} bytes: more than the dashboard that holds it"

    removed = await api.fetch("PUT", f"/api/dashboards/{shared.json()['id']}", token=owner, headers={"If-Match": '"1"'},
                              json_body={"schemaVersion": 1, "title": "shared", "cards": [], "layout": []})
    assert removed.code == 200, removed.body
    assert (await api.fetch("GET", f"/api/cards/{card['id']}", token=viewer)).code == 404, "off the dashboard, unshared"
