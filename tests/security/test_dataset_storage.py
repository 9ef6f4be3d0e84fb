"""One member cannot fill the server's disk with datasets: what a user's datasets store is bounded.

Each new version of a 94 MB CSV stored another 71 MB of Parquet, without end. Every version a user owns
counts against their storage quota: an upload is refused before its body is read when its declared
size cannot fit, before conversion when its received size cannot, and after conversion when its
Parquet file does not; nothing of a refused upload is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..server.test_datasets import leftovers, upload

QUOTA = 256 * 1024


def incompressible_csv(rows: int) -> bytes:
    return b"a,b\n" + b"".join(f"{os.urandom(12).hex()},{i}\n".encode() for i in range(rows))


@pytest.fixture
async def quota_api(start_server, store_kind):
    return await start_server(store_kind, DatasetService__storage_quota_bytes=QUOTA)


async def stored_bytes(api, token: str) -> int:
    datasets = (await api.fetch("GET", "/api/datasets", token=token)).json()["datasets"]
    total = 0
    for dataset in datasets:
        versions = (await api.fetch("GET", f"/api/datasets/{dataset['id']}/versions", token=token)).json()
        total += sum(v["stored_bytes"] for v in versions["versions"])
    return total


async def test_new_versions_stop_at_the_quota(quota_api):
    """Re-uploading the same file as new versions ends in a 413 ``storage_quota_exceeded`` that names
    what is used, the limit and what to delete; what is stored stays within the quota."""
    token = await quota_api.add_user("hoarder@example.com")
    content = incompressible_csv(1500)  # about 45 KB of CSV, about as much Parquet
    created = await upload(quota_api, "hoard", content, token)
    assert created.code == 201, created.body
    dataset_id = created.json()["id"]
    for _ in range(20):
        response = await quota_api.fetch("POST", f"/api/datasets/{dataset_id}/versions", body=content,
                                         token=token, headers={"Content-Type": "text/csv"})
        if response.code != 201:
            break
    assert response.code == 413, response.body
    error = response.json()["error"]
    assert error["code"] == "storage_quota_exceeded"
    assert error["details"]["limit"] == QUOTA and error["details"]["used"] <= QUOTA
    assert error["details"]["largest"][0]["name"] == "hoard"
    assert "hoard" in error["message"]
    assert await stored_bytes(quota_api, token) <= QUOTA
    assert list((Path(quota_api.app.data_dir) / "tmp").iterdir()) == []


async def test_an_upload_that_cannot_fit_is_refused_unread(quota_api):
    """A declared size past what is left is refused before the body is read, on both routes."""
    token = await quota_api.add_user("big@example.com")
    response = await quota_api.fetch("POST", "/api/datasets?name=big", body=b"a\n" + b"1\n" * QUOTA,
                                     token=token, headers={"Content-Type": "text/csv"})
    assert response.code == 413 and response.error_code == "storage_quota_exceeded", response.body
    assert response.json()["error"]["details"] == {"used": 0, "limit": QUOTA, "adding": QUOTA * 2 + 2,
                                                   "largest": []}
    assert leftovers(quota_api) == []


async def test_the_quota_is_per_owner(quota_api):
    """One user at their quota leaves another's uploads alone."""
    first = await quota_api.add_user("first@example.com")
    second = await quota_api.add_user("second@example.com")
    content = incompressible_csv(4800)  # about 150 KB: two fit as Parquet, a third cannot
    assert (await upload(quota_api, "one", content, first)).code == 201
    assert (await upload(quota_api, "two", content, first)).code == 201
    assert (await upload(quota_api, "three", content, first)).error_code == "storage_quota_exceeded"
    assert (await upload(quota_api, "mine", content, second)).code == 201
