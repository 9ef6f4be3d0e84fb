"""A list costs what its summaries cost, not what its documents cost.

Before, ``GET /api/dashboards?limit=200`` answered every dashboard's whole document and ``GET /api/cards`` every
card's parameters: a member's 200 dashboards of about 1 MB each made one page a 200 MB answer built on the event
loop, and a dashboard shared with someone landed in their list too; ``GET /api/dashboards/{id}/versions`` did the
same with every version. Now every list item is a summary of bounded size (``LIST_ITEM_BYTES``: ids, title, a
shortened description, tags, counts, access, times), read from the catalogue and not from the documents; the whole
document comes only from the item's own GET.

The attack: records as large as a store takes, listed. The page's answer, and the bytes the server reads from its
store to make it, must stay within its items times ``LIST_ITEM_BYTES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from server.limits import CSV_COLUMNS, LIST_ITEM_BYTES
from tests.server.conftest import any_api, start_server  # noqa: F401 - fixtures

ITEMS = 3
CHOICES = [f"{j:03d}" + "x" * 197 for j in range(50)]
PARAMETERS = [{"name": f"p{i}", "type": "choice", "default": CHOICES[0], "label": "l" * 200, "choices": CHOICES}
              for i in range(20)]  # about 210 KB of JSON: as large as a card version or a DynamoDB item may be
DOCUMENT = {"schemaVersion": 1, "title": "\u0001" * 200, "description": "\u0001" * 5000,
            "tags": [f"{n:02d}" + "\u0001" * 48 for n in range(20)], "cards": [], "layout": [],
            "parameters": PARAMETERS}
CARD = {"title": "\u0001" * 200, "code": "1", "datasets": [], "parameters": PARAMETERS,
        "tags": [f"{n:02d}" + "\u0001" * 48 for n in range(20)]}


def reads_of(api: Any) -> Callable[[], int]:
    """A counter of the bytes the server reads from its store from now on: rows' values (SQLite), response bodies
    (DynamoDB)."""
    store = api.app.store_instance
    read = [0]
    if hasattr(store, "_dynamodb"):
        def count(http_response: Any, **_: Any) -> None:
            read[0] += len(http_response.content or b"")

        store._dynamodb.meta.events.register("after-call.dynamodb", count)
    else:
        query = store._query

        def counted(sql: str, *params: Any) -> Any:
            rows = query(sql, *params)
            read[0] += sum(len(value) for row in rows for value in row if isinstance(value, (str, bytes)))
            return rows

        store._query = counted

    def since() -> int:
        value, read[0] = read[0], 0
        return value

    return since


async def listed(api: Any, read: Callable[[], int], path: str, token: str, name: str) -> tuple[int, int, int]:
    """(items, answer bytes, store bytes read) of one page of ``path``."""
    read()
    response = await api.fetch("GET", path, token=token)
    assert response.code == 200, response.body[:300]
    return len(response.json()[name]), len(response.body), read()


@pytest.mark.parametrize("store_kind", ["embedded", "aws"])
async def test_list_pages_cost_their_summaries_not_their_documents(any_api):
    api = any_api
    owner = await api.add_user("lister@example.com")
    viewer = await api.add_user("viewer@example.com")
    dashboards, cards = [], []
    for _ in range(ITEMS):
        created = await api.fetch("POST", "/api/dashboards", token=owner, json_body=DOCUMENT)
        assert created.code == 201, created.body[:300]
        dashboards.append(created.json())
        saved = await api.fetch("PUT", f"/api/dashboards/{created.json()['id']}", token=owner, json_body=DOCUMENT,
                                headers={"If-Match": '"1"'})
        assert saved.code == 200, saved.body[:300]
        shared = await api.fetch("PUT", f"/api/dashboards/{created.json()['id']}/shares", token=owner,
                                 json_body={"email": "viewer@example.com", "permission": "view"})
        assert shared.code == 200, shared.body
        card = await api.fetch("POST", "/api/cards", token=owner, json_body=CARD)
        assert card.code == 201, card.body[:300]
        cards.append(card.json())
        again = await api.fetch("PUT", f"/api/cards/{card.json()['id']}", token=owner, headers={"If-Match": '"1"'},
                                json_body={key: CARD[key] for key in ("title", "code", "datasets", "parameters")})
        assert again.code == 200, again.body[:300]
    assert len(json.dumps(dashboards[0])) > 200_000, "a document as large as a store takes"
    read = reads_of(api)
    for path, token, name, items in [
            ("/api/dashboards?limit=200", owner, "dashboards", ITEMS),
            ("/api/dashboards?limit=200", viewer, "dashboards", ITEMS),
            ("/api/dashboards?limit=200&shared=true", viewer, "dashboards", ITEMS),
            ("/api/cards?limit=200", owner, "cards", ITEMS),
            (f"/api/dashboards/{dashboards[0]['id']}/versions?limit=200", viewer, "versions", 2),
            (f"/api/cards/{cards[0]['id']}/versions?limit=200", owner, "versions", 2)]:
        count, answered, stored = await listed(api, read, path, token, name)
        assert count == items, path
        bound = items * LIST_ITEM_BYTES
        assert answered <= bound, f"{path}: {answered} bytes answered for {items} items (at most {bound})"
        assert stored <= bound + 64 * 1024, f"{path}: {stored} bytes read from the store for {items} items"


async def test_dataset_lists_count_the_columns_the_dataset_names(api):
    """A dataset of as many long-named columns as an upload takes lists its column count, not its columns."""
    owner = await api.add_user("wide@example.com")
    header = ",".join(f"{i:03d}" + "列" * 200 for i in range(CSV_COLUMNS))
    csv = (header + "\n" + ",".join("1" for _ in range(CSV_COLUMNS)) + "\n").encode()
    created = await api.fetch("POST", "/api/datasets?name=wide", token=owner, body=csv,
                              headers={"Content-Type": "text/csv"})
    assert created.code == 201, created.body[:300]
    dataset = created.json()
    assert len(dataset["columns"]) == CSV_COLUMNS and len(created.body) > 2 * LIST_ITEM_BYTES
    for path, name in [("/api/datasets?limit=200", "datasets"), (f"/api/datasets/{dataset['id']}/versions", "versions")]:
        response = await api.fetch("GET", path, token=owner)
        (item,) = response.json()[name]
        assert "columns" not in item and item["column_count"] == CSV_COLUMNS, path
        assert len(response.body) <= LIST_ITEM_BYTES, f"{path}: {len(response.body)} bytes for one item"
    whole = await api.fetch("GET", f"/api/datasets/{dataset['id']}", token=owner)
    assert whole.json()["columns"] == dataset["columns"]


async def test_the_whole_document_comes_from_the_items_own_get(api):
    """What a list leaves out is one GET away: the dashboard, a version of it, the card, a version of the card."""
    owner = await api.add_user("owner@example.com")
    created = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=DOCUMENT)).json()
    item = (await api.fetch("GET", "/api/dashboards", token=owner)).json()["dashboards"][0]
    assert "document" not in item and item["card_count"] == 0 and item["parameter_count"] == 20
    assert item["title"] == DOCUMENT["title"] and item["tags"] == DOCUMENT["tags"]
    assert DOCUMENT["description"].startswith(item["description"].rstrip("…"))
    whole = (await api.fetch("GET", f"/api/dashboards/{created['id']}", token=owner)).json()
    assert whole["document"]["parameters"] == PARAMETERS
    version = await api.fetch("GET", f"/api/dashboards/{created['id']}/versions/1", token=owner)
    assert version.code == 200 and version.json()["document"]["parameters"] == PARAMETERS
    card = (await api.fetch("POST", "/api/cards", token=owner, json_body=CARD)).json()
    listed_card = (await api.fetch("GET", "/api/cards", token=owner)).json()["cards"][0]
    assert "parameters" not in listed_card and listed_card["parameter_count"] == 20
    assert (await api.fetch("GET", f"/api/cards/{card['id']}/versions/1", token=owner)).json()["parameters"] == PARAMETERS
