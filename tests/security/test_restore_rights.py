"""An editor's restore keeps only the cards on the dashboard now: restoring never brings back what the
owner took off it.

Before, an editor restored a version from before the dashboard was shared with them, got back a card
the owner had removed (one printing the whole private dataset, with the owner's rights), and ran it.
Now an editor's restore keeps the cards of the old version that are on the current one (with their
layout cells); owners and admins restore anything; viewers cannot restore.
"""

from __future__ import annotations

from .sharing import LEAK, SECRET, TOTAL, TOTAL_OUTPUT, card, shared_dashboard


async def test_an_editors_restore_keeps_only_current_cards(start_cards):
    api = await start_cards()
    scene = await shared_dashboard(api, card("pay", TOTAL, ["payments"]), card("rows", LEAK, ["payments"]))
    path = f"/api/dashboards/{scene.dashboard_id}"
    first = (await api.fetch("GET", path, token=scene.owner)).json()
    document = {**first["document"], "cards": first["document"]["cards"][:1], "layout": first["document"]["layout"][:1]}
    removed = await api.fetch("PUT", path, token=scene.owner, json_body={"version": 1, "document": document})
    assert removed.code == 200, removed.body

    restored = await api.fetch("POST", f"{path}/versions/1/restore", token=scene.editor)
    assert restored.code == 200, restored.body
    ran = await api.fetch("POST", f"{path}/cards/rows/run", token=scene.editor, json_body={})
    assert ran.code == 404 and SECRET.encode() not in ran.body, ran.body
    assert [c["key"] for c in restored.json()["document"]["cards"]] == ["pay"], "the removed card stays removed"
    assert [cell["card"] for cell in restored.json()["document"]["layout"]] == ["pay"]
    ran = await api.fetch("POST", f"{path}/cards/pay/run", token=scene.viewer, json_body={})
    assert ran.code == 200 and ran.json()["outputs"][0]["text"] == TOTAL_OUTPUT, ran.body

    assert (await api.fetch("POST", f"{path}/versions/1/restore", token=scene.viewer)).code == 403
    assert (await api.fetch("POST", f"{path}/versions/1/restore", token=scene.revoked)).code == 404
    assert (await api.fetch("POST", f"{path}/versions/1/restore", token=scene.stranger)).code == 404

    restored = await api.fetch("POST", f"{path}/versions/1/restore", token=scene.owner)
    assert [c["key"] for c in restored.json()["document"]["cards"]] == ["pay", "rows"], "an owner restores anything"
    admin = await api.login()
    restored = await api.fetch("POST", f"{path}/versions/2/restore", token=admin)
    assert [c["key"] for c in restored.json()["document"]["cards"]] == ["pay"]
    restored = await api.fetch("POST", f"{path}/versions/1/restore", token=admin)
    assert [c["key"] for c in restored.json()["document"]["cards"]] == ["pay", "rows"], "so does an admin"
