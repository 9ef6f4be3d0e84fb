"""A cached result is served only to a run that would read the same data with the same rights.

Before, the cache key was the code, the dataset versions, the parameter values and the kernel image:
whoever ran identical code got the first runner's output, whoever's rights had made it (a stranger
with the owner's code got the owner's output; a version an editor saved with the owner's code was
answered with the owner's result). Now the key names the version's author too, and a run checks
its author's rights before it looks in the cache.
"""

from __future__ import annotations

from .sharing import SECRET, TOTAL, TOTAL_OUTPUT, card, printed, shared_dashboard

PLAIN = "print('the owner ran this')"


async def test_cache_hits_need_the_same_author(start_cards):
    api = await start_cards()
    scene = await shared_dashboard(api, card("pay", TOTAL, ["payments"]), card("plain", PLAIN, []))
    run = f"/api/cards/{scene.card_id}/run"
    first = await api.fetch("POST", run, token=scene.owner, json_body={})
    assert first.code == 200 and printed(first.json()) == TOTAL_OUTPUT and not first.json()["cached"]
    again = await api.fetch("POST", run, token=scene.viewer, json_body={})
    assert again.json()["cached"] is True, "everyone who runs the owner's version shares its results"

    saved = await api.fetch("PUT", f"/api/cards/{scene.card_id}", token=scene.editor, json_body={
        "version": 1, "title": "pay", "code": TOTAL, "datasets": [scene.dataset_id], "parameters": []})
    assert saved.code == 200, saved.body
    for token in (scene.editor, scene.viewer, scene.owner):
        ran = await api.fetch("POST", run, token=token, json_body={})
        assert ran.code == 403 and ran.error_code == "dataset_not_readable", ran.body
        assert b"9999" not in ran.body and SECRET.encode() not in ran.body

    dashboard = (await api.fetch("GET", f"/api/dashboards/{scene.dashboard_id}", token=scene.owner)).json()
    plain = dashboard["document"]["cards"][1]["card"]
    owners = await api.fetch("POST", f"/api/cards/{plain}/run", token=scene.owner, json_body={})
    assert owners.code == 200 and not owners.json()["cached"]
    strangers = await api.fetch("POST", "/api/cards", token=scene.stranger,
                                json_body={"title": "mine", "code": PLAIN, "datasets": []})
    ran = await api.fetch("POST", f"/api/cards/{strangers.json()['id']}/run", token=scene.stranger, json_body={})
    assert ran.code == 200 and ran.json()["cached"] is False, "identical code of another author runs afresh"
