"""A member cannot grow the audit trail without bound: past a rate, their repeated events are counted
into one row instead of a row each, and no event is lost from the count.

Before, every ``PATCH /api/me`` and every (cached) card run appended one row to the store's trail: a
member wrote 400 rows in 45 s, and nothing stopped more. Now each user may write
``audit_events_per_window`` rows of one event per window (``ServeApp.audit_window_seconds``); the rest
of the window's are written as one row of the same event with ``count``. Security events (sign-ins,
tokens, role and share changes, ...) are always written one by one.
"""

from __future__ import annotations

import asyncio
import math
import time

from ..server.conftest import Client

WINDOW = 3.0  # seconds: short, so that the test sees the window's count written
PER_WINDOW = 5


async def trail(api: Client, admin: str, user_id: str) -> list[dict]:
    """Every event of ``user_id`` in the store, newest first."""
    found: list[dict] = []
    cursor = ""
    while True:
        page = await api.fetch("GET", f"/api/audit?user={user_id}&limit=500{cursor}", token=admin)
        assert page.code == 200, page.body
        found += page.json()["events"]
        if page.json()["next"] is None:
            return found
        cursor = f"&cursor={page.json()['next']}"


async def test_a_flood_of_one_event_becomes_one_counted_row(start_server):
    api = await start_server(ServeApp__audit_window_seconds=WINDOW, ServeApp__audit_events_per_window=PER_WINDOW)
    admin = await api.login()
    member = await api.add_user("flood@example.com")
    me = (await api.fetch("GET", "/api/me", token=member)).json()["id"]
    before = len(await trail(api, admin, me))
    started = time.monotonic()
    for n in range(60):
        assert (await api.fetch("PATCH", "/api/me", token=member, json_body={"name": f"n{n}"})).code == 200
    windows = math.ceil((time.monotonic() - started) / WINDOW)  # that the changes spanned
    written = (await trail(api, admin, me))[:-before]
    assert len(written) <= windows * (PER_WINDOW + 1), f"{len(written)} rows for 60 profile changes"

    await asyncio.sleep(WINDOW + 1)
    written = (await trail(api, admin, me))[:-before]
    assert len(written) <= windows * (PER_WINDOW + 1)
    assert sum(event.get("count", 1) for event in written) == 60, "every change is counted"
    counted = [event for event in written if "count" in event]
    assert counted and counted[0]["first_at"] <= counted[0]["last_at"]


async def test_security_events_are_always_written_one_by_one(start_server):
    """Personal access tokens made in a burst each get their own row, with their own id."""
    api = await start_server(ServeApp__audit_window_seconds=WINDOW, ServeApp__audit_events_per_window=PER_WINDOW)
    admin = await api.login()
    member = await api.add_user("burst@example.com")
    made = []
    for n in range(3 * PER_WINDOW):
        response = await api.fetch("POST", "/api/me/tokens", token=member, json_body={"name": f"t{n}", "expires_in_days": 1})
        assert response.code == 201
        made.append(response.json()["id"])
    me = (await api.fetch("GET", "/api/me", token=member)).json()["id"]
    rows = [event["token_id"] for event in await trail(api, admin, me) if event["event"] == "token_created"]
    assert sorted(rows) == sorted(made)
