"""The AWS store behind a fault-injecting proxy (``tests/fault_proxy.py``): throttling, 5xx and lost
responses never lose data, orphan objects or cache broken results (one test per reproduction of issue 20).

Each server here makes 3 attempts per AWS call, so a fault injected ``times=2`` after a first one
outlasts botocore's retries, and the service sees the failure.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import boto3
from structlog.testing import capture_logs
import pytest

from server.services import audit
from server.services.fsck import fsck

from ..fault_proxy import (RESET_AFTER, RESET_BEFORE, SERVER_ERROR, THROTTLE, FaultProxy, Latency, Stall, dynamodb,
                           s3)
from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from .test_datasets import upload
from .test_dashboards import document
from .test_sessions import root  # noqa: F401 - fixture

pytestmark = pytest.mark.aws

CSV = "店舗,売上\n東京,10\n大阪,20\n".encode()
ATTEMPTS = 3


@pytest.fixture(scope="module")
def proxy(moto_endpoint):
    """One proxy in front of the session's moto server, for the module."""
    proxy = FaultProxy(moto_endpoint)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def faults(proxy):
    proxy.clear()
    yield proxy
    proxy.clear()


@pytest.fixture
def faulty_server(start_server, faults):
    """Start a server on the AWS store whose every call goes through the proxy."""
    def start(**traits):
        return start_server("aws", AWSStore__dynamodb_endpoint_url=faults.endpoint,
                            AWSStore__s3_endpoint_url=faults.endpoint, AWSStore__max_attempts=ATTEMPTS, **traits)
    return start


def lose_answers(faults: FaultProxy, match) -> None:
    """The next matching call is done but its answer lost, and its retries never arrive."""
    faults.inject(RESET_AFTER, match, times=1)
    faults.inject(RESET_BEFORE, match, times=ATTEMPTS - 1)


def objects(moto_endpoint: str, bucket: str, prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def is_transaction_on(prefix: str):
    return lambda r: r.operation == "TransactWriteItems" and f'"{prefix}#'.encode() in r.body


async def test_r1_upload_whose_commit_answer_was_lost_keeps_its_parquet(faulty_server, faults):
    """R1: the dataset's transaction commits and its answer is lost; the upload is read back, not undone."""
    api = await faulty_server()
    token = await api.login()
    lose_answers(faults, dynamodb("TransactWriteItems"))
    created = await upload(api, "売上", CSV, token)
    assert [f for _, _, f in faults.faults()] == [RESET_AFTER] + [RESET_BEFORE] * (ATTEMPTS - 1)
    tokens = {json.loads(r.body)["ClientRequestToken"] for r, _ in faults.seen if is_transaction_on("DATASET")(r)}
    faults.clear()
    assert len(tokens) == 1 and re.fullmatch("[0-9a-f]{36}", tokens.pop()), "one token, derived from the request"
    [dataset] = (await api.fetch("GET", "/api/datasets", token=token)).json()["datasets"]
    preview = await api.fetch("GET", f"/api/datasets/{dataset['id']}/preview", token=token)
    assert preview.code == 200, preview.body
    assert preview.json()["rows"] == [["東京", 10], ["大阪", 20]]
    assert created.code == 201 and created.json()["id"] == dataset["id"], created.body


async def test_r1b_new_version_whose_commit_answer_was_lost_keeps_its_parquet(faulty_server, faults):
    """R1b: the same for a new version: the current version keeps its blob."""
    api = await faulty_server()
    token = await api.login()
    dataset = (await upload(api, "売上", CSV, token)).json()
    lose_answers(faults, dynamodb("TransactWriteItems"))
    added = await api.fetch("POST", f"/api/datasets/{dataset['id']}/versions", token=token,
                            body="店舗,売上\n札幌,30\n".encode(), headers={"Content-Type": "text/csv"})
    faults.clear()
    preview = await api.fetch("GET", f"/api/datasets/{dataset['id']}/preview", token=token)
    assert preview.code == 200, preview.body
    assert preview.json()["version"] == 2 and preview.json()["rows"] == [["札幌", 30]]
    assert added.code == 201, added.body


async def test_an_upload_whose_transaction_lands_after_every_timeout_keeps_its_parquet(faulty_server, faults):
    """Every attempt of a dataset upload's transaction is delayed past its read timeout, and the read back
    after them finds nothing (503); the attempts land later. The Parquet blob is not deleted: the record that
    lands points at it, and ``bi fsck --repair`` lists it."""
    delay = 2.0
    api = await faulty_server(AWSStore__dynamodb_read_timeout=0.5)
    token = await api.login()
    faults.inject(Latency(delay), dynamodb("TransactWriteItems"), times=ATTEMPTS)
    lost = await api.fetch("POST", "/api/datasets?name=売上", body=CSV, token=token,
                           headers={"Content-Type": "text/csv"})
    await asyncio.sleep(delay + 0.5)  # the delayed attempts land
    faults.clear()
    assert lost.code == 503 and lost.error_code == "storage_unavailable", lost.body
    store = api.app.store_instance
    problems = await fsck(store, repair=True)
    assert {p.kind for p in problems} <= {"unlisted"} and all(p.repaired for p in problems), problems
    [dataset] = (await api.fetch("GET", "/api/datasets", token=token)).json()["datasets"]
    preview = await api.fetch("GET", f"/api/datasets/{dataset['id']}/preview", token=token)
    assert preview.code == 200 and preview.json()["rows"] == [["東京", 10], ["大阪", 20]], preview.body
    assert await fsck(store) == []


@pytest.mark.parametrize("in_progress", [True, False], ids=["in-progress", "run-again"])
async def test_an_upload_whose_retry_meets_its_own_slow_first_attempt_keeps_its_parquet(faulty_server, faults,
                                                                                        moto_endpoint, in_progress):
    """The first attempt of a dataset upload's transaction reaches the store, which commits it but answers after
    the read timeout; the SDK's retry (the same write, the same token) arrives meanwhile: DynamoDB answers it
    TransactionInProgressException (in-progress), a store without tokens runs it again and finds its condition
    failed (run-again). Either way the upload answers 201 with its rows, not 409 for its own name, and its
    Parquet blob stays."""
    api = await faulty_server(AWSStore__dynamodb_read_timeout=0.5)
    token = await api.login()
    faults.in_progress = in_progress
    faults.inject(Stall(4.0), is_transaction_on("DATASET"), times=1)  # past every attempt (3, backoff at most 3 s)
    created = await upload(api, "売上", CSV, token)
    sent = [r for r, _ in faults.seen if is_transaction_on("DATASET")(r)]
    assert len(sent) == (ATTEMPTS if in_progress else 2), "in progress: retried; run again: refused, not retried"
    faults.clear()
    assert created.code == 201, created.body
    preview = await api.fetch("GET", f"/api/datasets/{created.json()['id']}/preview", token=token)
    assert preview.code == 200 and preview.json()["rows"] == [["東京", 10], ["大阪", 20]], preview.body
    assert objects(moto_endpoint, api.app.store_instance.datasets_bucket, f"datasets/{created.json()['id']}/")


async def test_an_edit_whose_retry_meets_its_own_slow_first_attempt_is_saved(faulty_server, faults):
    """The same for a card edit without an Idempotency-Key, on a store that runs the retry again: 200 with
    version 2, not 409 from its own write."""
    api = await faulty_server(AWSStore__dynamodb_read_timeout=0.5)
    faults.in_progress = False
    token = await api.login()
    body = {"title": "合計", "code": "1 + 1", "datasets": [], "parameters": []}
    created = await api.fetch("POST", "/api/cards", token=token, json_body=body)
    assert created.code == 201, created.body
    faults.inject(Stall(3.0), is_transaction_on("CARD"), times=1)
    edited = await api.fetch("PUT", f"/api/cards/{created.json()['id']}", token=token,
                             json_body={**body, "code": "2 + 2"}, headers={"If-Match": '"1"'})
    faults.clear()
    assert edited.code == 200 and edited.json()["version"] == 2, edited.body
    stored = await api.fetch("GET", f"/api/cards/{created.json()['id']}/versions/2", token=token)
    assert stored.json()["code"] == "2 + 2", stored.body


async def test_a_refresh_whose_retry_meets_its_own_slow_rotation_keeps_the_sign_in(faulty_server, faults):
    """A refresh token's rotation (a conditional update: no token) reaches the store, which applies it but answers
    after the read timeout; the SDK's retry finds the rotation moved on, by its own first attempt. That is no
    reuse of the refresh token: the refresh answers new tokens and the sign-in goes on (no false alarm)."""
    api = await faulty_server(AWSStore__dynamodb_read_timeout=0.5)
    signed_in = await api.fetch("POST", "/api/auth/login", json_body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert signed_in.code == 200, signed_in.body
    faults.inject(Stall(3.0), lambda r: r.operation == "UpdateItem" and b'"SESSION#' in r.body, times=1)
    refreshed = await api.fetch("POST", "/api/auth/refresh", json_body={"refresh_token": signed_in.json()["refresh_token"]})
    faults.clear()
    assert refreshed.code == 200, refreshed.body
    again = await api.fetch("POST", "/api/auth/refresh", json_body={"refresh_token": refreshed.json()["refresh_token"]})
    assert again.code == 200, again.body


async def test_a_lease_whose_retry_meets_its_own_slow_first_attempt_is_taken(faulty_server, faults):
    """A lease's take (a conditional update: no token) is applied but answered after the read timeout; the SDK's
    retry finds the lease held, by its own first attempt: the lease is taken (not left to expire unused)."""
    api = await faulty_server(AWSStore__dynamodb_read_timeout=0.5)
    store = api.app.store_instance
    faults.inject(Stall(3.0), lambda r: r.operation == "UpdateItem" and b'"LEASE#' in r.body, times=1)
    lease = await store.acquire_lease("refresh:slow", "task-a", time.time() + 60)
    faults.clear()
    assert lease is not None and lease.holder == "task-a", lease
    assert await store.acquire_lease("refresh:slow", "task-b", time.time() + 60) is None


def is_catalogue_write(noun: str):
    return lambda r: r.operation == "BatchWriteItem" and f'"ENTRY#{noun}#'.encode() in r.body and b"PutRequest" in r.body


async def test_catalogue_writes_that_land_after_their_cards_were_deleted(faulty_server, faults):
    """Two card creates' catalogue writes (not transactions: no token) are delayed past their read timeout; their
    retries list the cards, which are then deleted; the delayed first attempts land after that and list the cards
    again (``listed_orphan``), when the store does not write their entries again later (``late_write_seconds``: as
    a task that stopped). The lists still answer (with the ghosts), the cards are 404, and a repeated DELETE (204)
    or ``bi fsck --repair`` takes an entry away."""
    delay = 4.0
    api = await faulty_server(AWSStore__dynamodb_read_timeout=0.5, AWSStore__late_write_seconds=600)
    token = await api.login()
    store = api.app.store_instance
    ghosts = []
    for title in ("合計", "平均"):
        faults.inject(Latency(delay), is_catalogue_write("card"), times=1)
        created = await api.fetch("POST", "/api/cards", token=token, json_body={
            "title": title, "code": "1 + 1", "datasets": [], "parameters": []})
        assert created.code == 201, created.body
        ghosts.append(created.json()["id"])
        deleted = await api.fetch("DELETE", f"/api/cards/{ghosts[-1]}", token=token)
        assert deleted.code == 204, deleted.body
    expected = sorted(("listed_orphan", f"card/{card_id}") for card_id in ghosts)
    for _ in range(int(delay * 10) + 50):  # the delayed attempts land
        if sorted((p.kind, p.subject) for p in await fsck(store)) == expected:
            break
        await asyncio.sleep(0.1)
    faults.clear()
    assert sorted((p.kind, p.subject) for p in await fsck(store)) == expected
    for path in ("/api/cards", "/api/cards?q=合計", "/api/cards?sort=title"):
        listed = await api.fetch("GET", path, token=token)
        assert listed.code == 200, listed.body
    assert sorted(c["id"] for c in listed.json()["cards"]) == sorted(ghosts), "listed until cleared"
    assert [(await api.fetch("GET", f"/api/cards/{c}", token=token)).code for c in ghosts] == [404, 404]
    again = await api.fetch("DELETE", f"/api/cards/{ghosts[0]}", token=token)
    assert again.code == 204, again.body
    assert [(p.kind, p.subject, p.repaired) for p in await fsck(store, repair=True)] == [
        ("listed_orphan", f"card/{ghosts[1]}", True)]
    assert (await api.fetch("GET", "/api/cards", token=token)).json()["cards"] == []
    assert await fsck(store) == []


async def test_a_catalogue_write_that_lands_late_is_written_again(faulty_server, faults):
    """The same ghost, within one task: ``late_write_seconds`` after a catalogue write whose attempt may land late,
    the store writes the entry again from the record as it is then (the card is gone: no entry)."""
    delay = 3.0
    api = await faulty_server(AWSStore__dynamodb_read_timeout=0.5, AWSStore__late_write_seconds=delay + 2)
    token = await api.login()
    store = api.app.store_instance
    faults.inject(Latency(delay), is_catalogue_write("card"), times=1)
    created = await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "合計", "code": "1 + 1", "datasets": [], "parameters": []})
    assert created.code == 201, created.body
    card_id = created.json()["id"]
    assert (await api.fetch("DELETE", f"/api/cards/{card_id}", token=token)).code == 204
    seen = []  # whether the card has an entry, every 0.1 s
    for _ in range(int((2 * delay + 5) * 10)):
        seen.append(await store._run(store._catalogue.entry, "card", card_id) is not None)
        if seen[-1] is False and True in seen:
            break
        await asyncio.sleep(0.1)
    faults.clear()
    assert True in seen, "the delayed write landed after the deletion"
    assert seen[-1] is False, "and its entry was deleted again"
    assert await fsck(store) == []


async def test_r2_output_whose_table_did_not_reach_s3_is_not_cached(faulty_server, faults, root,  # noqa: F811
                                                                     shared_agent):
    """R2: a DataFrame whose Arrow table failed to reach S3 is not served again from the cache."""
    url, pem = shared_agent
    api = await faulty_server(ServeApp__executor_urls=[url], ServeApp__executor_private_key=pem)
    token = await api.login()
    card = await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "表", "code": "import pandas as pd\npd.DataFrame({'a': [1, 2, 3]})", "datasets": [],
        "parameters": []})
    assert card.code == 201, card.body
    faults.inject(SERVER_ERROR, s3("PUT", "tables/"), times=ATTEMPTS)  # the table's every attempt, answer or not
    first = await api.fetch("POST", f"/api/cards/{card.json()['id']}/run", token=token, json_body={})
    assert first.code == 200, first.body
    again = await api.fetch("POST", f"/api/cards/{card.json()['id']}/run", token=token, json_body={})
    assert again.code == 200, again.body
    assert again.json()["cached"] is False, "a result whose table is missing is a miss"
    [output_id] = [o["output_id"] for o in again.json()["outputs"] if "output_id" in o]
    rows = await api.fetch("GET", f"/api/outputs/{output_id}/rows", token=token)
    assert rows.code == 200, rows.body


async def random_card(faulty_server, shared_agent):
    """A server whose agent is the shared one, its admin's token and the run URL of a card with a new result each run."""
    url, pem = shared_agent
    api = await faulty_server(ServeApp__executor_urls=[url], ServeApp__executor_private_key=pem)
    token = await api.login()
    card = await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "乱数", "code": "import random\nrandom.random()", "datasets": [], "parameters": []})
    assert card.code == 201, card.body
    return api, token, f"/api/cards/{card.json()['id']}/run"


async def test_a_run_is_answered_before_its_result_is_stored_and_its_readers_wait(faulty_server, faults, root,  # noqa: F811
                                                                                   shared_agent):
    """A cache-miss run answers once it has run, while its result's blob is still on its way to S3; a run of the same
    key at once is a cache hit of that result (it waits for the store), and a dashboard tile's pin of the result's
    record (``result_id``) waits for the record."""
    api, token, url = await random_card(faulty_server, shared_agent)
    faults.inject(Latency(2.0), s3("PUT", "results/"), times=1)
    first = await api.fetch("POST", url, token=token, json_body={})
    assert first.code == 200 and first.json()["cached"] is False, first.body
    result_id = first.json()["result_id"]
    store = api.app.store_instance
    assert await store.get_output_table(result_id) is None, "answered before its result was stored"
    pinned = asyncio.ensure_future(api.app.card_runs.tables.pin([result_id]))
    again = await api.fetch("POST", url, token=token, json_body={})
    assert again.code == 200, again.body
    assert again.json()["cached"] is True and again.json()["result_id"] == result_id
    assert again.json()["outputs"] == first.json()["outputs"]
    await pinned
    assert (await store.get_output_table(result_id)).pinned is True


async def test_a_result_whose_cache_entry_was_not_written_leaves_no_record(faulty_server, faults, root,  # noqa: F811
                                                                            shared_agent, moto_endpoint):
    """The cache entry of a run answered already fails to be written (throttled past every attempt): the failure is
    logged, the record charging its outputs blob is deleted, and the next run of the key runs again."""
    api, token, url = await random_card(faulty_server, shared_agent)
    faults.inject(THROTTLE, lambda r: r.operation == "PutItem" and b'"output_ids"' in r.body, times=ATTEMPTS)
    with capture_logs() as logs:
        first = await api.fetch("POST", url, token=token, json_body={})
        assert first.code == 200, first.body
        again = await api.fetch("POST", url, token=token, json_body={})
    assert again.code == 200 and again.json()["cached"] is False, again.body
    assert again.json()["outputs"] != first.json()["outputs"]
    assert [e["result_id"] for e in logs if e["event"] == "card_result_not_stored"] == [first.json()["result_id"]]
    store = api.app.store_instance
    assert await store.get_output_table(first.json()["result_id"]) is None
    await api.app.card_runs.settled()
    kept = await store.get_output_table(again.json()["result_id"])
    assert kept.blob_key in objects(moto_endpoint, store.outputs_bucket, "results/")


async def test_r3_dashboard_delete_cut_short_finishes_when_repeated(faulty_server, faults):
    """R3: deleting a dashboard is throttled half way; a second DELETE finishes it (204, nothing left)."""
    api = await faulty_server()
    token = await api.login()
    await api.add_user("viewer@example.com")
    assert (await upload(api, "売上", CSV, token)).code == 201
    dashboard = (await api.fetch("POST", "/api/dashboards", token=token, json_body=document())).json()
    shared = await api.fetch("PUT", f"/api/dashboards/{dashboard['id']}/shares", token=token,
                             json_body={"email": "viewer@example.com", "permission": "view"})
    assert shared.code == 200, shared.body
    faults.inject(THROTTLE, dynamodb("BatchWriteItem"))
    first = await api.fetch("DELETE", f"/api/dashboards/{dashboard['id']}", token=token)
    faults.clear()
    second = await api.fetch("DELETE", f"/api/dashboards/{dashboard['id']}", token=token)
    store = api.app.store_instance
    assert await store.list_dashboard_versions(dashboard["id"]) == []
    assert await store.list_shares(dashboard["id"]) == []
    assert first.code in (204, 503) and second.code == 204, (first.body, second.body)


async def test_r4_dataset_delete_cut_short_finishes_when_repeated(faulty_server, faults, moto_endpoint):
    """R4: S3 fails the blob delete; a second DELETE finishes it (204, no object left)."""
    api = await faulty_server()
    token = await api.login()
    dataset = (await upload(api, "売上", CSV, token)).json()
    bucket = api.app.store_instance.datasets_bucket
    assert objects(moto_endpoint, bucket, f"datasets/{dataset['id']}/")
    faults.inject(SERVER_ERROR, s3("DELETE"))
    first = await api.fetch("DELETE", f"/api/datasets/{dataset['id']}", token=token)
    faults.clear()
    second = await api.fetch("DELETE", f"/api/datasets/{dataset['id']}", token=token)
    assert objects(moto_endpoint, bucket, f"datasets/{dataset['id']}/") == []
    assert first.code in (204, 503) and second.code == 204, (first.body, second.body)


async def test_r5_failed_dashboard_create_leaves_no_card_and_its_retry_makes_one(faulty_server, faults):
    """R5: the dashboard's transaction is throttled after its inline card was saved: no card stays,
    and the client's retry of the same document (same Idempotency-Key) makes one dashboard and one card."""
    api = await faulty_server()
    token = await api.login()
    assert (await upload(api, "売上", CSV, token)).code == 201
    faults.inject(THROTTLE, is_transaction_on("DASHBOARD"))
    key = {"Idempotency-Key": "create-dashboard-1"}
    first = await api.fetch("POST", "/api/dashboards", token=token, json_body=document(), headers=key)
    faults.clear()
    assert (await api.fetch("GET", "/api/cards", token=token)).json()["cards"] == [], "no card without its dashboard"
    retry = await api.fetch("POST", "/api/dashboards", token=token, json_body=document(), headers=key)
    assert len((await api.fetch("GET", "/api/cards", token=token)).json()["cards"]) == 1
    assert len((await api.fetch("GET", "/api/dashboards", token=token)).json()["dashboards"]) == 1
    assert first.code == 503 and retry.code == 201, (first.body, retry.body)


async def test_r6_create_and_edit_whose_answers_were_lost_are_not_repeated(faulty_server, faults):
    """R6: a card create and an edit are stored but their answers lost; they answer what was stored,
    and a retry with the same Idempotency-Key gets the first result, not a duplicate or a 409."""
    api = await faulty_server()
    token = await api.login()
    body = {"title": "合計", "code": "1 + 1", "datasets": [], "parameters": []}
    create_key = {"Idempotency-Key": "create-card-1"}
    lose_answers(faults, is_transaction_on("CARD"))
    created = await api.fetch("POST", "/api/cards", token=token, json_body=body, headers=create_key)
    faults.clear()
    retried = await api.fetch("POST", "/api/cards", token=token, json_body=body, headers=create_key)
    assert len((await api.fetch("GET", "/api/cards", token=token)).json()["cards"]) == 1, "no duplicate"
    assert created.code == 201 and retried.code == 201, (created.body, retried.body)
    assert retried.json()["id"] == created.json()["id"]

    card_id, edit_key = created.json()["id"], {"Idempotency-Key": "edit-card-1", "If-Match": '"1"'}
    lose_answers(faults, is_transaction_on("CARD"))
    edited = await api.fetch("PUT", f"/api/cards/{card_id}", token=token, json_body={**body, "code": "2 + 2"},
                             headers=edit_key)
    faults.clear()
    again = await api.fetch("PUT", f"/api/cards/{card_id}", token=token, json_body={**body, "code": "2 + 2"},
                            headers=edit_key)
    assert again.code == 200 and again.json()["version"] == 2, again.body
    assert edited.code == 200 and edited.json()["version"] == 2, edited.body


async def test_an_outage_answers_503_logs_one_line_and_shows_in_ready_and_metrics(faulty_server, faults):
    """While the store is out: 503 ``storage_unavailable`` with Retry-After (a write says it may have been
    saved), one log line per failed call and no traceback; /api/ready is not ready, then degraded for a while
    once the store is back; /metrics counts the failed calls and attempts."""
    token = "scrape-" + "s" * 32
    api = await faulty_server(ServeApp__metrics_token=token)
    me = await api.login()
    await audit.written(api.app.store_instance)  # the sign-in's event, written after its answer, is not in the outage
    faults.outage()
    with capture_logs() as logs:
        read = await api.fetch("GET", "/api/cards", token=me)
        write = await api.fetch("POST", "/api/cards", token=me, json_body={"title": "t", "code": "1", "datasets": [],
                                                                            "parameters": []})
    out = await api.fetch("GET", "/api/ready")
    faults.clear()
    for response in (read, write):
        assert response.code == 503 and response.error_code == "storage_unavailable", response.body
        assert response.headers["Retry-After"] == "5"
    assert "may have been saved" in write.json()["error"]["message"]
    assert "may have been saved" not in read.json()["error"]["message"]
    problems = [e for e in logs if e["log_level"] in ("warning", "error") and e["event"] != "request"]
    assert [e["event"] for e in problems] == ["store_unavailable"] * 2, problems
    assert not any("exc_info" in e for e in logs)
    assert out.code == 503 and out.json()["checks"]["store"]["ok"] is False
    back = (await api.fetch("GET", "/api/ready")).json()["checks"]["store"]
    assert back["ok"] is True and back["degraded"] is True and "connection" in back["reason"]
    metrics = (await api.fetch("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})).body.decode()
    counted = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
               if line.startswith("bi_store_")}
    # the two requests, and /api/ready's ping if it failed within its time
    assert counted['bi_store_errors_total{reason="connection"}'] >= 2
    assert counted['bi_store_failed_attempts_total{service="dynamodb"}'] >= 2 * ATTEMPTS


async def test_a_create_whose_answer_and_read_back_were_lost_is_not_repeated(faulty_server, faults):
    """A card create is stored, its answer lost and its read back fails too (503: the outcome unknown; the card
    is not listed either); the client's retry with the same Idempotency-Key answers the stored card, and lists
    it, instead of creating another."""
    api = await faulty_server()
    token = await api.login()
    body = {"title": "合計", "code": "1 + 1", "datasets": [], "parameters": []}
    key = {"Idempotency-Key": "create-card-2"}
    lose_answers(faults, is_transaction_on("CARD"))
    faults.inject(RESET_BEFORE, lambda r: r.operation == "GetItem" and any(  # every read back, after the write
        is_transaction_on("CARD")(seen) for seen, _ in faults.seen))
    lost = await api.fetch("POST", "/api/cards", token=token, json_body=body, headers=key)
    assert lost.code == 503 and lost.error_code == "storage_unavailable", lost.body
    faults.clear()
    retried = await api.fetch("POST", "/api/cards", token=token, json_body=body, headers=key)
    assert retried.code == 201 and retried.json()["version"] == 1, retried.body
    stored = [card.id for card in await api.app.store_instance.list_cards()]
    listed = [card["id"] for card in (await api.fetch("GET", "/api/cards", token=token)).json()["cards"]]
    assert stored == listed == [retried.json()["id"]], "one card, the one stored first, and listed"
    again = await api.fetch("POST", "/api/cards", token=token, json_body=body, headers=key)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == retried.json()["id"]


def lose_answer_and_read_back(faults: FaultProxy, prefix: str) -> None:
    """The next transaction on ``prefix`` items is done but its answer lost, and every read after it fails:
    the service cannot tell whether it was saved (503)."""
    faults.clear()
    lose_answers(faults, is_transaction_on(prefix))
    faults.inject(RESET_BEFORE, lambda r: r.operation in ("GetItem", "BatchGetItem", "Query") and any(
        is_transaction_on(prefix)(seen) for seen, _ in faults.seen))


async def test_an_upload_whose_answer_and_read_back_were_lost_is_not_refused(faulty_server, faults):
    """A dataset upload is stored, its answer and read back lost (503); the retry with the same Idempotency-Key
    answers the dataset stored, not 409 for its own name."""
    api = await faulty_server()
    token = await api.login()
    key = {"Content-Type": "text/csv", "Idempotency-Key": "upload-1"}
    lose_answer_and_read_back(faults, "DATASET")
    lost = await api.fetch("POST", "/api/datasets?name=売上", body=CSV, token=token, headers=key)
    assert lost.code == 503 and lost.error_code == "storage_unavailable", lost.body
    faults.clear()
    created = await api.fetch("POST", "/api/datasets?name=売上", body=CSV, token=token, headers=key)
    assert created.code == 201 and created.json()["version"] == 1, created.body
    assert created.json()["detection"]["delimiter_detected"] is True
    [dataset] = (await api.fetch("GET", "/api/datasets", token=token)).json()["datasets"]
    assert dataset["id"] == created.json()["id"]
    preview = await api.fetch("GET", f"/api/datasets/{dataset['id']}/preview", token=token)
    assert preview.json()["rows"] == [["東京", 10], ["大阪", 20]], preview.body


async def test_a_new_version_whose_answer_and_read_back_were_lost_is_not_repeated(faulty_server, faults):
    """A dataset's new version is stored, its answer and read back lost (503); the retry with the same
    Idempotency-Key answers that version instead of adding another."""
    api = await faulty_server()
    token = await api.login()
    dataset = (await upload(api, "売上", CSV, token)).json()
    path = f"/api/datasets/{dataset['id']}/versions"
    key = {"Content-Type": "text/csv", "Idempotency-Key": "version-1"}
    lose_answer_and_read_back(faults, "DATASET")
    lost = await api.fetch("POST", path, body="店舗,売上\n札幌,30\n".encode(), token=token, headers=key)
    assert lost.code == 503 and lost.error_code == "storage_unavailable", lost.body
    faults.clear()
    added = await api.fetch("POST", path, body="店舗,売上\n札幌,30\n".encode(), token=token, headers=key)
    assert added.code == 201 and added.json()["version"] == 2, added.body
    versions = (await api.fetch("GET", path, token=token)).json()["versions"]
    assert [v["version"] for v in versions] == [2, 1], "no second version from the retry"
    preview = await api.fetch("GET", f"/api/datasets/{dataset['id']}/preview", token=token)
    assert preview.json()["rows"] == [["札幌", 30]], preview.body


@pytest.mark.parametrize("prefix", ["CARD", "DASHBOARD"])
async def test_a_save_whose_answer_and_read_back_were_lost_is_not_refused(faulty_server, faults, prefix):
    """A card or dashboard save (PUT) is stored, its answer and read back lost (503); the retry with the same
    Idempotency-Key and If-Match answers the version it stored, not 409 from itself."""
    api = await faulty_server()
    token = await api.login()
    if prefix == "CARD":
        body = {"title": "合計", "code": "1 + 1", "datasets": [], "parameters": []}
        created = await api.fetch("POST", "/api/cards", token=token, json_body=body)
        path, edit = f"/api/cards/{created.json()['id']}", {**body, "code": "2 + 2"}
    else:
        assert (await upload(api, "売上", CSV, token)).code == 201
        created = await api.fetch("POST", "/api/dashboards", token=token, json_body=document())
        path = f"/api/dashboards/{created.json()['id']}"
        edit = {"document": {**created.json()["document"], "title": "新しい題"}}
    assert created.code == 201, created.body
    key = {"Idempotency-Key": "save-1", "If-Match": '"1"'}
    lose_answer_and_read_back(faults, prefix)
    lost = await api.fetch("PUT", path, token=token, json_body=edit, headers=key)
    assert lost.code == 503 and lost.error_code == "storage_unavailable", lost.body
    faults.clear()
    again = await api.fetch("PUT", path, token=token, json_body=edit, headers=key)
    assert again.code == 200 and again.json()["version"] == 2, again.body
    other = await api.fetch("PUT", path, token=token, json_body=edit, headers={**key, "Idempotency-Key": "save-2"})
    assert other.code == 409, "another change from version 1 is still refused"
