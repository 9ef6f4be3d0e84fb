"""The refresh schedule and new data cost the same however many dashboards the company has.

Before, each look for due refreshes (every 15 s, on every API task) and each new version of any dataset read
the current document of every dashboard in the store (up to a store's largest, each), so that cost grew with
every dashboard anyone made. Now the stores keep which dashboards have a refresh and which hold a card that
reads each dataset (with every save), and only those are read: a document only when its round is due.

The attack: a member makes many large dashboards without a refresh and without such cards; the bytes the
server reads from its store for one look at the schedule and one new dataset version must not grow.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.security.test_card_access_cost import BIG
from tests.security.test_list_page_cost import reads_of
from tests.server.conftest import any_api, start_server  # noqa: F401 - fixtures


@pytest.mark.parametrize("store_kind", ["embedded", "aws"])
async def test_schedule_and_new_data_reads_do_not_grow_with_the_dashboards(any_api):
    api = any_api
    owner = await api.add_user("owner@example.com")
    hourly = await api.fetch("POST", "/api/dashboards", token=owner, json_body={
        **BIG, "title": "hourly", "refresh": {"every_seconds": 3600}})
    assert hourly.code == 201, hourly.body
    hub = api.app.dashboard_hub
    read = reads_of(api)

    async def looks() -> tuple[int, int]:
        read()
        assert await hub.refresh_due() == [], "no round is due in the first hour"
        schedule = read()
        await hub._dataset_changed(uuid.uuid4().hex, 2)  # a new version of a dataset no card reads
        return schedule, read()

    few = await looks()
    for n in range(4):
        assert (await api.fetch("POST", "/api/dashboards", token=owner, json_body={**BIG, "title": f"{n}"})).code == 201
    many = await looks()
    assert many[0] <= few[0] + 1024 and many[1] <= few[1] + 1024, (
        f"a look at the schedule read {few[0]} bytes with 1 dashboard, {many[0]} with 5; "
        f"new data read {few[1]} and {many[1]}")
    assert few[0] < 5000, f"a look at the schedule read {few[0]} bytes: a document when no round was due"

    assert await hub.refresh_due(time.time() + 3601) == [hourly.json()["id"]], "a due round still starts"
