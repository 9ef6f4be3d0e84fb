"""CSV uploads cannot make the server hold more than a bounded amount per import, page or listing.

A 769 KB file of 60,000 columns grew the server by 1.2 GB on import and again on every preview,
and made every ``GET /api/datasets`` 2.9 MB. The header is measured before anything is converted
(columns and characters), a preview page holds a bounded number of values of bounded length, and
imports past the running and waiting slots are told to come back later.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from server.limits import (CSV_COLUMNS, CSV_HEADER_CHARS, CSV_ROW_BYTES, IMPORTS_RUNNING, PREVIEW_CELL_CHARS,
                           PREVIEW_VALUES)

from ..server.test_datasets import leftovers, upload
from .conftest import vm_kb

CEILING_KB = 128 * 1024
WIDE_CEILING_KB = 100 * 1024


def wide_csv(columns: int, rows: int = 3, ragged: bool = False) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns))
    row = ",".join("1" for _ in range(columns + ragged))
    return (header + "\n" + "\n".join(row for _ in range(rows)) + "\n").encode()


async def test_too_many_columns_are_refused_from_the_header(api):
    """One column past the limit is a 422 naming both numbers, and nothing is kept."""
    token = await api.login()
    response = await upload(api, "wide", wide_csv(CSV_COLUMNS + 1), token)
    assert response.code == 422, response.body[:300]
    error = response.json()["error"]
    assert error["code"] == "too_many_columns"
    assert error["details"] == {"columns": CSV_COLUMNS + 1, "limit": CSV_COLUMNS}
    assert f"{CSV_COLUMNS + 1:,}" in error["message"] and f"{CSV_COLUMNS:,}" in error["message"]
    assert leftovers(api) == []
    assert (await api.fetch("GET", "/api/datasets", token=token)).json()["datasets"] == []


async def test_the_column_count_is_checked_before_conversion(api):
    """A wide file whose rows are also ragged fails on its width, not on its rows: nothing was parsed."""
    token = await api.login()
    response = await upload(api, "wide", wide_csv(CSV_COLUMNS * 30, ragged=True), token)
    assert response.code == 422 and response.error_code == "too_many_columns"
    assert response.json()["error"]["details"]["columns"] == CSV_COLUMNS * 30


async def test_a_header_longer_than_the_limit_is_refused(api):
    """Few columns with huge names would still be stored and listed with every dataset: 422."""
    token = await api.login()
    name = "n" * (CSV_HEADER_CHARS // 2 + 1)
    response = await upload(api, "long", f"{name},{name}\n1,2\n".encode(), token)
    assert response.code == 422 and response.error_code == "header_too_long"
    assert response.json()["error"]["details"]["limit"] == CSV_HEADER_CHARS
    assert name not in response.body.decode()


@pytest.mark.parametrize("size", [CSV_ROW_BYTES - 1024, 4 * CSV_ROW_BYTES])
async def test_a_long_row_costs_a_bounded_amount_of_memory(api, size):
    """The longest row allowed is converted and previewed within the ceiling; a longer one is refused
    within it too (a 30 MB field cost 350 MB on import and 180 MB on preview). The server runs in
    this process: its peak is this process's ``VmHWM``, reset through ``/proc/self/clear_refs``."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs /proc/self/clear_refs to measure peak memory")
    token = await api.login()
    content = b'a,b\n"' + b"x" * size + b'",1\n'
    Path("/proc/self/clear_refs").write_text("5")
    baseline = vm_kb(os.getpid(), "VmRSS")
    response = await upload(api, f"long{size}", content, token)
    page = None
    if response.code == 201:
        page = await api.fetch("GET", f"/api/datasets/{response.json()['id']}/preview", token=token)
    growth = vm_kb(os.getpid(), "VmHWM") - baseline
    assert growth < CEILING_KB, f"the server's peak memory grew by {growth // 1024} MB"
    if size < CSV_ROW_BYTES:
        assert page is not None and page.json()["truncated_cells"] == [[0, 0]], response.body[:300]
    else:
        assert (response.code, response.error_code) == (422, "unprocessable")


async def test_the_widest_file_allowed_converts_within_the_ceiling(api):
    """A file as large as an upload may be, of ``CSV_COLUMNS`` columns of one-digit numbers (each value
    an int64: 400 MB in Arrow), is converted and previewed within 100 MB. At 2,000 columns it cost
    175 MB (32 MB of it, 143 MB): each column costs the CSV reader per block and thread, and the Parquet
    footer about 1.3 KB per column and row group, which pyarrow keeps until it writes them at the end."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs /proc/self/clear_refs to measure peak memory")
    token = await api.login()
    content = wide_csv(CSV_COLUMNS, rows=(api.app.datasets.max_upload_bytes - (64 << 10)) // (2 * CSV_COLUMNS))
    Path("/proc/self/clear_refs").write_text("5")
    baseline = vm_kb(os.getpid(), "VmRSS")
    response = await upload(api, "widest", content, token)
    assert response.code == 201, response.body[:300]
    page = await api.fetch("GET", f"/api/datasets/{response.json()['id']}/preview", token=token)
    growth = vm_kb(os.getpid(), "VmHWM") - baseline
    assert page.code == 200
    assert growth < WIDE_CEILING_KB, f"the server's peak memory grew by {growth // 1024} MB"


async def test_a_preview_page_holds_a_bounded_number_of_values(api):
    """Asking for the largest page of a wide dataset gets as many rows as fit the value budget."""
    token = await api.login()
    columns = 500
    created = (await upload(api, "wide", wide_csv(columns, rows=300), token)).json()
    page = (await api.fetch("GET", f"/api/datasets/{created['id']}/preview?limit=1000", token=token)).json()
    assert len(page["rows"]) * columns <= PREVIEW_VALUES
    assert page["limit"] == len(page["rows"]) == PREVIEW_VALUES // columns


async def test_long_cells_are_cut_in_a_preview_and_marked(api):
    """A 1 MB field comes back as its first characters, and the page says which cells were cut."""
    token = await api.login()
    text = "長" * (1 << 20)
    created = (await upload(api, "long", f"id,note\n1,{text}\n2,short\n".encode(), token)).json()
    page = (await api.fetch("GET", f"/api/datasets/{created['id']}/preview", token=token)).json()
    assert page["rows"][0] == [1, "長" * PREVIEW_CELL_CHARS + "…"]
    assert page["rows"][1] == [2, "short"]
    assert page["truncated_cells"] == [[0, 1]]


async def test_imports_past_the_running_and_waiting_slots_are_told_to_retry(start_server):
    """With every slot taken and the line full, an upload is a 429 with Retry-After, and keeps nothing."""
    api = await start_server(DatasetService__max_waiting_imports=0)
    token = await api.login()
    slots = api.app.datasets.import_slots
    held = [slots.hold() for _ in range(IMPORTS_RUNNING)]
    for slot in held:
        await slot.__aenter__()
    try:
        response = await upload(api, "busy", b"a,b\n1,2\n", token)
        assert response.code == 429 and response.error_code == "imports_busy"
        assert int(response.headers["Retry-After"]) > 0
        assert leftovers(api) == []
    finally:
        for slot in held:
            await slot.__aexit__(None, None, None)
    assert (await upload(api, "busy", b"a,b\n1,2\n", token)).code == 201


async def test_imports_wait_in_a_short_line(start_server):
    """Within the waiting slots an upload waits for a running one to finish, then succeeds."""
    api = await start_server(DatasetService__max_concurrent_imports=1, DatasetService__max_waiting_imports=1)
    token = await api.login()
    slot = api.app.datasets.import_slots.hold()
    await slot.__aenter__()
    waiting = asyncio.ensure_future(upload(api, "queued", b"a,b\n1,2\n", token))
    while api.app.datasets.import_slots.waiting == 0:
        await asyncio.sleep(0.01)
    refused = await upload(api, "refused", b"a,b\n1,2\n", token)
    assert refused.code == 429
    await slot.__aexit__(None, None, None)
    assert (await waiting).code == 201
