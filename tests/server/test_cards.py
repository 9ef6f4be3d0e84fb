"""Card routes end to end: versions, conflicts, visibility, validation, audit; and the access seam."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from structlog.testing import capture_logs

from server.errors import NotFoundError, PermissionDeniedError
from server.paging import ListQuery
from server.services.cards import CardService
from server.services.datasets import DatasetService
from server.urls import url_specs
from tests.server.storage.test_contract import make_user

CARD = {
    "title": "売上の推移（月次）",
    "code": "df = load_dataset('売上')\nprint('合計:', df['売上'].sum())  # 円\n",
    "datasets": [],
    "parameters": [
        {"name": "region", "type": "choice", "default": "東京", "choices": ["東京", "大阪"], "label": "地域"},
        {"name": "rate", "type": "number", "default": 0.08},
        {"name": "since", "type": "date", "default": "2024-04-01"},
        {"name": "note", "type": "text", "default": "前年比"},
    ],
}
EDIT = {**CARD, "title": "売上の推移（週次）", "code": "print('週次')\n"}


async def create(api, token: str, **fields):
    return await api.fetch("POST", "/api/cards", token=token, json_body={**CARD, **fields})


async def save(api, token: str, card_id: str, if_match: int | None, **fields):
    headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
    return await api.fetch("PUT", f"/api/cards/{card_id}", token=token, headers=headers,
                           json_body={**EDIT, **fields})


async def upload(api, token: str, name: str) -> str:
    response = await api.fetch("POST", f"/api/datasets?name={name}", body=b"a\n1\n", token=token,
                               headers={"Content-Type": "text/csv"})
    assert response.code == 201, response.body
    return response.json()["id"]


class TestCrud:
    async def test_create_and_read_back(self, any_api):
        """A new card is version 1 at its Location, with an ETag; Japanese title and code round-trip."""
        token = await any_api.login()
        response = await create(any_api, token)
        assert response.code == 201, response.body
        body = response.json()
        assert re.fullmatch(r"[0-9a-f]{32}", body["id"])
        assert response.headers["Location"] == f"/api/cards/{body['id']}"
        assert response.headers["ETag"] == '"1"'
        assert {k: body[k] for k in CARD} == CARD and body["version"] == 1
        read = await any_api.fetch("GET", response.headers["Location"], token=token)
        assert read.json() == body and read.headers["ETag"] == '"1"'

    async def test_new_version_keeps_the_old(self, any_api):
        """A save is version 2; version 1 stays readable as it was, and versions list oldest first."""
        token = await any_api.login()
        card = (await create(any_api, token)).json()
        response = await save(any_api, token, card["id"], 1)
        assert response.code == 200, response.body
        assert response.json()["version"] == 2 and response.json()["title"] == EDIT["title"]
        assert response.headers["ETag"] == '"2"'
        base = f"/api/cards/{card['id']}"
        assert (await any_api.fetch("GET", base, token=token)).json() == response.json()
        versions = (await any_api.fetch("GET", base + "/versions", token=token)).json()["versions"]
        assert [(v["version"], v["title"]) for v in versions] == [(2, EDIT["title"]), (1, CARD["title"])]
        assert all("code" not in v for v in versions)
        first = (await any_api.fetch("GET", base + "/versions/1", token=token)).json()
        assert first["code"] == CARD["code"] and first["parameters"] == CARD["parameters"]
        assert (await any_api.fetch("GET", base + "/versions/3", token=token)).code == 404
        assert (await any_api.fetch("GET", base + "/versions/x", token=token)).code == 400

    async def test_version_in_the_body(self, api):
        """Without If-Match, a version field names the edited version."""
        token = await api.login()
        card = (await create(api, token)).json()
        response = await save(api, token, card["id"], None, version=1)
        assert response.code == 200 and response.json()["version"] == 2

    async def test_list_newest_first_without_code(self, any_api):
        """My cards list the most recently changed first, each with its current version but not its code."""
        token = await any_api.login()
        first = (await create(any_api, token, title="一")).json()
        second = (await create(any_api, token, title="二")).json()
        await save(any_api, token, first["id"], 1)
        listed = (await any_api.fetch("GET", "/api/cards", token=token)).json()["cards"]
        assert [(c["id"], c["version"]) for c in listed] == [(first["id"], 2), (second["id"], 1)]
        assert all("code" not in c for c in listed)

    async def test_delete(self, any_api):
        """The owner deletes a card: it and its versions are gone."""
        token = await any_api.login()
        card = (await create(any_api, token)).json()
        await save(any_api, token, card["id"], 1)
        base = f"/api/cards/{card['id']}"
        assert (await any_api.fetch("DELETE", base, token=token)).code == 204
        for path in (base, base + "/versions", base + "/versions/1"):
            assert (await any_api.fetch("GET", path, token=token)).code == 404
        assert (await any_api.fetch("GET", "/api/cards", token=token)).json()["cards"] == []
        assert (await any_api.fetch("DELETE", base, token=token)).code == 204, "deleting what is gone is no error"


class TestConflicts:
    async def test_concurrent_saves_one_wins(self, any_api):
        """Two saves of version 1 at once: exactly one wins, the other is a 409 naming version 2."""
        token = await any_api.login()
        card = (await create(any_api, token)).json()
        responses = await asyncio.gather(
            *(save(any_api, token, card["id"], 1, title=f"編集{i}") for i in range(2)))
        assert sorted(r.code for r in responses) == [200, 409]
        loser = next(r for r in responses if r.code == 409)
        assert loser.json()["error"]["details"]["current_version"] == 2
        versions = await any_api.fetch("GET", f"/api/cards/{card['id']}/versions", token=token)
        assert [v["version"] for v in versions.json()["versions"]] == [2, 1]

    async def test_stale_version(self, api):
        """A save from an old version is a 409 that names the current one and saves nothing."""
        token = await api.login()
        card = (await create(api, token)).json()
        await save(api, token, card["id"], 1)
        response = await save(api, token, card["id"], 1, title="古い")
        assert response.code == 409
        assert response.json()["error"]["details"] == {"current_version": 2}
        assert "reload" in response.json()["error"]["message"].lower()

    async def test_version_required(self, api):
        """A save that names no version is a 428."""
        token = await api.login()
        card = (await create(api, token)).json()
        response = await save(api, token, card["id"], None)
        assert response.code == 428 and response.error_code == "precondition_required"
        assert "If-Match" in response.json()["error"]["message"]

    @pytest.mark.parametrize("if_match, body", [("*", {}), ("1", {}), ('W/"1"', {}), ('"1"', {"version": 2})])
    async def test_bad_if_match(self, api, if_match, body):
        """If-Match must be one quoted version, and agree with a version field."""
        token = await api.login()
        card = (await create(api, token)).json()
        response = await api.fetch("PUT", f"/api/cards/{card['id']}", token=token,
                                   headers={"If-Match": if_match}, json_body={**EDIT, **body})
        assert response.code == 400


class TestVisibility:
    async def test_other_member_gets_404_everywhere(self, any_api):
        """Another member gets 404 on every route of someone else's card, and an empty list."""
        owner = await any_api.add_user("owner@example.com")
        stranger = await any_api.add_user("stranger@example.com")
        card = (await create(any_api, owner)).json()
        base = f"/api/cards/{card['id']}"
        for method, path in [("GET", base), ("PUT", base), ("DELETE", base),
                             ("GET", base + "/versions"), ("GET", base + "/versions/1")]:
            response = await any_api.fetch(method, path, token=stranger, headers={"If-Match": '"1"'},
                                           json_body=EDIT if method == "PUT" else None)
            assert response.code == 404, (method, path)
        assert (await any_api.fetch("GET", "/api/cards", token=stranger)).json()["cards"] == []
        assert (await any_api.fetch("GET", base, token=owner)).json()["version"] == 1

    async def test_admin_sees_and_changes_all(self, api):
        """An admin lists, reads, saves and deletes a member's card."""
        member = await api.add_user("ana@example.com")
        admin = await api.login()
        card = (await create(api, member)).json()
        listed = (await api.fetch("GET", "/api/cards", token=admin)).json()["cards"]
        assert [c["id"] for c in listed] == [card["id"]]
        saved = await save(api, admin, card["id"], 1)
        assert saved.code == 200 and saved.json()["owner_id"] == card["owner_id"]
        assert card["updated_by"] == card["owner_id"] != saved.json()["updated_by"]
        assert (await api.fetch("DELETE", f"/api/cards/{card['id']}", token=admin)).code == 204

    async def test_datasets_must_be_mine(self, any_api):
        """A card may read my datasets; someone else's is a 404 naming it; an admin may use any."""
        ana = await any_api.add_user("ana@example.com")
        bo = await any_api.add_user("bo@example.com")
        anas, bos = await upload(any_api, ana, "sales"), await upload(any_api, bo, "costs")
        response = await create(any_api, ana, datasets=[anas, bos])
        assert response.code == 404
        assert response.json()["error"]["details"] == {"pointer": "/datasets/1", "dataset_id": bos}
        card = await create(any_api, ana, datasets=[anas])
        assert card.code == 201 and card.json()["datasets"] == [anas]
        admin = await any_api.login()
        assert (await create(any_api, admin, datasets=[anas, bos])).code == 201

    async def test_reserved_paths(self, api):
        """``scratch`` is no card, and each /ws and /run path reaches its own handler first."""
        token = await api.login()
        card = (await create(api, token)).json()
        assert (await api.fetch("GET", "/api/cards/scratch", token=token)).code == 404
        expected = {"/api/cards/scratch/ws": "CardSocket", f"/api/cards/{card['id']}/ws": "CardEditSocket",
                    f"/api/cards/{card['id']}/run": "CardRunHandler", "/api/cards/scratch/run": "CardRunHandler"}
        for path, handler in expected.items():
            first = next(spec for spec in url_specs() if spec.regex.match(path))
            assert first.handler_class.__name__ == handler, path


class TestValidation:
    @pytest.mark.parametrize("fields, pointer", [
        ({"title": ""}, "/title"),
        ({"title": "   "}, "/title"),
        ({"title": "長" * 201}, "/title"),
        ({"code": "x" * 100_001}, "/code"),
        ({"datasets": [f"d{i}" for i in range(21)]}, "/datasets"),
        ({"datasets": ["a", "a"]}, "/datasets"),
        ({"parameters": [{"name": f"p{i}", "type": "text", "default": ""} for i in range(21)]}, "/parameters"),
        ({"parameters": [{"name": "1st", "type": "text", "default": ""}]}, "/parameters/0/name"),
        ({"parameters": [{"name": "class", "type": "text", "default": ""}]}, "/parameters/0/name"),
        ({"parameters": [{"name": "a", "type": "text", "default": ""},
                         {"name": "a", "type": "number", "default": 1}]}, "/parameters/1/name"),
        ({"parameters": [{"name": "a", "type": "bool", "default": True}]}, "/parameters/0/type"),
        ({"parameters": [{"name": "a", "type": "number", "default": "3"}]}, "/parameters/0/default"),
        ({"parameters": [{"name": "a", "type": "date", "default": "2024/04/01"}]}, "/parameters/0/default"),
        ({"parameters": [{"name": "a", "type": "date", "default": "2024-02-30"}]}, "/parameters/0/default"),
        ({"parameters": [{"name": "a", "type": "choice", "default": "京都", "choices": ["東京"]}]},
         "/parameters/0/default"),
        ({"parameters": [{"name": "a", "type": "choice", "default": "東京"}]}, "/parameters/0"),
        ({"parameters": [{"name": "a", "type": "text", "default": "x", "choices": ["x"]}]},
         "/parameters/0/choices"),
        ({"parameters": [{"name": "a", "type": "text"}]}, "/parameters/0"),
        ({"owner_id": "someone"}, "/"),
    ])
    async def test_invalid_card_is_400(self, api, fields, pointer):
        """Each invalid field is a 400 whose short message and details point at it; nothing is saved."""
        token = await api.login()
        response = await create(api, token, **fields)
        assert response.code == 400, response.body
        error = response.json()["error"]
        assert error["details"]["pointer"] == pointer
        assert error["message"].startswith(pointer) and len(error["message"]) < 400
        assert (await api.fetch("GET", "/api/cards", token=token)).json()["cards"] == []

    @pytest.mark.parametrize("parameters, code", [
        ([{"name": "class", "type": "text", "default": ""}], "parameter_name_keyword"),
        ([{"name": "a", "type": "text", "default": ""}, {"name": "a", "type": "number", "default": 1}],
         "parameter_name_taken"),
        ([{"name": "a", "type": "choice", "default": "京都", "choices": ["東京"]}], "parameter_default_not_a_choice"),
        ([{"name": "a", "type": "text", "default": "x", "choices": ["x"]}], "parameter_choices_unexpected"),
        ([{"name": "a", "type": "date", "default": "2024-02-30"}], "parameter_date_invalid"),
    ])
    async def test_parameter_problem_has_its_code(self, api, parameters, code):
        """A parameter the schema lets through but the card cannot have names its problem by code, with the
        parameter's name (the UI says it in the user's language)."""
        token = await api.login()
        error = (await create(api, token, parameters=parameters)).json()["error"]
        assert (error["code"], error["details"]["name"]) == (code, parameters[-1]["name"])

    async def test_hint_in_message(self, api):
        """A pattern failure says what was expected in words."""
        token = await api.login()
        response = await create(api, token, parameters=[{"name": "a", "type": "date", "default": "4/1"}])
        assert "YYYY-MM-DD" in response.json()["error"]["message"]

    async def test_title_is_required(self, api):
        """A card without a title is a 400 that names the field."""
        token = await api.login()
        response = await api.fetch("POST", "/api/cards", token=token, json_body={"code": "1"})
        assert response.code == 400 and "title" in response.json()["error"]["message"]

    async def test_save_replaces_every_field(self, api):
        """A save must send the whole card: a missing field is a 400."""
        token = await api.login()
        card = (await create(api, token)).json()
        body = {k: v for k, v in EDIT.items() if k != "datasets"}
        response = await api.fetch("PUT", f"/api/cards/{card['id']}", token=token,
                                   headers={"If-Match": '"1"'}, json_body=body)
        assert response.code == 400 and "datasets" in response.json()["error"]["message"]

    async def test_largest_code(self, any_api):
        """100,000 characters of Japanese code save on every store; a card past the size limit is a 413."""
        token = await any_api.login()
        response = await create(any_api, token, code="売" * 100_000)
        assert response.code == 201, response.body
        read = await any_api.fetch("GET", response.headers["Location"], token=token)
        assert read.json()["code"] == "売" * 100_000
        body = json.dumps({**CARD, "code": "😀" * 100_000}, ensure_ascii=False).encode()
        too_big = await any_api.fetch("POST", "/api/cards", token=token, body=body,
                                      headers={"Content-Type": "application/json"})
        assert too_big.code == 413 and "shorten" in too_big.json()["error"]["message"]


class TestAudit:
    async def test_events(self, api):
        """Creating, saving and deleting a card write card_created, card_updated and card_deleted."""
        token = await api.login()
        with capture_logs() as logs:
            card = (await create(api, token)).json()
            await save(api, token, card["id"], 1)
            await api.fetch("DELETE", f"/api/cards/{card['id']}", token=token)
        events = {e["event"]: e for e in logs if e.get("audit")}
        assert events["card_created"]["card_id"] == card["id"]
        assert events["card_created"]["owner_id"] == card["owner_id"]
        assert (events["card_updated"]["card_id"], events["card_updated"]["version"]) == (card["id"], 2)
        assert events["card_deleted"]["card_id"] == card["id"]


@pytest.mark.parametrize("store_kind", ["embedded"])
class TestAccessSeam:
    """The service alone, with grants injected through ``shares`` as dashboard sharing will."""

    @pytest.fixture
    async def people(self, store):
        people = {name: make_user(f"{name}@example.com") for name in ("owner", "viewer", "editor", "stranger")}
        for user in people.values():
            await store.create_user(user)
        return people

    @pytest.fixture
    def service(self, store, tmp_path, people):
        grants = {people["viewer"].id: "view", people["editor"].id: "edit"}

        async def shares(user, card):
            return grants.get(user.id)

        return CardService(store, DatasetService(store, tmp_path / "tmp"), shares=shares)

    async def test_viewer_reads_but_cannot_change(self, service, people):
        """A viewer reads the card and its versions; saving or deleting is a 403."""
        card, _ = await service.create(people["owner"], "表", "1", [], [])
        viewer = people["viewer"]
        assert await service.access(viewer, card) == "view"
        assert (await service.get_visible(viewer, card.id))[0] == card
        assert len((await service.versions(viewer, card.id, ListQuery((), limit=5))).items) == 1
        with pytest.raises(PermissionDeniedError):
            await service.update(viewer, card.id, 1, "表", "2", [], [])
        with pytest.raises(PermissionDeniedError):
            await service.delete(viewer, card.id)

    async def test_editor_saves_but_cannot_delete(self, service, people):
        """An editor saves new versions; only the owner deletes."""
        card, _ = await service.create(people["owner"], "表", "1", [], [])
        saved, version = await service.update(people["editor"], card.id, 1, "表", "2", [], [])
        assert saved.current_version == version.version == 2
        assert version.created_by == people["editor"].id
        with pytest.raises(PermissionDeniedError):
            await service.delete(people["editor"], card.id)
        await service.delete(people["owner"], card.id)

    async def test_no_grant_is_not_found(self, service, people):
        """Without a grant the card does not exist, whatever is asked."""
        card, _ = await service.create(people["owner"], "表", "1", [], [])
        stranger = people["stranger"]
        assert await service.access(stranger, card) is None
        for call in (service.get_visible(stranger, card.id), service.versions(stranger, card.id, ListQuery((), limit=5)),
                     service.update(stranger, card.id, 1, "表", "2", [], []),
                     service.delete(stranger, card.id)):
            with pytest.raises(NotFoundError):
                await call
