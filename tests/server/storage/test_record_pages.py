"""Pages of users, a dashboard's shares and a record's versions (``Store.page_users``, ``page_shares``,
``page_*_versions``) on both backends: newest first, a keyset cursor, at most ``limit + 1`` records read
(SQLite: one index range; DynamoDB: one Query, never a Scan)."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from pathlib import Path

import pytest

from server.errors import InvalidRequestError
from server.models import CardVersion, Dashboard, DashboardVersion, Share, User, utcnow
from server.paging import ListQuery, Page
from server.storage.sqlite import DB_FILE
from tests.server.storage.test_catalog import add_card, everything
from tests.server.storage.test_contract import make_dataset, make_user, make_version

FIRST = ListQuery((), limit=3)


def at(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000Z"


async def add_users(store, count: int) -> list[User]:
    users = [dataclasses.replace(make_user(f"u{i}@example.com"), created_at=at(i)) for i in range(count)]
    for user in users:
        await store.create_user(user)
    return users


async def add_dashboard(store, owner: User) -> Dashboard:
    now = utcnow()
    dashboard = Dashboard(uuid.uuid4().hex, uuid.uuid4().hex, owner.id, 1, now, now)
    document = {"schemaVersion": 1, "title": "週報", "cards": [], "layout": []}
    await store.create_dashboard(dashboard, DashboardVersion(dashboard.id, 1, document, now, owner.id))
    return dashboard


async def add_card_versions(store, owner: User, count: int) -> str:
    """A card with versions 1 to ``count``; its id."""
    card = await add_card(store, owner, "v1")
    for number in range(2, count + 1):
        await store.add_card_version(CardVersion(card.id, number, f"v{number}", "1", (), (), utcnow(), owner.id), number - 1)
    return card.id


async def test_users_page_newest_first_and_a_cursor_stays_right(store):
    """Users come newest first, a page at a time; one added meanwhile (newer, so before the cursor) shifts nothing."""
    users = await add_users(store, 7)
    first = await store.page_users(FIRST)
    await store.create_user(dataclasses.replace(make_user("late@example.com"), created_at=at(59)))
    second = await store.page_users(dataclasses.replace(FIRST, after=first.next))
    third = await store.page_users(dataclasses.replace(FIRST, after=second.next))
    assert [u.id for u in first.items + second.items + third.items] == [u.id for u in reversed(users)]
    assert third.next is None


async def test_shares_page_newest_grant_first(store):
    """A dashboard's shares page by grant time, newest first, and only that dashboard's."""
    owner, *people = await add_users(store, 6)
    dashboard, other = await add_dashboard(store, owner), await add_dashboard(store, owner)
    for i, person in enumerate(people):
        await store.put_share(Share(dashboard.id, person.id, "view", at(10 + i), owner.id))
    await store.put_share(Share(other.id, people[0].id, "edit", at(30), owner.id))
    await store.put_share(Share(dashboard.id, people[0].id, "edit", at(40), owner.id))  # granted again: newest
    shares = await everything(lambda q: store.page_shares(dashboard.id, q), ListQuery((), limit=2))
    assert [(s.user_id, s.permission) for s in shares] == (
        [(people[0].id, "edit")] + [(p.id, "view") for p in reversed(people[1:])])


async def test_versions_page_newest_first(store):
    """Card, dashboard and dataset versions page newest first; a cursor no versions list gave is a 400."""
    owner = make_user()
    await store.create_user(owner)
    card_id = await add_card_versions(store, owner, 5)
    versions = await everything(lambda q: store.page_card_versions(card_id, q), ListQuery((), limit=2))
    assert [v.version for v in versions] == [5, 4, 3, 2, 1] and versions[0].title == "v5"
    dashboard = await add_dashboard(store, owner)
    page = await store.page_dashboard_versions(dashboard.id, FIRST)
    assert [v.version for v in page.items] == [1] and page.next is None
    dataset, version = make_dataset(owner)
    await store.create_dataset(dataset, version)
    await store.add_dataset_version(make_version(dataset.id, 2, owner), 1)
    page = await store.page_dataset_versions(dataset.id, ListQuery((), limit=1))
    assert [v.version for v in page.items] == [2] and page.next is not None
    assert [v.version for v in (await store.page_dataset_versions(dataset.id, ListQuery((), 1, after=page.next))).items] == [1]
    with pytest.raises(InvalidRequestError):
        await store.page_card_versions(card_id, ListQuery((), limit=2, after=("2026-01-01", card_id)))


# SQLite: what a page reads ----------------------------------------------------------
@pytest.fixture
async def filled(store, store_kind):
    """Users, a dashboard shared with most of them, a card with many versions; the first page's cursor of each."""
    users = await add_users(store, 12)
    dashboard = await add_dashboard(store, users[0])
    for i, person in enumerate(users[1:]):
        await store.put_share(Share(dashboard.id, person.id, "view", at(20 + i), users[0].id))
    card_id = await add_card_versions(store, users[0], 12)
    reads = {"users": store.page_users, "shares": lambda q: store.page_shares(dashboard.id, q),
             "versions": lambda q: store.page_card_versions(card_id, q)}
    return {name: (read, (await read(FIRST)).next) for name, read in reads.items()}


@pytest.mark.parametrize("name", ["users", "shares", "versions"])
async def test_a_page_is_one_index_range_of_limit_plus_one_rows(store, store_kind, filled, name):
    """On SQLite a deep page's SELECT walks one index in the page's order (no sort step, no scan of the
    table) and stops after ``limit + 1`` rows."""
    if store_kind != "embedded":
        pytest.skip("SQLite only")
    read, cursor = filled[name]
    statements: list[str] = []
    conn = store._conn
    await store._run(conn.set_trace_callback, statements.append)
    deep: Page = await read(dataclasses.replace(FIRST, after=cursor))
    await store._run(conn.set_trace_callback, None)
    assert len(deep.items) == FIRST.limit and deep.total is not None and deep.total > FIRST.limit
    (select,) = [s for s in statements if s.startswith("SELECT ") and not s.startswith("SELECT count")]
    assert select.endswith(f"LIMIT {FIRST.limit + 1}")
    explain = sqlite3.connect(Path(store.data_dir) / DB_FILE)
    plan = " | ".join(row[3] for row in explain.execute("EXPLAIN QUERY PLAN " + select))
    explain.close()
    assert "TEMP B-TREE" not in plan and "INDEX" in plan and not plan.startswith("SCAN"), plan


@pytest.mark.parametrize("name", ["users", "shares", "versions"])
async def test_a_page_is_one_query_on_dynamodb(store, store_kind, filled, name):
    """On DynamoDB a first and a deep page are one Query each (users and shares on the by_group index,
    versions on the record's partition), of ``limit + 1`` items; never a Scan."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    read, cursor = filled[name]
    calls: list[tuple[str, dict]] = []
    store._dynamodb.meta.events.register("provide-client-params.dynamodb",
                                         lambda params, model, **_: calls.append((model.name, params)))
    first, deep = await read(FIRST), await read(dataclasses.replace(FIRST, after=cursor))
    assert [operation for operation, _ in calls] == ["Query", "Query"]
    assert all(params["Limit"] == FIRST.limit + 1 for _, params in calls)
    assert [params.get("IndexName") for _, params in calls] == [None if name == "versions" else "by_group"] * 2
    assert len(first.items) == len(deep.items) == FIRST.limit and not set(map(id, first.items)) & set(map(id, deep.items))


async def test_init_tables_gives_older_users_and_shares_their_index_keys(store, store_kind):
    """Items written before the by_group index (or by the image before) get its keys from ``bi init-tables``."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    owner, guest = await add_users(store, 2)
    dashboard = await add_dashboard(store, owner)
    await store.put_share(Share(dashboard.id, guest.id, "view", utcnow(), owner.id))
    for kind, key in (("users", {"pk": f"USER#{owner.id}", "sk": "PROFILE"}),
                      ("users", {"pk": f"USER#{guest.id}", "sk": "PROFILE"}),
                      ("shares", {"pk": f"DASHBOARD#{dashboard.id}", "sk": f"USER#{guest.id}"})):
        store._dynamodb.update_item(TableName=store._table(kind), Key={k: {"S": v} for k, v in key.items()},
                                    UpdateExpression="REMOVE gpk, gsk")
    assert (await store.page_users(FIRST)).items == []
    await store.create_schema(buckets=False)
    assert [u.id for u in (await store.page_users(FIRST)).items] == [guest.id, owner.id]
    assert [s.user_id for s in (await store.page_shares(dashboard.id, FIRST)).items] == [guest.id]


async def test_records_named_by_a_page_read_back_in_order(store):
    """``get_users``, ``get_datasets`` and ``get_*_versions`` give what each key names, in the keys' order, None
    where missing."""
    users = await add_users(store, 3)
    assert await store.get_users([users[2].id, "missing", users[0].id]) == [users[2], None, users[0]]
    card_id = await add_card_versions(store, users[0], 3)
    found = await store.get_card_versions([(card_id, 3), (card_id, 9), (card_id, 1)])
    assert [v.version if v else None for v in found] == [3, None, 1]
    dataset, version = make_dataset(users[0])
    await store.create_dataset(dataset, version)
    assert await store.get_dataset_versions([(dataset.id, 1), ("missing", 1)]) == [version, None]
    assert await store.get_datasets(["missing", dataset.id, dataset.id]) == [None, dataset, dataset]
    dashboard = await add_dashboard(store, users[0])
    assert [v.version for v in await store.get_dashboard_versions([(dashboard.id, 1)]) if v] == [1]
    assert await store.get_users([]) == [] and await store.get_card_versions([]) == [] == await store.get_datasets([])


async def test_a_listed_page_is_one_or_two_calls_on_dynamodb(store, store_kind, tmp_path):
    """The pages the card and dashboard routes give are one Query of their summaries, the datasets route's a
    Query and one BatchGetItem of the current versions; a page of shares reads its grantees and the dashboard in one
    BatchGetItem."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    from server.services.cards import CardService
    from server.services.dashboards import DashboardService
    from server.services.datasets import DatasetService

    admin = dataclasses.replace(make_user("admin@example.com"), role="admin")
    await store.create_user(admin)
    people = await add_users(store, 4)
    for i in range(6):
        await add_card(store, admin, f"card {i}")
        dataset, version = make_dataset(admin, f"data {i}")
        await store.create_dataset(dataset, version)
        dashboard = await add_dashboard(store, admin)
    for person in people:
        await store.put_share(Share(dashboard.id, person.id, "view", utcnow(), admin.id))
    datasets = DatasetService(store, tmp_path / "tmp")
    cards = CardService(store, datasets)
    dashboards = DashboardService(store, cards, datasets)
    calls: list[str] = []
    store._dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    for read, made in ((cards.page_visible(admin, FIRST), ["Query"]),  # summaries: no versions read
                       (datasets.page_visible(admin, FIRST), ["Query", "BatchGetItem"]),
                       (dashboards.page_visible(admin, FIRST), ["Query"])):
        calls.clear()
        assert len((await read).items) == FIRST.limit
        assert calls == made
    calls.clear()
    page = await dashboards.shares(admin, dashboard.id, FIRST)
    assert {s["email"] for s in page.items} <= {p.email for p in people} and len(page.items) == FIRST.limit
    assert calls == ["Query", "BatchGetItem"]  # the page, then the dashboard (who may see it) with the people
