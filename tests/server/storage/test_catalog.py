"""Pages of the catalogue (``Store.page_cards``, ``page_dashboards``, ``page_datasets``) on both backends,
and, on SQLite, that a page reads at most ``limit + 1`` entries of one index."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from pathlib import Path

import pytest

from server.models import Card, CardVersion, Dashboard, DashboardVersion, RefreshSchedule, Share, User, utcnow
from server.errors import NotFoundError
from server.paging import ListQuery, Page, Scope, fold
from server.services.cards import CardService
from server.services.dashboards import DashboardService
from server.services.datasets import DatasetService
from server.storage.aws_catalog import DynamoCatalog
from server.storage.sqlite import DB_FILE, MIGRATIONS, SQLiteStore
from tests.server.storage.test_contract import make_dataset, make_user

ALL = (Scope("all"),)


async def add_card(store, owner: User, title: str, tags: tuple[str, ...] = (), datasets: tuple[str, ...] = (),
                   when: str | None = None) -> Card:
    now = when or utcnow()
    card = Card(uuid.uuid4().hex, owner.id, 1, now, now)
    await store.create_card(card, CardVersion(card.id, 1, title, "1", datasets, (), now, owner.id, tags))
    return card


async def everything(read, query: ListQuery) -> list:
    """Every record of ``query``, page after page."""
    records, after = [], None
    while True:
        page: Page = await read(dataclasses.replace(query, after=after))
        assert len(page.items) <= query.limit
        records += [getattr(item, "record", item) for item in page.items]  # a card's or dashboard's: Listed
        if page.next is None:
            return records
        after = page.next


@pytest.fixture
async def owners(store) -> tuple[User, User]:
    ana, ben = make_user("ana@example.com"), make_user("ben@example.com")
    await store.create_user(ana)
    await store.create_user(ben)
    return ana, ben


async def test_pages_cover_every_card_once_in_order(store, owners):
    """Page after page gives each card once: newest change first, or by title in code-point order."""
    ana, _ = owners
    titles = ["b", "B", "a", "ア", "売上", "あ", "Z", "10", "2", "ｱ"]
    cards = [await add_card(store, ana, title, when=f"2026-01-01T00:00:{i:02d}.000Z") for i, title in enumerate(titles)]
    by_update = await everything(store.page_cards, ListQuery(ALL, limit=3))
    assert [c.id for c in by_update] == [c.id for c in reversed(cards)]
    by_title = await everything(store.page_cards, ListQuery(ALL, limit=4, sort="title"))
    title_of = dict(zip((c.id for c in cards), titles, strict=True))
    assert [title_of[c.id] for c in by_title] == sorted(titles)  # Python sorts str by code point


async def test_a_cursor_stays_right_under_inserts(store, owners):
    """Cards added while a reader pages (newer ones, so before the cursor) neither repeat nor shift the rest."""
    ana, _ = owners
    cards = [await add_card(store, ana, f"c{i}", when=f"2026-01-01T00:00:{i:02d}.000Z") for i in range(6)]
    first = await store.page_cards(ListQuery(ALL, limit=3))
    await add_card(store, ana, "new", when="2026-01-02T00:00:00.000Z")
    second = await store.page_cards(ListQuery(ALL, limit=3, after=first.next))
    assert [c.record.id for c in first.items + second.items] == [c.id for c in reversed(cards)]
    assert second.next is None


async def test_filters_by_scope_owner_tag_and_dataset(store, owners):
    """Scopes and filters combine: one owner's, a tag's, a dataset's cards."""
    ana, ben = owners
    dataset = uuid.uuid4().hex
    tagged = await add_card(store, ana, "tagged", tags=("月次", "sales"))
    reads = await add_card(store, ben, "reads", datasets=(dataset,))
    await add_card(store, ben, "plain")
    mine = await store.page_cards(ListQuery((Scope("owner", ana.id),), limit=10))
    assert [c.record.id for c in mine.items] == [tagged.id]
    assert [c.record.id for c in (await store.page_cards(ListQuery(ALL, limit=10, tag="月次"))).items] == [tagged.id]
    assert [c.record.id for c in (await store.page_cards(ListQuery(ALL, limit=10, dataset_id=dataset))).items] == [reads.id]
    assert (await store.page_cards(ListQuery(ALL, limit=10, tag="sales", owner_id=ben.id))).items == []


async def test_search_is_folded_substring_of_titles_and_descriptions(store, owners):
    """Two-character Japanese, half-width kana, any case, and dashboard descriptions are found."""
    ana, _ = owners
    sales = await add_card(store, ana, "今月の売上レポート")
    kana = await add_card(store, ana, "ｳﾘｱｹﾞ速報")
    latin = await add_card(store, ana, "Weekly SALES")
    await add_card(store, ana, "在庫")

    async def found(text: str) -> set[str]:
        return {c.record.id for c in (await store.page_cards(ListQuery(ALL, limit=10, search=fold(text)))).items}

    assert await found("売上") == {sales.id}
    assert await found("売上レポ") == {sales.id}
    assert await found("ウリアゲ") == {kana.id}
    assert await found("sales") == {latin.id}
    assert await found("ly Sa") == {latin.id}
    assert await found("%") == set() and await found("_") == set()
    now = utcnow()
    dashboard = Dashboard(uuid.uuid4().hex, "u1", ana.id, 1, now, now)
    document = {"schemaVersion": 1, "title": "週報", "description": "東京店の売上と在庫", "tags": ["店舗"],
                "cards": [], "layout": []}
    await store.create_dashboard(dashboard, DashboardVersion(dashboard.id, 1, document, now, ana.id))
    page = await store.page_dashboards(ListQuery(ALL, limit=10, search=fold("東京店")))
    assert [d.record.id for d in page.items] == [dashboard.id]
    assert [d.record.id for d in (await store.page_dashboards(ListQuery(ALL, limit=10, tag="店舗"))).items] == [dashboard.id]


async def test_a_new_version_moves_the_entry(store, owners):
    """A card's new version changes its title, tags and place; a deleted card leaves every list."""
    ana, _ = owners
    card = await add_card(store, ana, "old", tags=("a",), when="2026-01-01T00:00:00.000Z")
    other = await add_card(store, ana, "other", when="2026-01-01T00:00:01.000Z")
    now = utcnow()
    await store.add_card_version(CardVersion(card.id, 2, "新しい題", "1", (), (), now, ana.id, ("b",)), 1)
    assert [c.record.id for c in (await store.page_cards(ListQuery(ALL, limit=10))).items] == [card.id, other.id]
    assert (await store.page_cards(ListQuery(ALL, limit=10, tag="a"))).items == []
    assert [c.record.id for c in (await store.page_cards(ListQuery(ALL, limit=10, tag="b"))).items] == [card.id]
    assert [c.record.id for c in (await store.page_cards(ListQuery(ALL, limit=10, search=fold("新しい")))).items] == [card.id]
    await store.delete_card(card.id)
    assert [c.record.id for c in (await store.page_cards(ListQuery(ALL, limit=10))).items] == [other.id]
    assert (await store.page_cards(ListQuery(ALL, limit=10, search=fold("新しい")))).items == []


async def test_dashboards_of_an_owner_and_shared_with_them(store, owners):
    """The owner scope and the shared scope together give mine and those shared with me, once each."""
    ana, ben = owners
    now = utcnow()
    made = []
    for owner, title in ((ana, "ana's"), (ben, "shared"), (ben, "not shared")):
        dashboard = Dashboard(uuid.uuid4().hex, uuid.uuid4().hex, owner.id, 1, now, now)
        document = {"schemaVersion": 1, "title": title, "cards": [], "layout": []}
        await store.create_dashboard(dashboard, DashboardVersion(dashboard.id, 1, document, now, owner.id))
        made.append(dashboard)
    await store.put_share(Share(made[1].id, ana.id, "view", now, ben.id))
    await store.put_share(Share(made[0].id, ana.id, "edit", now, ana.id))  # one's own: listed once
    scopes = (Scope("owner", ana.id), Scope("shared", ana.id))
    both = await everything(store.page_dashboards, ListQuery(scopes, limit=1, sort="title"))
    assert [d.id for d in both] == [made[0].id, made[1].id]
    shared = await store.page_dashboards(ListQuery((Scope("shared", ana.id),), limit=10))
    assert [d.record.id for d in shared.items] == [made[1].id]


async def add_dashboard(store, owner: User, title: str) -> Dashboard:
    now = utcnow()
    dashboard = Dashboard(uuid.uuid4().hex, uuid.uuid4().hex, owner.id, 1, now, now)
    document = {"schemaVersion": 1, "title": title, "cards": [], "layout": []}
    await store.create_dashboard(dashboard, DashboardVersion(dashboard.id, 1, document, now, owner.id))
    return dashboard


async def retitle(store, dashboard: Dashboard, version: int, title: str) -> None:
    document = {"schemaVersion": 1, "title": title, "cards": [], "layout": []}
    await store.add_dashboard_version(DashboardVersion(dashboard.id, version, document, utcnow(), dashboard.owner_id),
                                      version - 1)


async def shared_with(store, user: User) -> list[tuple[str, str, str | None]]:
    """(id, title, permission) of the dashboards shared with ``user``, as their list pages them."""
    found, after = [], None
    while True:
        page = await store.page_dashboards(ListQuery((Scope("shared", user.id),), limit=2, after=after))
        found += [(listed.record.id, listed.summary["title"], listed.shared_as) for listed in page.items]
        if page.next is None:
            return found
        after = page.next


async def test_a_shared_list_follows_grants_saves_and_revocations(store, owners):
    """Each dashboard shared with a reader is listed with the permission its share grants, its current title (after a
    save), its new permission (after a change), and not after the share is revoked; mine carry no permission."""
    ana, ben = owners
    first, second = await add_dashboard(store, ben, "一つ目"), await add_dashboard(store, ben, "二つ目")
    mine = await add_dashboard(store, ana, "自分の")
    now = utcnow()
    await store.put_share(Share(first.id, ana.id, "view", now, ben.id))
    await store.put_share(Share(second.id, ana.id, "edit", now, ben.id))
    assert sorted(await shared_with(store, ana)) == sorted([(first.id, "一つ目", "view"), (second.id, "二つ目", "edit")])
    await retitle(store, first, 2, "一つ目 改")
    await store.put_share(Share(second.id, ana.id, "view", now, ben.id))
    assert sorted(await shared_with(store, ana)) == sorted([(first.id, "一つ目 改", "view"), (second.id, "二つ目", "view")])
    found = await store.page_dashboards(ListQuery((Scope("shared", ana.id),), limit=5, search=fold("目 改")))
    assert [d.record.id for d in found.items] == [first.id]
    await store.delete_share(first.id, ana.id)
    await retitle(store, first, 3, "一つ目 改々")
    assert await shared_with(store, ana) == [(second.id, "二つ目", "view")]
    own = await store.page_dashboards(ListQuery((Scope("owner", ana.id),), limit=5))
    assert [(d.record.id, d.shared_as) for d in own.items] == [(mine.id, None)]


async def test_pages_carry_summaries_and_dashboards_are_found_by_their_cards(store, owners):
    """A page of cards or dashboards has each one's summary of its current version (no document); the dashboards
    that hold a card are those whose current version holds it."""
    ana, _ = owners
    card, other = await add_card(store, ana, "売上", tags=("月次",)), await add_card(store, ana, "在庫")
    now = utcnow()
    dashboard = Dashboard(uuid.uuid4().hex, uuid.uuid4().hex, ana.id, 1, now, now)
    first = {"schemaVersion": 1, "title": "店", "description": "説明", "tags": ["店舗"], "layout": [],
             "cards": [{"key": "a", "card": card.id}, {"key": "b", "card": other.id}]}
    await store.create_dashboard(dashboard, DashboardVersion(dashboard.id, 1, first, now, ana.id))
    [listed] = (await store.page_dashboards(ListQuery(ALL, limit=5))).items
    assert listed.summary == {"title": "店", "description": "説明", "tags": ["店舗"], "card_count": 2,
                              "parameter_count": 0, "updated_by": ana.id}
    assert [c.summary["tags"] for c in (await store.page_cards(ListQuery(ALL, limit=5, tag="月次"))).items] == [["月次"]]
    assert [d.id for d in await store.dashboards_with_card(card.id)] == [dashboard.id]
    second = {**first, "cards": [{"key": "b", "card": other.id}]}
    await store.add_dashboard_version(DashboardVersion(dashboard.id, 2, second, utcnow(), ana.id), 1)
    assert await store.dashboards_with_card(card.id) == []
    assert [d.current_version for d in await store.dashboards_with_card(other.id)] == [2]
    assert (await store.page_dashboards(ListQuery(ALL, limit=5))).items[0].summary["card_count"] == 1
    await store.delete_dashboard(dashboard.id)
    assert await store.dashboards_with_card(other.id) == []


async def test_dashboards_are_found_by_their_cards_datasets_and_by_their_refresh(store, owners):
    """The dashboards that hold a card reading a dataset, and those with a refresh, come from indexes kept with every
    save (what new data and the refresh schedule read instead of every document)."""
    ana, _ = owners
    reads = await add_card(store, ana, "売上", datasets=("d1",))
    now = utcnow()
    dashboard, plain = (Dashboard(uuid.uuid4().hex, uuid.uuid4().hex, ana.id, 1, now, now) for _ in range(2))
    document = {"schemaVersion": 1, "title": "店", "layout": [], "refresh": {"every_seconds": 600},
                "cards": [{"key": "a", "card": reads.id}]}
    await store.create_dashboard(dashboard, DashboardVersion(dashboard.id, 1, document, now, ana.id))
    await store.create_dashboard(plain, DashboardVersion(plain.id, 1, {**document, "refresh": None, "cards": []},
                                                         now, ana.id))
    assert [d.id for d in await store.dashboards_reading("d1")] == [dashboard.id]
    assert await store.dashboards_reading("d2") == []
    assert await store.refresh_schedules() == [RefreshSchedule(dashboard.id, 600, now)]
    await store.add_dashboard_version(DashboardVersion(dashboard.id, 2, {**document, "refresh": {"every_seconds": 60}},
                                                       utcnow(), ana.id), 1)
    assert await store.refresh_schedules() == [RefreshSchedule(dashboard.id, 60, now)]
    await store.add_card_version(CardVersion(reads.id, 2, "売上", "1", ("d2",), (), utcnow(), ana.id), 1)
    assert (await store.dashboards_reading("d1"), [d.id for d in await store.dashboards_reading("d2")]) == (
        [], [dashboard.id])
    await store.add_dashboard_version(DashboardVersion(dashboard.id, 3, {**document, "refresh": None}, utcnow(),
                                                       ana.id), 2)
    assert await store.refresh_schedules() == []
    await store.add_dashboard_version(DashboardVersion(dashboard.id, 4, document, utcnow(), ana.id), 3)
    await store.delete_dashboard(dashboard.id)
    assert (await store.refresh_schedules(), await store.dashboards_reading("d2")) == ([], [])


async def test_datasets_page_by_name_and_newest_version(store, owners):
    """Datasets sort by name as their title, and a new version makes one the newest."""
    ana, _ = owners
    first, first_version = make_dataset(ana, "b")
    await store.create_dataset(first, first_version)
    second, second_version = make_dataset(ana, "a")
    await store.create_dataset(second, second_version)
    by_name = await store.page_datasets(ListQuery(ALL, limit=10, sort="title"))
    assert [d.name for d in by_name.items] == ["a", "b"]
    later = dataclasses.replace(first_version, version=2, created_at="2099-01-01T00:00:00.000Z")
    await store.add_dataset_version(later, 1)
    assert [d.id for d in (await store.page_datasets(ListQuery(ALL, limit=10))).items] == [first.id, second.id]


# SQLite: what a page reads ----------------------------------------------------------
@pytest.fixture
async def sqlite_store(tmp_path) -> SQLiteStore:
    instance = SQLiteStore(data_dir=str(tmp_path / "data"))
    await instance.open()
    yield instance
    await instance.close()


@pytest.mark.parametrize("query", [
    ListQuery(ALL, limit=5),
    ListQuery(ALL, limit=5, sort="title"),
    ListQuery((Scope("owner", "OWNER"),), limit=5),
    ListQuery((Scope("owner", "OWNER"),), limit=5, sort="title", tag="t1"),
    ListQuery(ALL, limit=5, dataset_id="DATASET"),
], ids=["all", "title", "owner", "owner-tag-title", "dataset"])
async def test_a_page_reads_limit_plus_one_entries_in_index_order(sqlite_store, tmp_path, query):
    """Each page's SELECT walks one index in the page's order (no sort step) and stops after
    ``limit + 1`` rows; a deep page (after a cursor) as well as the first."""
    owner = make_user()
    await sqlite_store.create_user(owner)
    dataset = uuid.uuid4().hex
    for i in range(40):
        await add_card(sqlite_store, owner, f"card {i:02d}", tags=(f"t{i % 2}",), datasets=(dataset,))
    query = dataclasses.replace(
        query, scopes=tuple(Scope(s.kind, owner.id if s.user_id else "") for s in query.scopes),
        dataset_id=dataset if query.dataset_id else None)
    statements: list[str] = []
    conn = sqlite_store._conn  # the store's own connection: its statements, as SQLite runs them
    first = await sqlite_store.page_cards(query)
    await sqlite_store._run(conn.set_trace_callback, statements.append)
    deep = await sqlite_store.page_cards(dataclasses.replace(query, after=first.next))
    await sqlite_store._run(conn.set_trace_callback, None)
    assert len(first.items) == len(deep.items) == 5
    (select,) = [s for s in statements if s.startswith("SELECT h.*")]
    assert select.endswith(f"LIMIT {query.limit + 1}")
    explain = sqlite3.connect(Path(sqlite_store.data_dir) / DB_FILE)
    plan = " | ".join(row[3] for row in explain.execute("EXPLAIN QUERY PLAN " + select))
    explain.close()
    assert "TEMP B-TREE" not in plan, plan
    assert "INDEX catalog" in plan and "SCAN d " not in plan + " ", plan


async def test_migration_lists_what_was_there(tmp_path):
    """A database from before the catalogue gets every card, dashboard and dataset in its lists."""
    data = tmp_path / "data"
    store = SQLiteStore(data_dir=str(data))
    await store.open()
    owner = make_user()
    await store.create_user(owner)
    card = await add_card(store, owner, "古い売上", datasets=("d1",))
    dataset, version = make_dataset(owner, "在庫")
    await store.create_dataset(dataset, version)
    now = utcnow()
    dashboard = Dashboard(uuid.uuid4().hex, uuid.uuid4().hex, owner.id, 1, now, now)
    document = {"schemaVersion": 1, "title": "店", "description": "長" * 400, "cards": [{"key": "k", "card": card.id}],
                "layout": [], "refresh": {"every_seconds": 600}}
    await store.create_dashboard(dashboard, DashboardVersion(dashboard.id, 1, document, now, owner.id))
    await store.close()
    conn = sqlite3.connect(data / DB_FILE)
    catalogue = next(number for number, script in enumerate(MIGRATIONS) if "CREATE TABLE catalog " in script)
    assert len(MIGRATIONS) == catalogue + 11, "undo the migrations after the catalogue's here too"
    conn.executescript(f"BEGIN; DROP TABLE catalog_text; DROP TABLE catalog_facets; DROP TABLE catalog;"
                       " ALTER TABLE card_versions DROP COLUMN tags;"
                       " ALTER TABLE dataset_versions DROP COLUMN stored_bytes;"  # the migrations after it
                       " ALTER TABLE output_tables DROP COLUMN result_key;"
                       " DROP INDEX users_by_created; DROP INDEX shares_by_dashboard;"
                       " ALTER TABLE datasets DROP COLUMN aliases;"
                       " ALTER TABLE dataset_versions DROP COLUMN request_mark;"
                       " ALTER TABLE card_versions DROP COLUMN request_mark;"
                       " ALTER TABLE dashboard_versions DROP COLUMN request_mark;"
                       " DROP TABLE dashboard_cards; DROP TABLE dashboard_refresh;"
                       " DROP TABLE kernel_records;"  # its holder and notebooks columns and index with it
                       f" PRAGMA user_version = {catalogue}; COMMIT;")
    conn.close()
    store = SQLiteStore(data_dir=str(data))
    await store.open()
    try:
        assert [c.record.id for c in (await store.page_cards(ListQuery(ALL, limit=5, search=fold("売上")))).items] == [card.id]
        listed = (await store.page_cards(ListQuery(ALL, limit=5, dataset_id="d1"))).items
        assert [(c.record.id, c.summary["datasets"], c.summary["parameter_count"]) for c in listed] == [(card.id, ["d1"], 0)]
        assert [d.id for d in (await store.page_datasets(ListQuery(ALL, limit=5))).items] == [dataset.id]
        [board] = (await store.page_dashboards(ListQuery(ALL, limit=5))).items
        assert (board.summary["title"], board.summary["card_count"], len(board.summary["description"])) == ("店", 1, 300)
        assert [d.id for d in await store.dashboards_with_card(card.id)] == [dashboard.id]
        assert await store.refresh_schedules() == [RefreshSchedule(dashboard.id, 600, now)]
        assert await store.list_kernel_records("u1", "jupyter") == []  # the notebooks' column and index are there
    finally:
        await store.close()


# DynamoDB: what a page costs ---------------------------------------------------------
@pytest.mark.parametrize("query", [
    ListQuery(ALL, limit=5),
    ListQuery(ALL, limit=5, sort="title"),
    ListQuery((Scope("owner", "OWNER"),), limit=5, tag="t1"),
    ListQuery(ALL, limit=5, owner_id="OWNER", sort="title"),
], ids=["all", "title", "owner-tag", "owner-filter"])
async def test_a_page_is_one_query_on_dynamodb(store, store_kind, query):
    """A first page and a deep page are one DynamoDB call each: a Query, never a Scan
    (counted through botocore's event hook)."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    owner = make_user()
    await store.create_user(owner)
    for i in range(20):
        await add_card(store, owner, f"card {i:02d}", tags=(f"t{i % 2}",))
    query = dataclasses.replace(query, scopes=tuple(Scope(s.kind, owner.id if s.user_id else "") for s in query.scopes),
                                owner_id=owner.id if query.owner_id else None)
    calls: list[str] = []
    store._dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    first = await store.page_cards(query)
    assert calls == ["Query"]
    deep = await store.page_cards(dataclasses.replace(query, after=first.next))
    assert calls == ["Query", "Query"] and len(first.items) == len(deep.items) == 5
    assert not {c.record.id for c in first.items} & {c.record.id for c in deep.items}


def dynamodb_calls(store) -> list[str]:
    """The names of the DynamoDB calls the store makes from now on (botocore's event hook)."""
    calls: list[str] = []
    store._dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    return calls


async def test_a_members_dashboards_and_a_dashboards_shares_are_two_calls_a_page_on_dynamodb(store, store_kind, owners,
                                                                                            tmp_path):
    """Mine and those shared with me: a Query of each (the permission comes with the shared ones); only those shared:
    one Query; a dashboard's shares with their grantees, to its owner, a grantee or anyone else: a Query and one
    BatchGetItem (of the dashboard, the reader's share and the grantees)."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    ana, ben = owners
    for i in range(3):
        await add_dashboard(store, ana, f"自分の {i}")
        theirs = await add_dashboard(store, ben, f"共有 {i}")
        await store.put_share(Share(theirs.id, ana.id, "edit", utcnow(), ben.id))
    grantees = [make_user(f"g{i}@example.com") for i in range(3)]
    for grantee in grantees:
        await store.create_user(grantee)
        await store.put_share(Share(theirs.id, grantee.id, "view", utcnow(), ben.id))
    datasets = DatasetService(store, tmp_path)
    cards = CardService(store, datasets)
    dashboards = DashboardService(store, cards, datasets)
    calls = dynamodb_calls(store)
    first = await dashboards.page_visible(ana, ListQuery((), limit=4))
    assert calls == ["Query", "Query"]
    deep = await dashboards.page_visible(ana, ListQuery((), limit=4, after=first.next))
    assert calls == ["Query"] * 4 and deep.next is None
    access = {listed.summary["title"]: granted for listed, granted in first.items + deep.items}
    assert access == {**{f"自分の {i}": "owner" for i in range(3)}, **{f"共有 {i}": "edit" for i in range(3)}}
    calls.clear()
    shared = await dashboards.page_visible(ana, ListQuery((), limit=10), shared_only=True)
    assert calls == ["Query"] and sorted(listed.summary["title"] for listed, _ in shared.items) == ["共有 0", "共有 1", "共有 2"]
    for reader in (ben, grantees[0]):
        calls.clear()
        page = await dashboards.shares(reader, theirs.id, ListQuery((), limit=2))
        assert calls == ["Query", "BatchGetItem"] and len(page.items) == 2 and all(s["email"] for s in page.items)
    calls.clear()
    stranger = make_user("stranger@example.com")
    with pytest.raises(NotFoundError):
        await dashboards.shares(stranger, theirs.id, ListQuery((), limit=2))
    assert calls == ["Query", "BatchGetItem"]


async def test_a_grant_that_meets_a_save_copies_the_saved_entry_on_dynamodb(store, store_kind, owners, monkeypatch):
    """A grant copies the dashboard's entry on the condition that it is still the one read: a save between the read
    and the grant's transaction makes it read the entry again."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    ana, ben = owners
    dashboard = await add_dashboard(store, ben, "前")
    stale = store._catalogue.entry_fields("dashboard", dashboard.id)
    await retitle(store, dashboard, 2, "後")
    reads = []
    read_entry = DynamoCatalog.entry_fields

    def entry_fields(self, kind, record_id):  # the first read is the one from before the save
        reads.append(record_id)
        return stale if len(reads) == 1 else read_entry(self, kind, record_id)

    monkeypatch.setattr(DynamoCatalog, "entry_fields", entry_fields)
    await store.put_share(Share(dashboard.id, ana.id, "view", utcnow(), ben.id))
    assert len(reads) == 2
    assert await shared_with(store, ana) == [(dashboard.id, "後", "view")]


async def test_a_share_revoked_during_a_save_is_not_listed_again_on_dynamodb(store, store_kind, owners, monkeypatch):
    """A save copies its entry only to the share items that still exist: a revocation that lands between the save's
    read of the shares and its copies leaves nothing behind."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    ana, ben = owners
    dashboard = await add_dashboard(store, ben, "前")
    await store.put_share(Share(dashboard.id, ana.id, "view", utcnow(), ben.id))
    transact = store._transact

    def revoking_first(actions, **options):
        if any(action.get("Update", {}).get("TableName") == store._table("shares") for action in actions):
            # the save's copies to the shares it read: the revocation lands just before them
            monkeypatch.setattr(store, "_transact", transact)
            assert store._delete_share(dashboard.id, ana.id)
        return transact(actions, **options)

    monkeypatch.setattr(store, "_transact", revoking_first)
    await retitle(store, dashboard, 2, "後")
    assert store._transact == transact  # the copies ran
    assert await shared_with(store, ana) == []
    item = store._dynamodb.get_item(TableName=store._table("shares"),
                                    Key={"pk": {"S": f"USER#{ana.id}"}, "sk": {"S": f"DASHBOARD#{dashboard.id}"}})
    assert "Item" not in item


async def test_init_tables_copies_entries_to_older_shares_on_dynamodb(store, store_kind, owners):
    """A share made before its item carried a copy of the entry is still listed (from the entry: a BatchGetItem more),
    ``bi fsck`` reports its dashboard, and ``bi init-tables`` copies the entry to it once."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    ana, ben = owners
    dashboard = await add_dashboard(store, ben, "古い共有")
    await store.put_share(Share(dashboard.id, ana.id, "edit", utcnow(), ben.id))
    store._dynamodb.update_item(TableName=store._table("shares"),
                                UpdateExpression="REMOVE listed, listed_search, listed_version",
                                Key={"pk": {"S": f"USER#{ana.id}"}, "sk": {"S": f"DASHBOARD#{dashboard.id}"}})
    store._dynamodb.delete_item(TableName=store._table("dashboards"),
                                Key={"pk": {"S": "INDEX#share-copies"}, "sk": {"S": "DONE"}})
    assert [(gap.problem, gap.id) for gap in await store.catalogue_gaps()] == [("unlisted", dashboard.id)]
    calls = dynamodb_calls(store)
    assert await shared_with(store, ana) == [(dashboard.id, "古い共有", "edit")]
    assert calls == ["Query", "BatchGetItem"]
    await store.create_schema(buckets=False)
    assert await store.catalogue_gaps() == []
    calls.clear()
    assert await shared_with(store, ana) == [(dashboard.id, "古い共有", "edit")]
    assert calls == ["Query"]


async def test_init_tables_lists_what_was_there_on_dynamodb(store, store_kind, owners):
    """A deploy that adds the catalogue table: ``bi init-tables`` creates it and lists every record."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    ana, _ = owners
    card = await add_card(store, ana, "古い売上", tags=("月次",))
    dataset, version = make_dataset(ana, "在庫")
    await store.create_dataset(dataset, version)
    store._dynamodb.delete_table(TableName=store._table("catalog"))
    await store.create_schema(buckets=False)
    assert [c.record.id for c in (await store.page_cards(ListQuery(ALL, limit=5, tag="月次"))).items] == [card.id]
    assert [d.id for d in (await store.page_datasets(ListQuery(ALL, limit=5))).items] == [dataset.id]


async def test_init_tables_indexes_what_was_there_on_dynamodb(store, store_kind, owners):
    """A deploy that adds the refresh index: ``bi init-tables`` indexes the dashboards that have a refresh."""
    if store_kind != "aws":
        pytest.skip("DynamoDB only")
    ana, _ = owners
    now = utcnow()
    dashboard = Dashboard(uuid.uuid4().hex, uuid.uuid4().hex, ana.id, 1, now, now)
    document = {"schemaVersion": 1, "title": "店", "layout": [], "cards": [], "refresh": {"every_seconds": 600}}
    await store.create_dashboard(dashboard, DashboardVersion(dashboard.id, 1, document, now, ana.id))
    store._dynamodb.delete_item(TableName=store._table("dashboards"), Key={"pk": {"S": "REFRESH"},
                                                                         "sk": {"S": f"DASHBOARD#{dashboard.id}"}})
    store._dynamodb.delete_item(TableName=store._table("dashboards"), Key={"pk": {"S": "INDEX#refresh"},
                                                                         "sk": {"S": "DONE"}})
    assert await store.refresh_schedules() == []
    await store.create_schema(buckets=False)
    assert await store.refresh_schedules() == [RefreshSchedule(dashboard.id, 600, now)]


async def test_a_search_counts_its_total_only_up_to_a_bound(sqlite_store, monkeypatch):
    """A search's total is counted while few match; past ``SEARCH_TOTAL_MAX`` the page has none (the count
    would read every match), and a list without a search is counted whole."""
    monkeypatch.setattr("server.storage.sqlite.SEARCH_TOTAL_MAX", 3)
    owner = make_user()
    await sqlite_store.create_user(owner)
    for i in range(5):
        await add_card(sqlite_store, owner, f"売上 {i}" if i < 4 else "在庫")
    assert (await sqlite_store.page_cards(ListQuery(ALL, limit=2, search=fold("売上")))).total is None
    assert (await sqlite_store.page_cards(ListQuery(ALL, limit=2, search=fold("在庫")))).total == 1
    assert (await sqlite_store.page_cards(ListQuery(ALL, limit=2, search=fold("売上 1")))).total == 1  # trigram
    assert (await sqlite_store.page_cards(ListQuery(ALL, limit=2))).total == 5
