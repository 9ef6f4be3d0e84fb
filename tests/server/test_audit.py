"""The audit trail: events written to the logs and the store, read by admins through ``GET /api/audit``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from server.models import AuditQuery
from server.services import audit

from .conftest import ADMIN_EMAIL
from .test_datasets import upload


def events(response) -> list[str]:
    return [e["event"] for e in response.json()["events"]]


async def test_events_are_kept_and_paged(any_api):
    """Sign-ins, a dataset, user and share changes land in the store; pages join by the cursor."""
    api = any_api
    admin = await api.login()
    member = await api.add_user("ana@example.com")
    await api.fetch("POST", "/api/auth/login", json_body={"email": ADMIN_EMAIL, "password": "wrong"})
    assert (await upload(api, "sales", b"a,b\n1,2\n", member)).code == 201
    created = await api.fetch("POST", "/api/dashboards", token=admin, json_body={
        "schemaVersion": 1, "title": "t", "parameters": [], "cards": [], "layout": []})
    dashboard_id = created.json()["id"]
    shares = f"/api/dashboards/{dashboard_id}/shares"
    await api.fetch("PUT", shares, token=admin, json_body={"email": "ana@example.com", "permission": "view"})
    await api.fetch("DELETE", shares, token=admin, json_body={"email": "ana@example.com"})

    everything = await api.fetch("GET", "/api/audit", token=admin)
    assert everything.code == 200, everything.body
    assert events(everything)[:6] == ["dashboard_unshared", "dashboard_shared", "dashboard_created",
                                      "dataset_created", "login_failed", "login_success"]
    assert {"user_created", "login_success"} <= set(events(everything)) and everything.json()["next"] is None
    shared = everything.json()["events"][1]
    assert shared["dashboard_id"] == dashboard_id and shared["permission"] == "view" and shared["shared_with"]
    assert shared["at"] and shared["request_id"] and shared["user_id"]
    names = {e["event"]: e["user_name"] for e in everything.json()["events"]}
    me = {token: (await api.fetch("GET", "/api/me", token=token)).json()["name"] for token in (admin, member)}
    assert (names["dashboard_shared"], names["dataset_created"]) == (me[admin], me[member]), "who, by name"

    seen, cursor = [], None
    while True:
        page = await api.fetch("GET", "/api/audit?limit=2" + (f"&cursor={cursor}" if cursor else ""), token=admin)
        seen += page.json()["events"]
        cursor = page.json()["next"]
        if cursor is None:
            break
        assert len(page.json()["events"]) == 2
    assert seen == everything.json()["events"]

    member_id = (await api.fetch("GET", "/api/me", token=member)).json()["id"]
    for query in (f"user={member_id}", "user=ana@example.com"):
        mine = await api.fetch("GET", f"/api/audit?{query}", token=admin)
        assert set(events(mine)) == {"login_success", "dataset_created", "user_created"}, query
    failed = await api.fetch("GET", "/api/audit?event=login_failed", token=admin)
    assert events(failed) == ["login_failed"] and failed.json()["events"][0]["email"] == ADMIN_EMAIL
    later = await api.fetch("GET", f"/api/audit?since={shared['at']}", token=admin)
    assert events(later) == ["dashboard_unshared", "dashboard_shared"]
    assert events(await api.fetch("GET", f"/api/audit?until={shared['at']}&limit=1", token=admin)) == [
        "dashboard_created"]


async def test_only_admins_read_it_and_bad_arguments_are_400(api):
    admin = await api.login()
    member = await api.add_user("ana@example.com")
    denied = await api.fetch("GET", "/api/audit", token=member)
    assert denied.code == 403 and denied.error_code == "forbidden"
    assert (await api.fetch("GET", "/api/audit")).code == 401
    for query, code in (("limit=0", "invalid_argument"), ("limit=1001", "invalid_argument"),
                        ("limit=x", "invalid_argument"), ("since=yesterday", "invalid_time"),
                        ("until=2026-13-01", "invalid_time"), ("event=DROP%20TABLE", "invalid_argument"),
                        ("cursor=abc", "invalid_cursor"), ("cursor=eyJiZWZvcmUiOiAxfQ", "invalid_cursor")):
        answer = await api.fetch("GET", f"/api/audit?{query}", token=admin)
        assert answer.code == 400 and answer.error_code == code, (query, answer.body)
    assert (await api.fetch("GET", "/api/audit?limit=1000&since=2026-12-06&until=2026-12-06T09:00:00%2B09:00",
                            token=admin)).code == 200


async def test_a_failed_store_write_is_logged_and_the_request_goes_on(api, tmp_path: Path):
    admin = await api.login()
    await audit.written(api.app.store_instance)  # the sign-in's row, before the table goes
    with sqlite3.connect(tmp_path / "data0" / "bi.sqlite3") as db:
        db.execute("DROP TABLE audit_events")
    with capture_logs() as logs:
        created = await api.fetch("POST", "/api/dashboards", token=admin, json_body={
            "schemaVersion": 1, "title": "t", "parameters": [], "cards": [], "layout": []})
        await audit.written(api.app.store_instance)  # (written after the answer)
    assert created.code == 201, created.body
    logged = {e["event"]: e for e in logs}
    assert logged["dashboard_created"]["audit"] is True
    assert logged["audit_write_failed"]["audit_event"] == "dashboard_created"


async def test_rows_are_written_behind_the_requests_in_batches_and_all_before_a_clean_shutdown(store):
    """``record`` hands rows to the writer and returns: it waits only while ``most`` rows wait; ``flush`` (a clean
    shutdown) writes every row handed over, in batches (BatchWriteItem on DynamoDB)."""
    audit.write_behind(store, batch=25, most=40)
    for n in range(100):
        await audit.record(store, "card_executed", card_id=f"c{n}", user_id="u1", cached=True)
    assert len(await store.list_audit_events(AuditQuery(1000))) >= 60, "at most 40 rows wait for the writer"
    await audit.flush(store)
    written = await store.list_audit_events(AuditQuery(1000))
    assert sorted(event.fields["card_id"] for event in written) == sorted(f"c{n}" for n in range(100))
    assert {event.user_id for event in written} == {"u1"}
