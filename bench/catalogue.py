"""A company-sized catalogue, listed as people list it: the first and a deep page of every list, filter and search.

Fills a store directly through the store API (no HTTP) with 100,000 cards, 10,000 dashboards, 10,000
datasets and 1,000 users (times ``--scale``), spread over owners (a few own many: the owner of each record
is drawn with a quadratic skew), every dashboard shared with two people, one card with 500 versions and one
dashboard shared with 300 people. Then it reads each list's first page and a deep page (a cursor half way
down the list, where keyset paging must cost the same) through the service methods the routes call, and
prints p50/p95 in ms and, on DynamoDB, the calls a page took (with ``≈ RCU``, the read units a search
read, estimated from the items DynamoDB scanned times their mean size, strongly consistent: 4 KB a unit).

Runs on the embedded store (SQLite, a temp directory) and on DynamoDB (a moto server on loopback); moto
takes a large fraction of a second per record written (one at a time: it is not safe for concurrent
transactions), so its fill is ``--aws-scale`` of the full one (0.005 by default: 500 cards, 50 dashboards,
50 datasets, 5 users; about 8 minutes on a busy 2-core machine). A page's calls do not depend on the fill,
except for searches (their read units) and ``shared`` (one Query per MB of the reader's shares, about a thousand).

Targets: embedded p95 < 50 ms; DynamoDB at most 2 calls a page outside search.

    python bench/catalogue.py [--store embedded|aws|both] [--scale 1] [--aws-scale 0.02] [--repeat 25]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from server.models import (Card, CardVersion, Dashboard, DashboardVersion, Dataset, DatasetVersion,  # noqa: E402
                           Share, User, iso_time)
from server.paging import ListQuery, Page, Scope, fold, number_key  # noqa: E402
from server.services.cards import CardService  # noqa: E402
from server.services.dashboards import DashboardService  # noqa: E402
from server.services.datasets import DatasetService  # noqa: E402
from server.storage.base import Store  # noqa: E402
from server.storage.catalog import CatalogEntry, card_entry, dashboard_entry, dataset_entry, matching  # noqa: E402

FULL = {"cards": 100_000, "dashboards": 10_000, "datasets": 10_000, "users": 1_000}
VERSIONS, SHARED_WIDELY = 500, 300
T0 = 1_767_225_600.0  # 2026-01-01
LIMIT = 50
PREFIXES = ["今月の", "週次 ", "Weekly ", "地域別の", "年次", "店舗別 "]
SUBJECTS = ["売上", "在庫", "SALES", "顧客数", "利益", "report", "売上レポート"]
TAGS = ["月次", "週次", "sales", "kpi", "在庫", "経営会議"]
DESCRIPTIONS = ["東京店の売上と在庫", "全店舗の週次レポート", "", "Weekly KPIs for the board", "顧客の推移"]
FILL_CHUNK = {"embedded": 500, "aws": 1}  # moto is not safe for concurrent transactions


@dataclasses.dataclass
class Filled:
    """What the fill made, mirrored as catalogue entries (to find a deep cursor of any query)."""

    users: list[User]
    entries: dict[str, list[tuple[CatalogEntry, None]]]
    shared_with: dict[str, set[str]]  # user id: dashboard ids shared with them
    versioned_card: str
    widely_shared: str
    dataset_of_note: str


def skewed(rng: random.Random, users: list[User]) -> User:
    """A user drawn so that the first ones own most (``index = n * u²``)."""
    return users[min(len(users) - 1, int(len(users) * rng.random() ** 2))]


async def in_chunks(calls: list[Callable[[], Awaitable[Any]]], size: int) -> None:
    for start in range(0, len(calls), size):
        await asyncio.gather(*(call() for call in calls[start:start + size]))


async def fill(store: Store, counts: dict[str, int], chunk: int) -> Filled:
    rng = random.Random(19)
    when = iter(iso_time(T0 + i) for i in range(10**9))
    users = [User(f"u{i:05d}{rng.getrandbits(32):08x}", f"user{i}@example.com", f"利用者{i}",
                  "admin" if i == 0 else "member", "$argon2id$x", next(when)) for i in range(counts["users"])]
    await in_chunks([lambda u=u: store.create_user(u) for u in users], chunk)

    datasets: list[Dataset] = []
    entries: dict[str, list[tuple[CatalogEntry, None]]] = {"card": [], "dashboard": [], "dataset": []}
    calls: list[Callable[[], Awaitable[Any]]] = []
    for i in range(counts["datasets"]):
        now, owner = next(when), skewed(rng, users)
        dataset = Dataset(f"d{i:06d}{rng.getrandbits(32):08x}", owner.id, f"{rng.choice(SUBJECTS)}_{i}", 1, now, now)
        version = DatasetVersion(dataset.id, 1, f"datasets/{dataset.id}/v1.parquet", 1000, (), 1000, "utf-8", ",",
                                 now, owner.id, 1000)
        datasets.append(dataset)
        entries["dataset"].append((dataset_entry(dataset), None))
        calls.append(lambda d=dataset, v=version: store.create_dataset(d, v))
    await in_chunks(calls, chunk)

    calls = []
    for i in range(counts["cards"]):
        now, owner = next(when), skewed(rng, users)
        card = Card(f"c{i:07d}{rng.getrandbits(32):08x}", owner.id, 1, now, now)
        title = f"{rng.choice(PREFIXES)}{rng.choice(SUBJECTS)} {i}"
        first = CardVersion(card.id, 1, title, "df = load_dataset('sales')\ndf.head()", (rng.choice(datasets).id,),
                            (), now, owner.id, tuple(rng.sample(TAGS, rng.randint(0, 2))))
        entries["card"].append((card_entry(card, first), None))
        calls.append(lambda c=card, v=first: store.create_card(c, v))
    await in_chunks(calls, chunk)
    versioned = entries["card"][0][0]
    for number in range(2, VERSIONS + 1):
        saved = next(when)
        await store.add_card_version(CardVersion(versioned.id, number, f"{versioned.title} v{number}", "1", (), (),
                                                 saved, versioned.owner_id), number - 1)
    entries["card"][0] = (dataclasses.replace(versioned, title=f"{versioned.title} v{VERSIONS}", updated_at=saved,
                                              search=fold(f"{versioned.title} v{VERSIONS}")), None)

    calls, shares = [], []
    shared_with: dict[str, set[str]] = {user.id: set() for user in users}
    for i in range(counts["dashboards"]):
        now, owner = next(when), skewed(rng, users)
        dashboard = Dashboard(f"b{i:06d}{rng.getrandbits(32):08x}", f"uid{i}", owner.id, 1, now, now)
        document = {"schemaVersion": 1, "title": f"{rng.choice(PREFIXES)}{rng.choice(SUBJECTS)} {i}",
                    "description": rng.choice(DESCRIPTIONS), "tags": rng.sample(TAGS, rng.randint(0, 2)),
                    "cards": [], "layout": []}
        entries["dashboard"].append((dashboard_entry(dashboard, DashboardVersion(dashboard.id, 1, document, now,
                                                                                owner.id)), None))
        calls.append(lambda d=dashboard, doc=document, n=now: store.create_dashboard(
            d, DashboardVersion(d.id, 1, doc, n, d.owner_id)))
        for grantee in rng.sample([u for u in users if u.id != owner.id], min(2, len(users) - 1)):
            shares.append(Share(dashboard.id, grantee.id, rng.choice(["view", "edit"]), next(when), owner.id))
    await in_chunks(calls, chunk)
    widely = entries["dashboard"][0][0]
    shares += [Share(widely.id, user.id, "view", next(when), widely.owner_id) for user in users[1:SHARED_WIDELY + 1]
               if user.id != widely.owner_id]
    for share in shares:
        shared_with[share.user_id].add(share.dashboard_id)
    await in_chunks([lambda s=share: store.put_share(s) for share in shares], chunk)
    popular = max(datasets, key=lambda d: sum(("dataset", d.id) in e.facets for e, _ in entries["card"][:2000])).id
    return Filled(users, entries, shared_with, versioned.id, widely.id, popular)


def deep_cursor(filled: Filled, kind: str, query: ListQuery) -> tuple[str, str] | None:
    """The sort key and id half way down the whole list of ``query``, as the store orders it."""
    shared = set().union(*(filled.shared_with[s.user_id] for s in query.scopes if s.kind == "shared"))
    found = matching(filled.entries[kind], query, shared)
    keys = sorted({record_id: (key, record_id) for key, record_id, _ in found}.values(),  # once if in two scopes
                  reverse=query.sort == "updated")
    return keys[len(keys) // 2] if len(keys) > 2 * query.limit else None


class Counter:
    """DynamoDB calls (and the items Queries scanned, with the bytes they returned) made while it counts."""

    def __init__(self, store: Store):
        self.calls: list[str] = []
        self.scanned = 0
        self.returned: list[int] = []
        client = getattr(store, "_dynamodb", None)
        if client is not None:
            client.meta.events.register("before-call.dynamodb", lambda model, **_: self.calls.append(model.name))
            client.meta.events.register("after-call.dynamodb.Query", self._query)

    def _query(self, parsed: dict[str, Any], **_: Any) -> None:
        self.scanned += parsed.get("ScannedCount", 0)
        self.returned += [len(json.dumps(item)) for item in parsed.get("Items", [])]

    def reset(self) -> None:
        self.calls, self.scanned, self.returned = [], 0, []


@dataclasses.dataclass
class Scenario:
    name: str
    read: Callable[[ListQuery], Awaitable[Page[Any]]]
    query: ListQuery
    deep: tuple[str, str] | None
    search: bool = False


def scenarios(filled: Filled, store: Store, services: dict[str, Any]) -> list[Scenario]:
    cards, dashboards, datasets = services["cards"], services["dashboards"], services["datasets"]
    admin, heavy = filled.users[0], filled.users[1]
    everyone, theirs = (Scope("all"),), (Scope("owner", heavy.id),)
    mine_and_shared = (Scope("owner", heavy.id), Scope("shared", heavy.id))
    found: list[Scenario] = []

    def add(name: str, kind: str, user: User, query: ListQuery, **extra: Any) -> None:
        search = query.search is not None
        if kind == "card":
            def read(q: ListQuery) -> Awaitable[Page[Any]]:
                return cards.page_visible(user, dataclasses.replace(q, scopes=()))
        elif kind == "dataset":
            def read(q: ListQuery) -> Awaitable[Page[Any]]:
                return datasets.page_visible(user, dataclasses.replace(q, scopes=()))
        else:
            def read(q: ListQuery) -> Awaitable[Page[Any]]:
                return dashboards.page_visible(user, dataclasses.replace(q, scopes=()), **extra)
        found.append(Scenario(name, read, query, deep_cursor(filled, kind, query), search))

    q = ListQuery
    add("cards, admin: all", "card", admin, q(everyone, LIMIT))
    add("cards, admin: all by title", "card", admin, q(everyone, LIMIT, sort="title"))
    add("cards, member: own", "card", heavy, q(theirs, LIMIT))
    add("cards, admin: owner=", "card", admin, q(everyone, LIMIT, owner_id=heavy.id))
    add("cards, admin: tag=月次", "card", admin, q(everyone, LIMIT, tag="月次"))
    add("cards, member: tag=sales by title", "card", heavy, q(theirs, LIMIT, sort="title", tag="sales"))
    add("cards, admin: dataset=", "card", admin, q(everyone, LIMIT, dataset_id=filled.dataset_of_note))
    add("cards, admin: q=売上", "card", admin, q(everyone, LIMIT, search=fold("売上")))
    add("cards, admin: q=顧客数", "card", admin, q(everyone, LIMIT, search=fold("顧客数")))
    add("cards, admin: q=Weekly SA", "card", admin, q(everyone, LIMIT, search=fold("Weekly SA")))
    add("cards, member: q=売上", "card", heavy, q(theirs, LIMIT, search=fold("売上")))
    add("dashboards, admin: all", "dashboard", admin, q(everyone, LIMIT))
    add("dashboards, member: own + shared", "dashboard", heavy, q(mine_and_shared, LIMIT))
    add("dashboards, member: shared=true", "dashboard", heavy, q((Scope("shared", heavy.id),), LIMIT), shared_only=True)
    add("dashboards, admin: tag=経営会議", "dashboard", admin, q(everyone, LIMIT, tag="経営会議"))
    add("dashboards, admin: q=東京", "dashboard", admin, q(everyone, LIMIT, search=fold("東京")))
    add("datasets, admin: all", "dataset", admin, q(everyone, LIMIT))
    add("datasets, admin: by name", "dataset", admin, q(everyone, LIMIT, sort="title"))
    add("datasets, member: own", "dataset", heavy, q(theirs, LIMIT))
    add("datasets, admin: q=売上", "dataset", admin, q(everyone, LIMIT, search=fold("売上")))

    users = sorted(filled.users, key=lambda u: (u.created_at, u.id), reverse=True)
    middle = users[len(users) // 2]
    found.append(Scenario("users, admin", store.page_users, q((), LIMIT),
                          (middle.created_at, middle.id) if len(users) > 2 * LIMIT else None))
    found.append(Scenario(f"shares of a dashboard ({SHARED_WIDELY} people)",
                          lambda qq: dashboards.shares(admin, filled.widely_shared, qq), q((), LIMIT), None))
    found.append(Scenario(f"card versions ({VERSIONS})", lambda qq: cards.versions(admin, filled.versioned_card, qq),
                          q((), LIMIT), (number_key(VERSIONS // 2), filled.versioned_card)))
    return found


def quantile(values: list[float], share: float) -> float:
    return sorted(values)[min(len(values) - 1, math.ceil(share * len(values)) - 1)]


async def measure(store: Store, scenario: Scenario, repeat: int, counter: Counter,
                  shares_cursor: tuple[str, str] | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for depth in ("first", "deep"):
        after = scenario.deep if depth == "deep" else None
        if depth == "deep" and after is None and scenario.name.startswith("shares"):
            after = shares_cursor
        if depth == "deep" and after is None:
            continue
        query = dataclasses.replace(scenario.query, after=after)
        times, calls, units = [], [], []
        for _ in range(repeat):
            counter.reset()
            start = time.perf_counter()
            page = await scenario.read(query)
            times.append((time.perf_counter() - start) * 1000)
            calls.append(len(counter.calls))
            if counter.returned:
                units.append(math.ceil(counter.scanned * statistics.mean(counter.returned) / 4096))
        result[depth] = {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(quantile(times, 0.95), 1),
                         "items": len(page.items), "total": page.total,
                         "dynamodb_calls": max(calls) if getattr(store, "_dynamodb", None) else None,
                         "rcu": max(units) if units and scenario.search else None}
    return result


async def run(kind: str, scale: float, repeat: int) -> dict[str, Any]:
    counts = {name: max(3, round(count * scale)) for name, count in FULL.items()}
    counts["users"] = max(counts["users"], SHARED_WIDELY + 2 if kind == "embedded" else 3)
    with tempfile.TemporaryDirectory() as data:
        store: Store
        moto, sqlite = None, None
        if kind == "embedded":
            from server.storage.sqlite import SQLiteStore

            store = sqlite = SQLiteStore(data_dir=data)
            await sqlite.open()
            await sqlite._run(sqlite._query, "PRAGMA synchronous=OFF")  # the fill only: no fsync a record
        else:
            from moto.server import ThreadedMotoServer

            from server.storage.aws import AWSStore
            from tests.conftest import AWS_TEST_ENV, aws_store_config

            os.environ.update(AWS_TEST_ENV)
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto.start()
            host, port = moto.get_host_and_port()
            # moto on a busy machine can take seconds a call: a retry of a transaction that went through would
            # be a conflict (moto keeps no ClientRequestToken), so wait rather than retry.
            store = AWSStore(data_dir=data, dynamodb_read_timeout=60.0, **aws_store_config(f"http://{host}:{port}"))
            await store.create_schema()
        try:
            started = time.perf_counter()
            filled = await fill(store, counts, FILL_CHUNK[kind])
            fill_seconds = time.perf_counter() - started
            if sqlite is not None:
                await sqlite._run(sqlite._query, "PRAGMA synchronous=FULL")
            print(f"\n{kind}: filled {counts} in {fill_seconds:.0f} s", flush=True)
            datasets = DatasetService(store, Path(data) / "tmp")
            cards = CardService(store, datasets)
            services: dict[str, Any] = {"cards": cards, "datasets": datasets,
                                        "dashboards": DashboardService(store, cards, datasets)}
            counter = Counter(store)
            first_shares = await services["dashboards"].shares(filled.users[0], filled.widely_shared, ListQuery((), 150))
            shares_cursor = ((first_shares.items[-1]["created_at"], first_shares.items[-1]["user_id"])
                             if first_shares.next else None)
            results = {}
            print(f"{'list':42} {'first p50/p95 ms':>17} {'deep p50/p95 ms':>16} {'calls':>6} {'≈RCU':>6}  items")
            for scenario in scenarios(filled, store, services):
                figures = await measure(store, scenario, repeat, counter, shares_cursor)
                results[scenario.name] = figures
                first, deep = figures["first"], figures.get("deep")
                calls = max(f["dynamodb_calls"] for f in figures.values()) if first["dynamodb_calls"] is not None else "-"
                rcu = max((f["rcu"] for f in figures.values() if f["rcu"] is not None), default="-")
                print(f"{scenario.name:42} {first['p50_ms']:>8}/{first['p95_ms']:<8} "
                      f"{(str(deep['p50_ms']) + '/' + str(deep['p95_ms'])) if deep else '(short list)':>16} "
                      f"{calls:>6} {rcu:>6}  {first['items']}" + (f" of {first['total']}" if first["total"] else ""),
                      flush=True)
            return {"counts": counts, "fill_seconds": round(fill_seconds), "lists": results}
        finally:
            await store.close()
            if moto is not None:
                moto.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["embedded", "aws", "both"], default="both")
    parser.add_argument("--scale", type=float, default=1.0, help="the embedded fill, as a share of the full one")
    parser.add_argument("--aws-scale", type=float, default=0.005, help="the moto fill, as a share of the full one")
    parser.add_argument("--repeat", type=int, default=25, help="reads of each page")
    args = parser.parse_args()
    results = {}
    for kind in (["embedded", "aws"] if args.store == "both" else [args.store]):
        results[kind] = await run(kind, args.scale if kind == "embedded" else args.aws_scale, args.repeat)
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
