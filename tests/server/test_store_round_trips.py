"""Store round trips per request on the AWS store (moto): a request's token costs none while its user is kept,
and what reads many records reads them in batches, so the calls a request makes do not grow with them."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import pytest

from server.services import audit

from .test_card_socket import connect
from .test_dashboards import document
from .test_datasets import upload
from .test_sessions import root  # noqa: F401 - fixture

pytestmark = pytest.mark.aws

CARD = {"title": "合計", "code": "1 + 1", "datasets": [], "parameters": []}
TILE = [{"key": "total", "title": "合計", "code": "1 + 1"}]


def counting(store: Any, tables: bool = False) -> collections.Counter[str]:
    """The DynamoDB calls ``store`` makes from now on, by operation (and table: ``GetItem cache``; a botocore
    event hook)."""
    calls: collections.Counter[str] = collections.Counter()

    def count(model: Any, params: Any = None, **kwargs: Any) -> None:
        table = str((params or {}).get("TableName", "")).removeprefix(store.table_prefix)
        calls.update([f"{model.name} {table}" if tables and table else model.name])

    store._dynamodb.meta.events.register("before-parameter-build", count)
    return calls


async def calls_of(api, calls: collections.Counter[str], path: str, token: str) -> dict[str, int]:
    await audit.written(api.app.store_instance)  # what the last request recorded, written after its answer
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
    assert await calls_of(api, calls, f"/api/cards/{card_id}", viewer) == {
        "GetItem": 3, "Query": 1, "BatchGetItem": 2}, "the card, its version, the dashboards holding it, a share"
    shown = await calls_of(api, calls, f"/api/cards/{card_id}", viewer)
    assert shown == {"GetItem": 1, "Query": 1, "BatchGetItem": 1}, \
        "the card, its version and the versions of the dashboards holding it are kept"
    await add(4)
    assert await calls_of(api, calls, "/api/cards", owner) == {"Query": 1}, "summaries: no versions read"
    assert few.get("BatchGetItem") is None, few  # (a GetItem: the sign-in, read again past SIGN_IN_CHECK_SECONDS)
    assert await calls_of(api, calls, f"/api/cards/{card_id}", viewer) == shown


async def test_a_live_dashboard_reads_what_its_tiles_share_once(start_server, root, shared_agent):  # noqa: F811
    """Opening a live dashboard whose tiles' results are cached reads the tiles' cards, their authors, their datasets
    and those datasets' versions in batches, once for all tiles (the tiles' freshness too), unless kept in the task's
    memory (as here: the runs read them, and the dashboard's record), and the viewer's share (rights) every time; a tile adds
    only its cache entry and the record of its outputs, and no write marks a result used that was used just now."""
    url, pem = shared_agent
    api = await start_server("aws", ServeApp__executor_urls=[url], ServeApp__executor_private_key=pem)
    owner = await api.login()
    viewer = await api.add_user("viewer@example.com")
    for name in ("a", "b"):
        assert (await upload(api, name, b"x\n1\n", owner)).code == 201
    calls = counting(api.app.store_instance, tables=True)
    opened = {}
    for tiles in (2, 4):
        keys = [f"k{n}" for n in range(tiles)]
        created = await api.fetch("POST", "/api/dashboards", token=owner, json_body=document(
            title=f"{tiles}", parameters=[], layout=[{"card": key, "x": 0, "y": 0, "w": 6, "h": 4} for key in keys],
            cards=[{"key": key, "title": key, "datasets": ["ab"[n % 2]], "code": f"load_dataset('{'ab'[n % 2]}')"
                    f"['x'].sum() + {n}"} for n, key in enumerate(keys)]))
        assert created.code == 201, created.body
        dashboard_id = created.json()["id"]
        assert (await api.fetch("PUT", f"/api/dashboards/{dashboard_id}/shares", token=owner,
                                json_body={"email": "viewer@example.com", "permission": "view"})).code == 200
        for key in keys:
            run = await api.fetch("POST", f"/api/dashboards/{dashboard_id}/cards/{key}/run", token=owner, json_body={})
            assert run.code == 200, run.body
        await asyncio.sleep(0.5)  # what the runs left going (pins, audit events) ends first
        calls.clear()
        socket = await connect(api, viewer, path=f"/api/dashboards/{dashboard_id}/ws")
        shown = {message["card"] for message in await socket.until("output") if message["type"] == "output"}
        while shown != set(keys):
            message = await socket.receive()
            shown |= {message["card"]} if message["type"] == "output" else set()
        assert all(message["type"] != "output" or message["result"]["cached"] for message in socket.seen)
        socket.close()
        opened[tiles] = {name: count for name, count in calls.items() if name.split()[-1] not in ("users", "tokens")}
    for tiles, made in opened.items():  # the viewer's user and sign-in aside (the first test's)
        assert made.pop("UpdateItem cache", 0) <= tiles, "at most each tile's pin: no mark of use of a result just used"
        assert made.pop("GetItem cache", 0) <= 2 * tiles, "each tile's cache entry and its outputs' record at most"
        # what decides rights only (the viewer's share, at the upgrade and for the snapshot): the dashboard's
        # record and version, the tiles' cards and versions, their authors, datasets and those datasets' versions
        # (read in batches when not kept) come from the task's memory, where the runs left them
        assert made == {"GetItem shares": 2}, made


def counting_all(store: Any) -> collections.Counter[str]:
    """The DynamoDB and S3 calls ``store`` makes from now on, by operation and table or bucket."""
    calls: collections.Counter[str] = collections.Counter()

    def count(model: Any, params: Any = None, **kwargs: Any) -> None:
        params = params or {}
        where = str(params.get("TableName", params.get("Bucket", next(iter(params.get("RequestItems", {})), ""))))
        where = where.removeprefix(store.table_prefix).rpartition("-")[2]
        calls.update([f"{model.name} {where}".strip()])

    for client in (store._dynamodb, store._s3):
        client.meta.events.register("before-parameter-build", count)
    return calls


async def test_a_cache_hit_reads_nothing_from_the_store(start_server, root, shared_agent):  # noqa: F811
    """With the bus up, a run answered from the cache reads no record from the store: the card, its version, its
    author, its dataset and that dataset's version come from the task's memory with the result, and its audit
    event is written after the answer. A viewer's hit still reads the dashboards' shares that grant it."""
    url, pem = shared_agent
    api = await start_server("aws", ServeApp__executor_urls=[url], ServeApp__executor_private_key=pem)
    owner = await api.login()
    viewer = await api.add_user("viewer@example.com")
    uploaded = await upload(api, "sales", b"x\n1\n2\n", owner)
    assert uploaded.code == 201, uploaded.body
    shared = (await api.fetch("POST", "/api/dashboards", token=owner, json_body=document(cards=[
        {"key": "total", "title": "合計", "datasets": ["sales"], "code": "load_dataset('sales')['x'].sum()"}]))).json()
    assert (await api.fetch("PUT", f"/api/dashboards/{shared['id']}/shares", token=owner,
                            json_body={"email": "viewer@example.com", "permission": "view"})).code == 200
    card_id = shared["document"]["cards"][0]["card"]
    calls = counting_all(api.app.store_instance)

    async def run(token: str, path: str = f"/api/cards/{card_id}/run") -> dict[str, int]:
        await asyncio.sleep(0.3)  # what the last request left going (its audit event) ends first
        calls.clear()
        response = await api.fetch("POST", path, token=token, json_body={})
        assert response.code == 200, response.body
        made = dict(calls)
        await audit.written(api.app.store_instance)
        return made

    await run(owner)  # runs it
    await run(owner)  # the first hit reads the result and what the run reads, and keeps them
    hit = await run(owner)
    assert {name: n for name, n in hit.items() if not name.endswith(" audit")} == {}, hit
    await run(viewer)
    seen = await run(viewer)
    assert {name: n for name, n in seen.items() if not name.endswith((" audit", " users", " tokens"))} == {
        "Query dashboards": 1, "BatchGetItem dashboards": 1, "GetItem shares": 1}, seen  # the card's dashboards
    # (their records and the viewer's share: rights are read on every request; their versions are kept)
    tile = f"/api/dashboards/{shared['id']}/cards/total/run"
    await run(viewer, tile)
    seen = await run(viewer, tile)  # the viewer's share (rights); the dashboard's record and version are kept
    assert {name: n for name, n in seen.items() if not name.endswith((" audit", " users", " tokens"))} == {
        "GetItem shares": 1}, seen


async def test_an_upload_reads_its_owners_usage_once(start_server):
    """An upload's storage quota is checked before its body is read (against its declared size) and again on what
    arrived, against one reading of what its owner stores: their datasets and every version of them."""
    api = await start_server("aws")
    token = await api.login()
    assert (await upload(api, "a", b"x\n1\n", token)).code == 201
    await audit.written(api.app.store_instance)
    calls = counting(api.app.store_instance, tables=True)
    assert (await upload(api, "b", b"x\n2\n", token)).code == 201
    made = {name: count for name, count in calls.items() if name.split()[-1] not in ("users", "tokens", "audit")}
    # the usage (a Query of the owner's datasets, a batch of their heads, one of their versions), the record, its
    # catalogue entry
    assert made == {"Query datasets": 1, "BatchGetItem": 2, "TransactWriteItems": 1, "BatchWriteItem": 1}, made


async def test_a_delete_reads_its_head_once(start_server):
    """Deleting a card or a dashboard reads its head once, for the caller's rights and the items that point at it."""
    api = await start_server("aws")
    token = await api.login()
    card = (await api.fetch("POST", "/api/cards", token=token, json_body=CARD)).json()
    dashboard = (await api.fetch("POST", "/api/dashboards", token=token, json_body=document(cards=TILE))).json()
    await audit.written(api.app.store_instance)
    calls = counting(api.app.store_instance, tables=True)
    for path, table in ((f"/api/cards/{card['id']}", "cards"), (f"/api/dashboards/{dashboard['id']}", "dashboards")):
        await audit.written(api.app.store_instance)
        calls.clear()
        assert (await api.fetch("DELETE", path, token=token)).code == 204
        assert calls[f"GetItem {table}"] == 1, dict(calls)


CALL_SECONDS = 0.2  # each call measured takes at least this long, as across a network: calls made together overlap


def slowly(request: Any, **kwargs: Any) -> None:
    time.sleep(CALL_SECONDS)


class SequentialCalls:
    """The longest chain of DynamoDB calls made one after another from now on (calls that overlap in time are in
    parallel; a botocore event hook on each call's start and end). Each call takes at least ``CALL_SECONDS``, so
    that calls made at once overlap even where a busy machine starts their threads apart."""

    def __init__(self, store: Any):
        self.spans: list[tuple[float, float, str]] = []
        self.started: dict[int, tuple[float, str]] = {}
        events = store._dynamodb.meta.events
        events.register("before-call", self.start)
        events.register("after-call", self.end)
        events.register("before-send", slowly)

    def start(self, model: Any, context: Any = None, **kwargs: Any) -> None:
        self.started[id(context)] = (time.monotonic(), model.name)

    def end(self, model: Any, context: Any = None, **kwargs: Any) -> None:
        began, name = self.started.pop(id(context))
        self.spans.append((began, time.monotonic(), name))

    def chain(self) -> list[str]:
        """The calls of the longest chain, in order: each starts after the one before it ended."""
        longest: dict[int, list[str]] = {}
        spans = sorted(self.spans)
        for i, (began, _, name) in enumerate(spans):
            before = [longest[j] for j, (_, ended, _) in enumerate(spans[:i]) if ended <= began]
            longest[i] = max(before, key=len, default=[]) + [name]
        return max(longest.values(), key=len, default=[])


async def test_a_save_reads_its_catalogue_entry_beside_its_transaction(start_server):
    """Saving a card reads its catalogue entry (for the list items its new title no longer has) at the same time
    as its transaction, not after it: the card, the transaction, the entry's write."""
    api = await start_server("aws")
    token = await api.login()
    card = (await api.fetch("POST", "/api/cards", token=token, json_body=CARD)).json()
    await api.fetch("GET", f"/api/cards/{card['id']}", token=token)  # the card kept in the task's memory
    await audit.written(api.app.store_instance)
    calls = SequentialCalls(api.app.store_instance)
    saved = await api.fetch("PUT", f"/api/cards/{card['id']}", token=token, json_body={**CARD, "title": "新"},
                            headers={"If-Match": '"1"'})
    assert saved.code == 200, saved.body
    chain = [name for name in calls.chain() if name != "PutItem"]  # the audit event, after the answer
    assert len(chain) == 3 and chain[-1] == "BatchWriteItem", chain  # the entry's read beside the transaction


class AnsweredChain(SequentialCalls):
    """The longest chain of DynamoDB and S3 calls made one after another and started before the answer came, but
    for PutItem (the audit event and the kept idempotent answer, written as the answer goes)."""

    def __init__(self, store: Any):
        super().__init__(store)
        store._s3.meta.events.register("before-call", self.start)
        store._s3.meta.events.register("after-call", self.end)
        store._s3.meta.events.register("before-send", slowly)

    async def of(self, api, method: str, path: str, token: str, **kwargs: Any) -> list[str]:
        await audit.written(api.app.store_instance)  # what the last request recorded, written after its answer
        self.spans.clear()
        sent = time.monotonic()  # what an earlier request left going may still run: not this request's
        response = await api.fetch(method, path, token=token, **kwargs)
        answered = time.monotonic()
        assert 200 <= response.code < 300, response.body
        await audit.written(api.app.store_instance)
        self.spans = [span for span in self.spans if sent <= span[0] < answered and span[2] != "PutItem"]
        return self.chain()


@pytest.fixture
async def writer(start_server):
    """A server on moto, a signed-in owner with a dataset, and a viewer; the chain of calls of a request."""
    api = await start_server("aws")
    token = await api.login()
    await api.add_user("viewer@example.com")
    dataset = (await upload(api, "a", b"x\n1\n", token)).json()
    return api, token, dataset, AnsweredChain(api.app.store_instance)


async def test_a_keyed_upload_reads_its_keys_answer_beside_its_owners_usage(writer):
    """A keyed upload (or new version) reads its Idempotency-Key's answer beside its owner's usage (before its body
    arrived), not after it."""
    api, token, dataset, chain = writer
    csv = {"Content-Type": "text/csv"}
    made = await chain.of(api, "POST", "/api/datasets?name=b", token, body=b"x\n1\n",
                          headers={**csv, "Idempotency-Key": "upload-b"})
    # the usage (a Query of the owner's datasets, a batch of their heads, one of their versions); the blob, the
    # record, its catalogue entry
    assert made == ["Query", "BatchGetItem", "BatchGetItem", "PutObject", "TransactWriteItems", "BatchWriteItem"], made
    made = await chain.of(api, "POST", f"/api/datasets/{dataset['id']}/versions", token, body=b"x\n2\n",
                          headers={**csv, "Idempotency-Key": "version-a"})
    # before its blob: the dataset (whose owner's usage counts), the usage; the dataset again, the version an
    # earlier attempt of the key may have stored
    assert made[:made.index("PutObject")] == ["GetItem", "Query", "BatchGetItem", "BatchGetItem", "GetItem",
                                              "GetItem"], made


async def test_a_share_reads_the_grantee_beside_the_callers_rights(writer):
    api, token, _, chain = writer
    dashboard = (await api.fetch("POST", "/api/dashboards", token=token, json_body=document(cards=TILE))).json()
    made = await chain.of(api, "PUT", f"/api/dashboards/{dashboard['id']}/shares", token,
                          json_body={"email": "viewer@example.com", "permission": "view"})
    # the email's item, then its user; the dashboard's catalogue entry, which the share's item under its grantee copies
    assert made == ["GetItem", "GetItem", "GetItem", "TransactWriteItems"], made


async def test_a_dataset_deletion_deletes_its_blobs_at_once(writer):
    api, token, dataset, chain = writer
    for n in (2, 3):
        added = await api.fetch("POST", f"/api/datasets/{dataset['id']}/versions", token=token, body=f"x\n{n}\n".encode(),
                                headers={"Content-Type": "text/csv"})
        assert added.code == 201, added.body
    made = await chain.of(api, "DELETE", f"/api/datasets/{dataset['id']}", token)
    # the dataset read twice (rights, then the items that point at it: it may have been renamed), its deletion,
    # its versions' (a Query, then the batch) beside its entry's (read, then deleted); its 3 blobs listed, then
    # deleted at once
    assert len(made) == 7 and made[-2:] == ["ListObjectsV2", "DeleteObject"], made


async def test_a_keyed_save_reads_no_kept_answer(start_server):
    """A save with an Idempotency-Key neither reads nor keeps an answer (it knows its own earlier attempt by the
    version's mark): the card, its version, the transaction beside the entry's read, the entry."""
    api = await start_server("aws")
    token = await api.login()
    card = (await api.fetch("POST", "/api/cards", token=token, json_body=CARD)).json()
    await audit.written(api.app.store_instance)
    calls = counting(api.app.store_instance, tables=True)
    saved = await api.fetch("PUT", f"/api/cards/{card['id']}", token=token, json_body={**CARD, "title": "新"},
                            headers={"If-Match": '"1"', "Idempotency-Key": "save-1"})
    assert saved.code == 200, saved.body
    await audit.written(api.app.store_instance)
    assert not {name for name in calls if name.endswith(" cache")}, dict(calls)  # the kept answers' table
