"""Each card version runs with the dataset rights of its author: sharing a card never shares the data
its owner can read with whoever edits it.

Before, an editor of a shared dashboard saved ``print(load_dataset('payments').to_csv())`` into the
owner's card (the card kept reading the owner's dataset), or opened the card's editing socket, and
read the owner's whole private dataset; the dashboard then showed it to every viewer. Now a version
saved by the editor runs with the editor's rights wherever it runs (the card route, the dashboard
route, the viewers' tiles, the schedule, new data): it fails with ``dataset_not_readable``. The
editing socket loads only what the person editing may read; the share dialog's API tells an
editor which of the dashboard's datasets they cannot read.
"""

from __future__ import annotations

import json
import time

import pytest
from tornado import httpclient

from tests.server.test_card_socket import Socket, connect

from .sharing import LEAK, PAYMENTS, SECRET, TOTAL, TOTAL_OUTPUT, Scene, printed, shared_dashboard

DENIED = "dataset_not_readable"


async def user_id(api, token: str) -> str:
    return (await api.fetch("GET", "/api/me", token=token)).json()["id"]


async def tile(socket: Socket, showing: str | None = None) -> dict:
    """The next output of the tile on a dashboard socket (that shows ``showing``, if given)."""
    while True:
        message = await socket.receive()
        if message["type"] == "output" and (showing is None or showing in json.dumps(message["result"])):
            return message["result"]


async def runs(api, scene: Scene) -> dict[str, list]:
    """Every caller's run of the card through the card route and the dashboard route."""
    answers = {}
    for role, token in scene.callers().items():
        answers[role] = [
            await api.fetch("POST", f"/api/cards/{scene.card_id}/run", token=token, json_body={}),
            await api.fetch("POST", f"/api/dashboards/{scene.dashboard_id}/cards/pay/run", token=token, json_body={})]
    return answers


def assert_runs(answers: dict[str, list], expected: str) -> None:
    """Revoked callers get 404; the others the total (``expected="ok"``) or 403 dataset_not_readable."""
    for role, responses in answers.items():
        for response in responses:
            assert SECRET.encode() not in response.body, (role, response.body)
            if role == "revoked":
                assert response.code == 404, (role, response.body)
            elif expected == "ok":
                assert response.code == 200 and printed(response.json()) == TOTAL_OUTPUT, (role, response.body)
            else:
                assert response.code == 403 and response.error_code == DENIED, (role, response.body)


async def socket_refused(api, token: str, path: str) -> int:
    with pytest.raises(httpclient.HTTPClientError) as refused:
        await connect(api, token, path=path)
    return refused.value.code


async def socket_run(api, token: str, code: str, path: str, query: str = "") -> str:
    socket = await connect(api, token, query, path=path)
    socket.send(type="execute", run_id="r", code=code)
    messages = await socket.until("done")
    socket.close()
    return json.dumps(messages, ensure_ascii=False)


async def test_each_card_version_runs_with_its_authors_rights(start_cards):
    api = await start_cards()
    scene = await shared_dashboard(api, refresh={"every_seconds": 60})
    card_path = f"/api/cards/{scene.card_id}"

    # the owner's version: everyone it is shared with sees its output, made with the owner's rights
    assert_runs(await runs(api, scene), "ok")
    watching = await connect(api, scene.viewer, path=f"/api/dashboards/{scene.dashboard_id}/ws")
    shown = [await watching.receive()]
    shown.append(await tile(watching))  # the tile's output follows the snapshot, as the client reads

    # an editor saves code that prints the whole dataset: the version is the editor's
    saved = await api.fetch("PUT", card_path, token=scene.editor, json_body={
        "version": 1, "title": "pay", "code": LEAK, "datasets": [scene.dataset_id], "parameters": []})
    assert saved.code == 200, saved.body
    assert saved.json()["updated_by"] == await user_id(api, scene.editor)
    shown.append(await tile(watching))
    assert SECRET not in json.dumps(shown[-1]), "the save re-ran the card for the viewers with the owner's rights"
    assert shown[-1]["outputs"][0]["ename"] == DENIED
    assert_runs(await runs(api, scene), DENIED)

    # the schedule (past the cache) and new data re-run it as the dashboard's owner: still the editor's rights
    hub = api.app.dashboard_hub
    assert await hub.refresh_due(time.time() + 61) == [scene.dashboard_id]
    shown.append(await tile(watching, DENIED))
    newer = await api.fetch("POST", f"/api/datasets/{scene.dataset_id}/versions", token=scene.owner,
                            body=(PAYMENTS + "6011000000000004,1\n").encode(), headers={"Content-Type": "text/csv"})
    assert newer.code in (200, 201), newer.body
    shown.append(await tile(watching, DENIED))

    # the editing socket loads what the person editing may read, whoever wrote the version
    editing = await socket_run(api, scene.editor, LEAK, f"{card_path}/ws")
    assert SECRET not in editing and '"unreadable_datasets": ["payments"]' in editing
    assert SECRET in await socket_run(api, scene.owner, LEAK, f"{card_path}/ws")
    assert await socket_refused(api, scene.viewer, f"{card_path}/ws") == 403
    assert await socket_refused(api, scene.revoked, f"{card_path}/ws") == 404
    assert await socket_refused(api, scene.editor, f"/api/cards/scratch/ws?datasets={scene.dataset_id}") == 404
    opened = await api.fetch("POST", "/api/card-sessions", token=scene.editor, json_body={"datasets": [scene.dataset_id]})
    assert opened.code == 404

    # the share dialog tells the editor which datasets of the dashboard's cards they cannot read
    listed = await api.fetch("GET", f"/api/dashboards/{scene.dashboard_id}/shares", token=scene.editor)
    assert listed.json()["unreadable_datasets"] == [{"id": scene.dataset_id, "name": "payments", "cards": ["pay"]}]
    listed = await api.fetch("GET", f"/api/dashboards/{scene.dashboard_id}/shares", token=scene.owner)
    assert listed.json()["unreadable_datasets"] == []

    # an import writes a version of the importer's: naming the dataset or not, it cannot read it
    exported = (await api.fetch("GET", f"/api/dashboards/{scene.dashboard_id}/export", token=scene.editor)).json()
    assert exported["cards"][0]["datasets"] == ["payments"]
    imported = await api.fetch("POST", "/api/dashboards/import", token=scene.editor, json_body=exported)
    assert imported.code == 422, "the editor cannot name a dataset they cannot read"
    exported["cards"][0].update(code=LEAK + "\n# imported", datasets=[])
    imported = await api.fetch("POST", "/api/dashboards/import", token=scene.editor, json_body=exported)
    assert imported.code == 200, imported.body
    shown.append(await tile(watching, "no dataset named 'payments'"))
    assert (await api.fetch("GET", card_path, token=scene.viewer)).json()["updated_by"] == await user_id(api, scene.editor)

    # the owner saves the card again: their version runs with their rights, for everyone
    current = (await api.fetch("GET", card_path, token=scene.owner)).json()["version"]
    saved = await api.fetch("PUT", card_path, token=scene.owner, json_body={
        "version": current, "title": "pay", "code": TOTAL, "datasets": [scene.dataset_id], "parameters": []})
    assert saved.code == 200, saved.body
    shown.append(await tile(watching, "total 10000"))

    # a restore by the editor writes a dashboard version of theirs; the card keeps its author
    restored = await api.fetch("POST", f"/api/dashboards/{scene.dashboard_id}/versions/1/restore", token=scene.editor)
    assert restored.code == 200, restored.body
    ran = await api.fetch("POST", f"/api/dashboards/{scene.dashboard_id}/cards/pay/run", token=scene.viewer, json_body={})
    assert ran.code == 200 and printed(ran.json()) == "total 10000\n"
    watching.close()
    assert all(SECRET not in json.dumps(message) for message in watching.seen), "a viewer never saw the dataset"


async def test_every_path_for_every_caller(start_cards):
    """The paths the test above walks for the editor, for the owner, the viewer and the revoked viewer too:
    card PUT, scratch socket, the schedule's and new data's forced re-runs of the owner's version, import
    and restore. Only the owner's rights ever read the dataset, and only through the owner's version."""
    api = await start_cards()
    scene = await shared_dashboard(api, refresh={"every_seconds": 60})
    card_path, dashboard_path = f"/api/cards/{scene.card_id}", f"/api/dashboards/{scene.dashboard_id}"
    leak = {"version": 1, "title": "pay", "code": LEAK, "datasets": [scene.dataset_id], "parameters": []}

    # card PUT: a viewer may not save, a revoked viewer does not see the card
    for token, status in ((scene.viewer, 403), (scene.revoked, 404), (scene.stranger, 404)):
        saved = await api.fetch("PUT", card_path, token=token, json_body=leak)
        assert saved.code == status and SECRET.encode() not in saved.body, saved.body

    # scratch socket: the owner reads their dataset; nobody else may name it
    scratch = f"/api/cards/scratch/ws?datasets={scene.dataset_id}"
    assert SECRET in await socket_run(api, scene.owner, LEAK, scratch)
    for token in (scene.viewer, scene.revoked, scene.stranger):
        assert await socket_refused(api, token, scratch) == 404

    # the schedule and new data re-run the owner's version past the cache, with the owner's rights;
    # the viewer's tile shows its total, never the rows; the revoked viewer cannot watch
    watching = await connect(api, scene.viewer, path=f"{dashboard_path}/ws")
    await tile(watching, "total 9999")
    assert await socket_refused(api, scene.revoked, f"{dashboard_path}/ws") == 404
    assert await api.app.dashboard_hub.refresh_due(time.time() + 61) == [scene.dashboard_id]
    assert "total 9999" in printed(await tile(watching))
    newer = await api.fetch("POST", f"/api/datasets/{scene.dataset_id}/versions", token=scene.owner,
                            body=(PAYMENTS + "6011000000000004,1\n").encode(), headers={"Content-Type": "text/csv"})
    assert newer.code in (200, 201), newer.body
    await tile(watching, "total 10000")

    # import: the owner's import writes the owner's version; a viewer may not update the dashboard, nor
    # name the dataset in a dashboard of their own; the revoked viewer cannot reach it by its uid
    exported = (await api.fetch("GET", f"{dashboard_path}/export", token=scene.owner)).json()
    exported["cards"][0]["code"] = TOTAL + "\n# imported by the owner"
    imported = await api.fetch("POST", "/api/dashboards/import", token=scene.owner, json_body=exported)
    assert imported.code == 200, imported.body
    await tile(watching, "total 10000")
    owner_id = await user_id(api, scene.owner)
    assert (await api.fetch("GET", card_path, token=scene.viewer)).json()["updated_by"] == owner_id
    exported["cards"][0]["code"] = LEAK
    assert (await api.fetch("POST", "/api/dashboards/import", token=scene.viewer, json_body=exported)).code == 403
    assert (await api.fetch("POST", "/api/dashboards/import", token=scene.revoked, json_body=exported)).code == 409
    mine = {key: value for key, value in exported.items() if key != "uid"}
    for token in (scene.viewer, scene.revoked):
        assert (await api.fetch("POST", "/api/dashboards/import", token=token, json_body=mine)).code == 422

    # restore: the owner's works; a viewer may not; the revoked viewer does not see the dashboard
    assert (await api.fetch("POST", f"{dashboard_path}/versions/1/restore", token=scene.owner)).code == 200
    assert (await api.fetch("POST", f"{dashboard_path}/versions/1/restore", token=scene.viewer)).code == 403
    assert (await api.fetch("POST", f"{dashboard_path}/versions/1/restore", token=scene.revoked)).code == 404
    ran = await api.fetch("POST", f"{dashboard_path}/cards/pay/run", token=scene.viewer, json_body={})
    assert ran.code == 200 and printed(ran.json()) == "total 10000\n", ran.body
    watching.close()
    assert all(SECRET not in json.dumps(message) for message in watching.seen), "a viewer never saw the dataset"
