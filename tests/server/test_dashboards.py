"""Dashboard routes end to end: the format, versions, export and import, sharing and who may do what."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import dashboards_spec
from server.storage.sqlite import DB_FILE

from .test_datasets import JAPANESE_CSV, upload

EXAMPLES = Path(dashboards_spec.__file__).parent / "examples"


def document(**fields) -> dict:
    base = {"schemaVersion": 1, "title": "売上ダッシュボード",
            "parameters": [{"name": "factor", "type": "number", "default": 2}],
            "cards": [{"key": "total", "title": "合計", "datasets": ["売上"],
                       "parameters": [{"name": "factor", "type": "number", "default": 1}],
                       "code": "df = load_dataset('売上')\nprint(df['売上'].sum() * factor)"}],
            "layout": [{"card": "total", "x": 0, "y": 0, "w": 6, "h": 4}],
            "refresh": None}
    return {**base, **fields}


async def owner_with_dashboard(api, **fields) -> tuple[str, dict]:
    token = await api.login()
    assert (await upload(api, "売上", JAPANESE_CSV.encode("cp932"), token)).code == 201
    created = await api.fetch("POST", "/api/dashboards", token=token, json_body=document(**fields))
    assert created.code == 201, created.body
    return token, created.json()


def test_examples_validate():
    """Every example of the format passes its checks."""
    examples = sorted(EXAMPLES.glob("*.json"))
    assert examples
    for path in examples:
        dashboards_spec.check(json.loads(path.read_text()))


@pytest.mark.parametrize("change, pointer", [
    (lambda d: d.pop("title"), "/"),
    (lambda d: d.update(schemaVersion=7), "/schemaVersion"),
    (lambda d: d["layout"][0].update(x=8), "/layout/0/w"),
    (lambda d: d["layout"][0].update(card="nope"), "/layout/0/card"),
    (lambda d: d.update(layout=[]), "/layout"),
    (lambda d: d["cards"].append(dict(d["cards"][0])), "/cards/1/key"),
    (lambda d: d["cards"][0].update(datasets=["nowhere"]), "/cards/0/datasets/0"),
    (lambda d: d.update(refresh={"every_seconds": 5}), "/refresh/every_seconds"),
    (lambda d: d["parameters"].append({"name": "r", "type": "choice", "default": "x", "choices": ["y"]}),
     "/parameters/1/default"),
    (lambda d: d.update(colour="red"), "/"),
])
async def test_bad_documents_get_422_with_pointer(api, change, pointer):
    """Each kind of broken document is refused with 422, the pointer of the problem and a reason."""
    token, dashboard = await owner_with_dashboard(api)
    bad = document()
    change(bad)
    created = await api.fetch("POST", "/api/dashboards", token=token, json_body=bad)
    assert created.code == 422, created.body
    assert created.json()["error"]["details"]["pointer"] == pointer
    assert created.json()["error"]["message"].startswith(pointer)
    saved = await api.fetch("PUT", f"/api/dashboards/{dashboard['id']}", token=token,
                            json_body={"version": 1, "document": bad})
    assert saved.code == 422 and saved.json()["error"]["details"]["pointer"] == pointer
    assert len((await api.fetch("GET", "/api/dashboards", token=token)).json()["dashboards"]) == 1


async def test_versions_conflicts_and_restore(api):
    """Saves name their version (428 without, 409 when stale); past versions are kept and restorable."""
    token, dashboard = await owner_with_dashboard(api)
    path = f"/api/dashboards/{dashboard['id']}"
    card_id = dashboard["document"]["cards"][0]["card"]
    assert dashboard["document"]["cards"] == [{"key": "total", "card": card_id}], "inline cards are saved as cards"
    moved = copy.deepcopy(dashboard["document"])
    moved["layout"][0]["x"] = 6
    assert (await api.fetch("PUT", path, token=token, json_body=moved)).code == 428
    saved = await api.fetch("PUT", path, token=token, json_body=moved, headers={"If-Match": '"1"'})
    assert saved.code == 200 and saved.json()["version"] == 2 and saved.headers["ETag"] == '"2"'
    stale = await api.fetch("PUT", path, token=token, json_body={"version": 1, "document": moved})
    assert stale.code == 409 and stale.json()["error"]["details"]["current_version"] == 2
    renamed = await api.fetch("PUT", path, token=token, json_body={"version": 2, "document": {**moved, "uid": "x"}})
    assert renamed.code == 422 and renamed.json()["error"]["details"]["pointer"] == "/uid"
    versions = (await api.fetch("GET", f"{path}/versions", token=token)).json()["versions"]
    assert [v["version"] for v in versions] == [2, 1] and all("document" not in v for v in versions)
    documents = [(await api.fetch("GET", f"{path}/versions/{v['version']}", token=token)).json()["document"]
                 for v in versions]
    assert [document["layout"][0]["x"] for document in documents] == [6, 0]
    restored = await api.fetch("POST", f"{path}/versions/1/restore", token=token)
    assert restored.json()["version"] == 3 and restored.json()["document"]["layout"][0]["x"] == 0
    assert (await api.fetch("POST", f"{path}/versions/9/restore", token=token)).code == 404


async def test_export_and_import_by_uid(api):
    """Export inlines cards with dataset names (no ids); import updates by uid, saving changed cards
    as new versions of the same cards; an unknown uid creates a dashboard."""
    token, dashboard = await owner_with_dashboard(api)
    exported = await api.fetch("GET", f"/api/dashboards/{dashboard['id']}/export", token=token)
    spec = exported.json()
    assert exported.code == 200 and spec["uid"] == dashboard["uid"]
    assert spec["cards"][0]["datasets"] == ["売上"] and "card" not in spec["cards"][0]
    dashboards_spec.check(spec)
    assert dashboard["id"] not in exported.body.decode() and dashboard["owner_id"] not in exported.body.decode()

    spec["cards"][0]["code"] += "\nprint('更新')"
    updated = await api.fetch("POST", "/api/dashboards/import", token=token, json_body=spec)
    assert updated.code == 200 and updated.json()["id"] == dashboard["id"] and updated.json()["version"] == 2
    card_id = dashboard["document"]["cards"][0]["card"]
    assert updated.json()["document"]["cards"][0]["card"] == card_id
    card = (await api.fetch("GET", f"/api/cards/{card_id}", token=token)).json()
    assert card["version"] == 2 and card["code"].endswith("print('更新')")
    again = await api.fetch("POST", "/api/dashboards/import", token=token, json_body=spec)
    assert (await api.fetch("GET", f"/api/cards/{card_id}", token=token)).json()["version"] == 2, "unchanged"
    assert again.json()["version"] == 3

    created = await api.fetch("POST", "/api/dashboards/import", token=token, json_body={**spec, "uid": "copy-1"})
    assert created.code == 201 and created.json()["uid"] == "copy-1"
    taken = await api.fetch("POST", "/api/dashboards", token=token, json_body=spec)
    assert taken.code == 409
    other = await api.add_user("other@example.com")
    theirs = await api.fetch("POST", "/api/dashboards/import", token=other, json_body=spec)
    assert theirs.code == 409 and "another uid" in theirs.json()["error"]["message"]


async def test_a_stored_uid_that_no_header_can_carry_still_exports(api):
    """A uid stored before the schema's patterns were strict (red team 5: ``x\\n`` got through) exports under
    a plain file name instead of a 500."""
    token, dashboard = await owner_with_dashboard(api)
    with sqlite3.connect(Path(api.app.data_dir) / DB_FILE) as db:
        db.execute("UPDATE dashboards SET uid = ? WHERE id = ?", ("x\n", dashboard["id"]))
        db.execute("UPDATE dashboard_versions SET document = json_set(document, '$.uid', ?) WHERE dashboard_id = ?",
                   ("x\n", dashboard["id"]))
    exported = await api.fetch("GET", f"/api/dashboards/{dashboard['id']}/export", token=token)
    assert exported.code == 200, exported.body
    assert exported.headers["Content-Disposition"] == 'attachment; filename="dashboard.json"'


async def test_cards_by_reference_must_be_the_writers(api):
    """A dashboard may name a saved card of the writer's; someone else's card is not there for them."""
    token, dashboard = await owner_with_dashboard(api)
    card_id = dashboard["document"]["cards"][0]["card"]
    other = await api.add_user("other@example.com")
    stolen = document(cards=[{"key": "total", "card": card_id}])
    refused = await api.fetch("POST", "/api/dashboards", token=other, json_body=stolen)
    assert refused.code == 404 and refused.json()["error"]["details"]["pointer"] == "/cards/0/card"
    mine = await api.fetch("POST", "/api/dashboards", token=token, json_body={**stolen, "uid": "second"})
    assert mine.code == 201 and mine.json()["document"]["cards"][0]["card"] == card_id


async def test_who_may_do_what(api):
    """A stranger, a viewer, an editor and the owner try every route of the dashboard, its card and
    its dataset: what you may not see is a 404, what you may see but not change a 403."""
    owner, dashboard = await owner_with_dashboard(api)
    dashboard_id, card_id = dashboard["id"], dashboard["document"]["cards"][0]["card"]
    dataset_id = (await api.fetch("GET", "/api/datasets", token=owner)).json()["datasets"][0]["id"]
    tokens = {"owner": owner}
    for name in ("stranger", "viewer", "editor"):
        tokens[name] = await api.add_user(f"{name}@example.com")
    await api.add_user("colleague@example.com")
    with capture_logs() as logs:
        for name in ("viewer", "editor"):
            shared = await api.fetch("PUT", f"/api/dashboards/{dashboard_id}/shares", token=owner,
                                     json_body={"email": f"{name}@example.com",
                                                "permission": "view" if name == "viewer" else "edit"})
            assert shared.code == 200, shared.body
    events = [e for e in logs if e["event"] == "dashboard_shared"]
    assert [(e["dashboard_id"], e["permission"]) for e in events] == [(dashboard_id, "view"), (dashboard_id, "edit")]
    assert all(e["audit"] and e["shared_with"] for e in events)

    d = f"/api/dashboards/{dashboard_id}"
    doc = dashboard["document"]
    card_body = {"title": "合計", "code": "print(1)", "datasets": [dataset_id], "parameters": []}
    routes = [  # method, path, body, expected for stranger, viewer, editor, owner
        ("GET", d, None, (404, 200, 200, 200)),
        ("GET", f"{d}/versions", None, (404, 200, 200, 200)),
        ("GET", f"{d}/versions/1", None, (404, 200, 200, 200)),
        ("GET", f"{d}/export", None, (404, 200, 200, 200)),
        ("GET", f"{d}/shares", None, (404, 200, 200, 200)),
        ("PUT", d, {"version": 1, "document": doc}, (404, 403, 200, 409)),
        ("POST", f"{d}/versions/1/restore", None, (404, 403, 200, 200)),
        ("PUT", f"{d}/shares", {"email": "colleague@example.com", "permission": "view"}, (404, 403, 403, 200)),
        ("DELETE", f"{d}/shares", {"email": "colleague@example.com"}, (404, 403, 403, 204)),
        ("GET", f"/api/cards/{card_id}", None, (404, 200, 200, 200)),
        ("GET", f"/api/cards/{card_id}/versions", None, (404, 200, 200, 200)),
        ("PUT", f"/api/cards/{card_id}", {**card_body, "version": 1}, (404, 403, 200, 409)),
        ("DELETE", f"/api/cards/{card_id}", None, (404, 403, 403, None)),
        ("GET", f"/api/datasets/{dataset_id}", None, (404, 404, 404, 200)),
        ("GET", f"/api/datasets/{dataset_id}/preview", None, (404, 404, 404, 200)),
        ("DELETE", d, None, (404, 403, 403, 204)),
    ]
    for method, path, body, expected in routes:
        for name, status in zip(("stranger", "viewer", "editor", "owner"), expected):
            if status is None:
                continue
            response = await api.fetch(method, path, token=tokens[name], json_body=body)
            assert response.code == status, (method, path, name, response.body)
            if status >= 400:
                assert response.json()["error"]["message"], "every refusal says why"
    assert (await api.fetch("GET", d, token=owner)).code == 404


async def test_lists_and_revocation(api):
    """The list shows mine and shared with me, with my access; revoking removes the dashboard and its
    card at once; sharing with an unknown email says so."""
    owner, dashboard = await owner_with_dashboard(api)
    viewer = await api.add_user("viewer@example.com")
    d = f"/api/dashboards/{dashboard['id']}/shares"
    unknown = await api.fetch("PUT", d, token=owner, json_body={"email": "nobody@example.com", "permission": "view"})
    assert unknown.code == 422 and "nobody@example.com" in unknown.json()["error"]["message"]
    bad = await api.fetch("PUT", d, token=owner, json_body={"email": "viewer@example.com", "permission": "admin"})
    assert bad.code == 400
    await api.fetch("PUT", d, token=owner, json_body={"email": "Viewer@Example.com ", "permission": "view"})
    listed = (await api.fetch("GET", "/api/dashboards", token=viewer)).json()["dashboards"]
    assert [(x["id"], x["access"]) for x in listed] == [(dashboard["id"], "view")]
    shares = (await api.fetch("GET", d, token=owner)).json()["shares"]
    assert [(s["email"], s["permission"]) for s in shares] == [("viewer@example.com", "view")]
    card_id = dashboard["document"]["cards"][0]["card"]
    seen = await api.fetch("GET", f"/api/cards/{card_id}", token=viewer)
    assert seen.code == 200 and seen.json()["access"] == "view", "the editor opens it read-only"
    assert (await api.fetch("DELETE", d, token=owner, json_body={"email": "viewer@example.com"})).code == 204
    assert (await api.fetch("DELETE", d, token=owner, json_body={"email": "viewer@example.com"})).code == 404
    assert (await api.fetch("GET", "/api/dashboards", token=viewer)).json()["dashboards"] == []
    assert (await api.fetch("GET", f"/api/cards/{card_id}", token=viewer)).code == 404


async def test_an_editors_card_is_the_owners_to_run(api):
    """A card an editor puts on a dashboard can be read, run and changed by the dashboard's owner,
    as scheduled refreshes and new data re-run it in the owner's name."""
    await api.login()
    owner = await api.add_user("owner@example.com")
    dashboard = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=document(
        parameters=[], cards=[{"key": "total", "title": "合計", "code": "print(1)"}]))).json()
    editor = await api.add_user("editor@example.com")
    await api.fetch("PUT", f"/api/dashboards/{dashboard['id']}/shares", token=owner,
                    json_body={"email": "editor@example.com", "permission": "edit"})
    added = {**dashboard["document"], "cards": [*dashboard["document"]["cards"], {"key": "mine", "title": "編集者", "code": "1"}],
             "layout": [*dashboard["document"]["layout"], {"card": "mine", "x": 6, "y": 0, "w": 6, "h": 4}]}
    saved = await api.fetch("PUT", f"/api/dashboards/{dashboard['id']}", token=editor,
                            json_body={"version": 1, "document": added})
    assert saved.code == 200, saved.body
    card_id = saved.json()["document"]["cards"][1]["card"]
    card = await api.fetch("GET", f"/api/cards/{card_id}", token=owner)
    assert card.code == 200 and card.json()["owner_id"] != dashboard["owner_id"]
    stranger = await api.add_user("stranger@example.com")
    assert (await api.fetch("GET", f"/api/cards/{card_id}", token=stranger)).code == 404



async def test_duplicate_is_the_callers_with_new_cards(api):
    """Duplicating gives the caller a dashboard of their own (a new uid, no shares) whose cards are new
    cards of theirs with the same code; the original is untouched. A viewer may duplicate, unless a card
    reads a dataset they may not read (its copy could never run); a stranger sees no dashboard."""
    await api.login()
    owner = await api.add_user("owner@example.com")
    viewer = await api.add_user("viewer@example.com")
    stranger = await api.add_user("stranger@example.com")
    me = {name: (await api.fetch("GET", "/api/me", token=token)).json()["id"]
          for name, token in (("owner", owner), ("viewer", viewer))}
    source = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=document(
        cards=[{"key": "total", "title": "合計", "code": "print(1)", "parameters": [
            {"name": "factor", "type": "number", "default": 1, "label": "倍率"}]}]))).json()
    d = f"/api/dashboards/{source['id']}"
    await api.fetch("PUT", f"{d}/shares", token=owner, json_body={"email": "viewer@example.com", "permission": "view"})

    assert (await api.fetch("POST", f"{d}/duplicate", token=stranger, json_body={})).code == 404
    assert (await api.fetch("POST", f"{d}/duplicate", token=viewer, json_body={"title": ""})).code == 400
    with capture_logs() as logs:
        copied = await api.fetch("POST", f"{d}/duplicate", token=viewer, json_body={"title": "売上ダッシュボードのコピー"})
    assert copied.code == 201, copied.body
    copy_ = copied.json()
    assert copy_["owner_id"] == me["viewer"] and copy_["access"] == "owner" and copy_["version"] == 1
    assert copy_["uid"] != source["uid"] and copy_["document"]["title"] == "売上ダッシュボードのコピー"
    assert copy_["document"]["layout"] == source["document"]["layout"]
    assert copy_["document"]["parameters"] == source["document"]["parameters"]
    [entry] = copy_["document"]["cards"]
    original_card = source["document"]["cards"][0]["card"]
    assert entry["key"] == "total" and entry["card"] != original_card
    card = (await api.fetch("GET", f"/api/cards/{entry['card']}", token=viewer)).json()
    assert (card["owner_id"], card["updated_by"], card["version"]) == (me["viewer"], me["viewer"], 1)
    assert (card["title"], card["code"], card["parameters"][0]["label"]) == ("合計", "print(1)", "倍率")
    assert [e["source_id"] for e in logs if e["event"] == "dashboard_duplicated"] == [source["id"]]
    assert (await api.fetch("GET", f"/api/dashboards/{copy_['id']}/shares", token=viewer)).json()["shares"] == []
    unchanged = (await api.fetch("GET", d, token=owner)).json()
    assert unchanged["version"] == 1 and unchanged["document"]["cards"][0]["card"] == original_card
    assert (await api.fetch("GET", f"/api/cards/{original_card}", token=owner)).json()["version"] == 1
    untitled = await api.fetch("POST", f"{d}/duplicate", token=owner, json_body={})
    assert untitled.code == 201 and untitled.json()["document"]["title"] == source["document"]["title"]

    # The owner's dataset: the viewer may not read it, so a copy of its card could not run.
    assert (await upload(api, "売上", JAPANESE_CSV.encode("cp932"), owner)).code == 201
    reading = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=document(uid="reads"))).json()
    await api.fetch("PUT", f"/api/dashboards/{reading['id']}/shares", token=owner,
                    json_body={"email": "viewer@example.com", "permission": "view"})
    before = (await api.fetch("GET", "/api/cards", token=viewer)).json()["cards"]
    refused = await api.fetch("POST", f"/api/dashboards/{reading['id']}/duplicate", token=viewer, json_body={})
    assert refused.code == 403 and refused.json()["error"]["code"] == "duplicate_unreadable"
    assert refused.json()["error"]["details"]["datasets"] == ["売上"]
    assert (await api.fetch("GET", "/api/cards", token=viewer)).json()["cards"] == before, "no card left behind"
    mine = await api.fetch("POST", f"/api/dashboards/{reading['id']}/duplicate", token=owner, json_body={})
    assert mine.code == 201 and mine.json()["document"]["cards"][0]["card"] != reading["document"]["cards"][0]["card"]
