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


async def test_an_owners_restore_does_not_take_back_a_card_its_owner_took_off(api):
    """An editor puts their own card on the owner's dashboard and takes it off again; the dashboard's
    owner restores the version that held it. The card stays off (the answer names it as left out), so
    the owner can neither see, run nor save it; the editor's own restore brings their card back."""
    owner, editor = await api.add_user("owner@example.com"), await api.add_user("editor@example.com")
    card = await api.fetch("POST", "/api/cards", token=editor, json_body={"title": "pay", "code": "print(1)"})
    created = await api.fetch("POST", "/api/dashboards", token=owner,
                              json_body={"schemaVersion": 1, "title": "M", "cards": [], "layout": []})
    assert card.code == created.code == 201
    card_id, dashboard = card.json()["id"], created.json()
    path, uid = f"/api/dashboards/{dashboard['id']}", dashboard["document"]["uid"]
    shared = await api.fetch("PUT", f"{path}/shares", token=owner, json_body={"email": "editor@example.com",
                                                                              "permission": "edit"})
    assert shared.code == 200
    with_card = {"schemaVersion": 1, "uid": uid, "title": "M", "cards": [{"key": "k", "card": card_id}],
                 "layout": [{"card": "k", "x": 0, "y": 0, "w": 4, "h": 3}]}
    for version, document in ((1, with_card), (2, {**with_card, "cards": [], "layout": []})):
        saved = await api.fetch("PUT", path, token=editor, json_body={"version": version, "document": document})
        assert saved.code == 200, saved.body
    assert (await api.fetch("GET", f"/api/cards/{card_id}", token=owner)).code == 404

    restored = await api.fetch("POST", f"{path}/versions/2/restore", token=owner)
    assert restored.code == 200, restored.body
    assert restored.json()["document"]["cards"] == [] and restored.json()["document"]["layout"] == []
    assert restored.json()["left_out"] == [{"key": "k", "card": card_id}]
    assert (await api.fetch("GET", f"/api/cards/{card_id}", token=owner)).code == 404
    assert (await api.fetch("POST", f"/api/cards/{card_id}/run", token=owner, json_body={})).code == 404
    hijack = await api.fetch("PUT", f"/api/cards/{card_id}", token=owner, json_body={
        "title": "mine now", "code": "print('hijacked')", "datasets": [], "parameters": [], "version": 1})
    assert hijack.code == 404

    restored = await api.fetch("POST", f"{path}/versions/2/restore", token=editor)
    assert [c["card"] for c in restored.json()["document"]["cards"]] == [card_id], "the card's owner may"
    assert restored.json()["left_out"] == []
