"""Stored output rows follow current rights: who may page a card's table is whoever may view the card now.

Before, the user whose run stored a table could always page it: a viewer who ran the owner's card
kept paging the owner's data after the share was revoked. Now a saved card's tables are readable by
whoever may view the card (and admins) at the time of asking; an editor session's tables stay its
user's (they hold only what that user may read).
"""

from __future__ import annotations

from .sharing import card, revoke, share, shared_dashboard

ROWS = "load_dataset('payments')"


def table_of(response) -> str:
    assert response.code == 200, response.body
    (output_id,) = [o["output_id"] for o in response.json()["outputs"] if "output_id" in o]
    return output_id


async def test_a_revoked_viewer_pages_nothing(start_cards):
    api = await start_cards()
    scene = await shared_dashboard(api, card("rows", ROWS, ["payments"]))
    tile = f"/api/dashboards/{scene.dashboard_id}/cards/rows/run"
    mine = table_of(await api.fetch("POST", f"/api/cards/{scene.card_id}/run", token=scene.viewer, json_body={}))
    theirs = table_of(await api.fetch("POST", tile, token=scene.owner, json_body={}))
    assert mine == theirs, "the viewer's run stored the table; the owner's came from the cache"

    async def page(token: str) -> int:
        return (await api.fetch("GET", f"/api/outputs/{mine}/rows?limit=5", token=token)).code

    assert {role: await page(token) for role, token in scene.callers().items()} == {
        "owner": 200, "editor": 200, "viewer": 200, "revoked": 404}
    assert await page(scene.stranger) == 404
    await revoke(api, scene.owner, scene.dashboard_id, "viewer@example.com")
    await revoke(api, scene.owner, scene.dashboard_id, "editor@example.com")
    assert await page(scene.viewer) == 404, "the viewer ran the card, but may no longer view it"
    assert await page(scene.editor) == 404
    assert await page(scene.owner) == 200 and await page(await api.login()) == 200
    await share(api, scene.owner, scene.dashboard_id, "viewer@example.com", "view")
    assert await page(scene.viewer) == 200, "shared again, readable again"
