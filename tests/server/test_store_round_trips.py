"""Store round trips per request on the AWS store (moto): a request's token costs none while its user is kept,
and what reads many records reads them in batches, so the calls a request makes do not grow with them."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from .test_dashboards import document

pytestmark = pytest.mark.aws

CARD = {"title": "合計", "code": "1 + 1", "datasets": [], "parameters": []}
TILE = [{"key": "total", "title": "合計", "code": "1 + 1"}]


def counting(store: Any) -> collections.Counter[str]:
    """The DynamoDB calls ``store`` makes from now on, by operation (a botocore event hook)."""
    calls: collections.Counter[str] = collections.Counter()
    store._dynamodb.meta.events.register("before-parameter-build",
                                         lambda model, **kwargs: calls.update([model.name]))
    return calls


async def calls_of(api, calls: collections.Counter[str], path: str, token: str) -> dict[str, int]:
    calls.clear()
    response = await api.fetch("GET", path, token=token)
    assert response.code == 200, response.body
    return dict(calls)


async def test_requests_read_many_records_in_batches(start_server):
    """The second request of a token reads no user; a page of cards is one Query (of their summaries) however
    many cards it has; a card shown on a dashboard shared with the reader costs the same however many
    dashboards the reader has."""
    api = await start_server("aws")
    owner = await api.login()
    viewer = await api.add_user("viewer@example.com")
    shared = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=document(cards=TILE))).json()
    assert (await api.fetch("PUT", f"/api/dashboards/{shared['id']}/shares", token=owner,
                            json_body={"email": "viewer@example.com", "permission": "view"})).code == 200
    card_id = shared["document"]["cards"][0]["card"]
    calls = counting(api.app.store_instance)
    assert await calls_of(api, calls, "/api/me", viewer) == {"GetItem": 2}, "the user and the sign-in, once"
    assert await calls_of(api, calls, "/api/me", viewer) == {}, "the user and its live sign-in are kept"

    async def add(count: int) -> None:
        for n in range(count):
            assert (await api.fetch("POST", "/api/cards", token=owner, json_body=CARD)).code == 201
            mine = document(title=f"mine {n}", cards=[{**TILE[0], "code": str(n)}])
            assert (await api.fetch("POST", "/api/dashboards", token=viewer, json_body=mine)).code == 201, mine

    await add(1)
    few = await calls_of(api, calls, "/api/cards", owner)
    shown = await calls_of(api, calls, f"/api/cards/{card_id}", viewer)
    await add(4)
    assert await calls_of(api, calls, "/api/cards", owner) == {"Query": 1}, "summaries: no versions read"
    assert few.get("BatchGetItem") is None, few  # (a GetItem: the sign-in, read again past SIGN_IN_CHECK_SECONDS)
    assert await calls_of(api, calls, f"/api/cards/{card_id}", viewer) == shown
