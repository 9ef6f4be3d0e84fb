"""Renaming a dataset (``PATCH /api/datasets/{id}``): the old name stays an alias that ``load_dataset``
resolves, so saved cards keep working; and who uploaded each version, by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from server.limits import DATASET_ALIASES
from server.models import Dataset
from server.services.datasets import named_files

from .test_card_runs import result_value, run
from .test_datasets import upload
from .test_sessions import open_session, root, start_cards, text  # noqa: F401, F811 - fixtures
from .test_sessions import run as execute

CSV = "店舗,売上\n東京,10\n大阪,20\n東京,5\n"


def test_a_dataset_called_so_wins_over_an_alias():
    """Each dataset is placed under its name, then under its earlier names that no dataset given is called."""
    now = "2026-12-06T00:00:00Z"
    renamed = Dataset("a", "u", "売上2024", 1, now, now, aliases=("売上", "sales"))
    other = Dataset("b", "u", "売上", 1, now, now)
    files = named_files([(renamed, Path("a.parquet")), (other, Path("b.parquet"))])
    assert files == [("売上2024", Path("a.parquet")), ("売上", Path("b.parquet")), ("sales", Path("a.parquet"))]


async def rename(api, token: str, dataset_id: str, name: str):
    return await api.fetch("PATCH", f"/api/datasets/{dataset_id}", token=token, json_body={"name": name})


async def test_rename_keeps_the_old_name_as_an_alias(any_api):
    """The answer, the dataset and the list show the new name with the old ones as aliases; the rename is
    audited; the list finds it by its new name."""
    token = await any_api.login()
    dataset = (await upload(any_api, "sales", CSV.encode(), token)).json()
    with capture_logs() as logs:
        response = await rename(any_api, token, dataset["id"], "  売上2024 ")
    assert response.code == 200, response.body
    assert (response.json()["name"], response.json()["aliases"], response.json()["version"]) == ("売上2024", ["sales"], 1)
    event = next(e for e in logs if e["event"] == "dataset_renamed")
    assert (event["dataset_id"], event["name"], event["old_name"]) == (dataset["id"], "売上2024", "sales")
    second = (await rename(any_api, token, dataset["id"], "売上")).json()
    assert second["aliases"] == ["sales", "売上2024"]
    got = (await any_api.fetch("GET", f"/api/datasets/{dataset['id']}", token=token)).json()
    assert (got["name"], got["aliases"]) == ("売上", ["sales", "売上2024"])
    found = (await any_api.fetch("GET", "/api/datasets?q=売上", token=token)).json()["datasets"]
    assert [d["name"] for d in found] == ["売上"]
    assert (await rename(any_api, token, dataset["id"], "売上")).json()["aliases"] == ["sales", "売上2024"]  # no-op


@pytest.mark.parametrize("name, status, code", [
    ("taken", 409, "dataset_name_taken"),
    ("", 400, "bad_request"),
    ("a/b", 400, "bad_request"),
    ("x" * 101, 400, "bad_request"),
])
async def test_bad_names_are_refused(api, name, status, code):
    """A name the owner uses, an empty one, one with a slash or too long: refused, nothing changes."""
    token = await api.login()
    dataset = (await upload(api, "sales", CSV.encode(), token)).json()
    await upload(api, "taken", CSV.encode(), token)
    response = await rename(api, token, dataset["id"], name)
    assert (response.code, response.json()["error"]["code"]) == (status, code)
    assert (await api.fetch("GET", f"/api/datasets/{dataset['id']}", token=token)).json()["name"] == "sales"


async def test_only_those_who_may_read_it_rename_it(api):
    """Another member gets 404; an admin may rename a member's dataset."""
    owner = await api.add_user("owner@example.com")
    stranger = await api.add_user("stranger@example.com")
    dataset = (await upload(api, "private", CSV.encode(), owner)).json()
    assert (await rename(api, stranger, dataset["id"], "mine")).code == 404
    assert (await rename(api, await api.login(), dataset["id"], "renamed")).code == 200


async def test_names_kept_are_bounded(api):
    """Past ``DATASET_ALIASES`` earlier names a rename is refused with a code of its own."""
    token = await api.login()
    dataset = (await upload(api, "n0", CSV.encode(), token)).json()
    for number in range(1, DATASET_ALIASES + 1):
        assert (await rename(api, token, dataset["id"], f"n{number}")).code == 200
    refused = await rename(api, token, dataset["id"], "one more")
    assert (refused.code, refused.json()["error"]["code"]) == (400, "dataset_aliases_full")


async def test_a_dashboard_written_before_a_rename_finds_the_dataset(api):
    """A dashboard document naming a dataset by a name it had (an export made before the rename) reads it."""
    token = await api.login()
    dataset = (await upload(api, "売上", CSV.encode(), token)).json()
    assert (await rename(api, token, dataset["id"], "売上2024")).code == 200
    created = await api.fetch("POST", "/api/dashboards", token=token, json_body={
        "schemaVersion": 1, "title": "月次", "layout": [{"card": "total", "x": 0, "y": 0, "w": 6, "h": 4}],
        "cards": [{"key": "total", "title": "合計", "datasets": ["売上"], "code": "load_dataset('売上')"}]})
    assert created.code == 201, created.body
    card_id = created.json()["document"]["cards"][0]["card"]
    assert (await api.fetch("GET", f"/api/cards/{card_id}", token=token)).json()["datasets"] == [dataset["id"]]


async def test_versions_name_who_uploaded_them(api):
    """A dataset's version list names the uploader of each version beside their id."""
    token = await api.login()
    dataset = (await upload(api, "sales", CSV.encode(), token)).json()
    versions = (await api.fetch("GET", f"/api/datasets/{dataset['id']}/versions", token=token)).json()["versions"]
    assert [(v["created_by"], v["created_by_name"]) for v in versions] == [(dataset["owner_id"], "admin")]


async def test_saved_cards_load_a_renamed_dataset_by_its_old_name(start_cards):
    """A card saved with ``load_dataset('売上')`` runs after the dataset became 「売上2024」, and a new
    session reads it by both names."""
    api = await start_cards()
    token = await api.login()
    dataset = (await upload(api, "売上", CSV.encode(), token)).json()
    card = (await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "合計", "code": "int(load_dataset('売上')['売上'].sum())", "datasets": [dataset["id"]]})).json()
    assert (await rename(api, token, dataset["id"], "売上2024")).code == 200
    response = await run(api, token, card["id"])
    assert response.code == 200, response.body
    assert result_value(response.json()) == "35"
    session = await open_session(api, token, [dataset["id"]])
    both = await execute(api, token, session, "len(load_dataset('売上2024')) + len(load_dataset('売上'))")
    assert both.code == 200, both.body
    assert text(both.json()["outputs"]) == "6"
