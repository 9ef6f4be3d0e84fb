"""List routes as pages: ``?limit=&cursor=&sort=`` and filters, ``{"<items>", "next"}``, 400s with codes."""

from __future__ import annotations

import urllib.parse

import pytest

from .test_cards import create, save, upload
from .test_dashboards import document


def bare(**fields) -> dict:
    """A dashboard document without cards."""
    return document(cards=[], layout=[], parameters=[], **fields)


async def pages(api, token: str, path: str, items: str, **params: str) -> list[dict]:
    """Every item of a list, following ``next`` page after page."""
    listed, cursor = [], None
    while True:
        query = urllib.parse.urlencode({**params, **({"cursor": cursor} if cursor else {})})
        response = await api.fetch("GET", f"{path}?{query}", token=token)
        assert response.code == 200, response.body
        body = response.json()
        listed += body[items]
        cursor = body["next"]
        if cursor is None:
            return listed


async def test_cards_page_by_cursor_sort_and_filters(any_api):
    """Cards come a page at a time in either order; tag, dataset and search (two-character Japanese) filter."""
    token = await any_api.login()
    dataset = await upload(any_api, token, "sales")
    made = [(await create(any_api, token, title=title, tags=tags, datasets=datasets)).json()
            for title, tags, datasets in [("今月の売上", ["月次"], [dataset]), ("Weekly", [], []), ("在庫", ["月次"], []),
                                          ("ｳﾘｱｹﾞ", [], [])]]
    await save(any_api, token, made[1]["id"], 1, title="Weekly SALES")
    ids = [c["id"] for c in await pages(any_api, token, "/api/cards", "cards", limit="1")]
    assert ids == [made[1]["id"], made[3]["id"], made[2]["id"], made[0]["id"]]
    titles = [c["title"] for c in await pages(any_api, token, "/api/cards", "cards", limit="2", sort="title")]
    assert titles == sorted(titles) and len(titles) == 4
    tagged = await pages(any_api, token, "/api/cards", "cards", tag="月次")
    assert {c["id"] for c in tagged} == {made[0]["id"], made[2]["id"]} and tagged[0]["tags"] == ["月次"]
    assert [c["id"] for c in await pages(any_api, token, "/api/cards", "cards", dataset=dataset)] == [made[0]["id"]]
    assert [c["id"] for c in await pages(any_api, token, "/api/cards", "cards", q="売上")] == [made[0]["id"]]
    assert [c["id"] for c in await pages(any_api, token, "/api/cards", "cards", q="sales")] == [made[1]["id"]]
    assert [c["id"] for c in await pages(any_api, token, "/api/cards", "cards", q="ウリアゲ")] == [made[3]["id"]]


async def test_a_member_pages_only_their_own_cards_and_the_default_page(api):
    """A member's list holds only their cards; without a limit a page holds up to PAGE_SIZE, with a total."""
    from server.limits import PAGE_SIZE

    admin = await api.login()
    member = await api.add_user("member@example.com")
    await create(api, admin, title="admin's")
    mine = (await create(api, member, title="mine")).json()
    body = (await api.fetch("GET", "/api/cards", token=member)).json()
    assert [c["id"] for c in body["cards"]] == [mine["id"]] and body["next"] is None and body["total"] == 1
    for _ in range(PAGE_SIZE):
        await create(api, admin)
    body = (await api.fetch("GET", "/api/cards", token=admin)).json()
    assert len(body["cards"]) == PAGE_SIZE and body["next"] and body["total"] == PAGE_SIZE + 2


async def test_dashboards_mine_and_shared(api):
    """Members list their dashboards and those shared with them, or (shared=true) only the shared ones."""
    admin = await api.login()
    member = await api.add_user("member@example.com")
    own = (await api.fetch("POST", "/api/dashboards", token=member, json_body=bare(title="自分の"))).json()
    shared = (await api.fetch("POST", "/api/dashboards", token=admin,
                              json_body=bare(title="共有の売上", tags=["月次"]))).json()
    await api.fetch("POST", "/api/dashboards", token=admin, json_body=bare(title="非公開"))
    assert (await api.fetch("PUT", f"/api/dashboards/{shared['id']}/shares", token=admin,
                            json_body={"email": "member@example.com", "permission": "view"})).code == 200
    listed = await pages(api, member, "/api/dashboards", "dashboards", limit="1")
    assert {(d["id"], d["access"]) for d in listed} == {(own["id"], "owner"), (shared["id"], "view")}
    only = await pages(api, member, "/api/dashboards", "dashboards", shared="true")
    assert [d["id"] for d in only] == [shared["id"]]
    assert [d["id"] for d in await pages(api, member, "/api/dashboards", "dashboards", q="売上")] == [shared["id"]]
    assert [d["id"] for d in await pages(api, admin, "/api/dashboards", "dashboards", tag="月次")] == [shared["id"]]


async def test_datasets_page(api):
    """Datasets page by name, and search their names."""
    token = await api.login()
    for name in ("b_sales", "a_stock", "売上"):
        await upload(api, token, urllib.parse.quote(name))
    names = [d["name"] for d in await pages(api, token, "/api/datasets", "datasets", limit="2", sort="title")]
    assert names == ["a_stock", "b_sales", "売上"]
    assert [d["name"] for d in await pages(api, token, "/api/datasets", "datasets", q="売上")] == ["売上"]


async def test_users_shares_and_versions_page(any_api):
    """Users, a dashboard's shares and a card's versions come newest first, a page at a time."""
    admin = await any_api.login()
    emails = [f"member{i}@example.com" for i in range(3)]
    for email in emails:
        await any_api.add_user(email)
    users = await pages(any_api, admin, "/api/users", "users", limit="2")
    assert [u["email"] for u in users] == [*reversed(emails), "admin@example.com"]
    dashboard = (await any_api.fetch("POST", "/api/dashboards", token=admin, json_body=bare(title="共有"))).json()
    shares = f"/api/dashboards/{dashboard['id']}/shares"
    for email in emails:
        assert (await any_api.fetch("PUT", shares, token=admin, json_body={"email": email, "permission": "view"})).code == 200
    first = (await any_api.fetch("GET", f"{shares}?limit=2", token=admin)).json()
    assert first["unreadable_datasets"] == [] and len(first["shares"]) == 2 and first["next"]
    listed = await pages(any_api, admin, shares, "shares", limit="2")
    assert sorted(s["email"] for s in listed) == emails
    assert [s["created_at"] for s in listed] == sorted((s["created_at"] for s in listed), reverse=True)
    card = (await create(any_api, admin, title="v1")).json()
    for number in range(1, 4):
        await save(any_api, admin, card["id"], number, title=f"v{number + 1}")
    versions = await pages(any_api, admin, f"/api/cards/{card['id']}/versions", "versions", limit="3")
    assert [(v["version"], v["title"]) for v in versions] == [(4, "v4"), (3, "v3"), (2, "v2"), (1, "v1")]
    assert [v["version"] for v in await pages(any_api, admin, f"/api/dashboards/{dashboard['id']}/versions",
                                              "versions", limit="1")] == [1]


async def test_a_member_may_not_page_users(api):
    member = await api.add_user("member@example.com")
    response = await api.fetch("GET", "/api/users?limit=1", token=member)
    assert response.code == 403


@pytest.mark.parametrize("path, query, code", [
    ("/api/cards", "limit=0", "invalid_argument"),
    ("/api/cards", "limit=201", "invalid_argument"),
    ("/api/cards", "limit=ten", "invalid_argument"),
    ("/api/cards", "sort=created", "invalid_sort"),
    ("/api/cards", "cursor=bm90LWpzb24", "invalid_cursor"),
    ("/api/cards", "cursor=!!!", "invalid_cursor"),
    ("/api/cards", "cursor=WyJ0aXRsZSIsImEiLCJiIl0&sort=updated", "invalid_cursor"),  # given for sort=title
    ("/api/cards", "shared=true", "unsupported_filter"),
    ("/api/datasets", "tag=x", "unsupported_filter"),
    ("/api/dashboards", "dataset=x", "unsupported_filter"),
    ("/api/dashboards", "shared=maybe", "invalid_filter"),
    ("/api/cards", "q=" + "x" * 201, "invalid_filter"),
    ("/api/users", "sort=title", "invalid_sort"),
    ("/api/users", "q=ana", "unsupported_filter"),
    ("/api/users", "limit=201", "invalid_argument"),
    ("/api/cards/CARD/versions", "cursor=WyJ1cGRhdGVkIiwiMjAyNiIsIngiXQ", "invalid_cursor"),  # a catalogue's cursor
])
async def test_bad_page_requests_are_400_with_a_code(api, path, query, code):
    token = await api.login()
    if "CARD" in path:
        path = path.replace("CARD", (await create(api, token)).json()["id"])
    response = await api.fetch("GET", f"{path}?{query}", token=token)
    assert response.code == 400 and response.error_code == code, response.body
