"""A deletion that finishes by listing the blobs under a dataset's prefix must not take a prefix from a hostile id.

Deleting a dataset that is gone deletes the blobs left under ``datasets/<id>/`` (a deletion cut
short). An id from the path such as ``..`` or ``../tables`` would name another prefix, or the
whole blob area: such ids are never ours, and their DELETE is 404 with every blob kept.
"""

from __future__ import annotations

import pytest

from tests.server.conftest import api  # noqa: F401 - fixture
from tests.server.test_datasets import upload

HOSTILE_IDS = ["..", "%2E%2E", "..%2F..", "..%2Ftables", ".", "%2E", "x%2F..%2F..", "%00"]


@pytest.mark.parametrize("dataset_id", HOSTILE_IDS)
async def test_hostile_ids_delete_no_blob(api, dataset_id):  # noqa: F811
    token = await api.login()
    created = (await upload(api, "売上", "店舗,売上\n東京,10\n".encode(), token)).json()
    response = await api.fetch("DELETE", f"/api/datasets/{dataset_id}", token=token)
    assert response.code in (400, 404), response.body
    preview = await api.fetch("GET", f"/api/datasets/{created['id']}/preview", token=token)
    assert preview.code == 200, preview.body
