"""Long cells: a DataFrame output's table whose few values are each huge.

A card writes a valid Arrow stream within the table bounds (50 MB) holding one row of one 45 MB
string of control characters: one value, so no value count stops it. Converted whole it is a 45 MB
Python string that JSON escapes into 270 MB (``\\u0001`` is six bytes), on the event loop, per page.
Pages are bounded in bytes, not only in values: text longer than ``PREVIEW_CELL_CHARS`` is cut (the
cut cells listed in ``truncated_cells``) before it is converted, in the server's pages and in the
kernel's first page alike, and a page whose text (nested lists of strings included) passes
``PAGE_TEXT_BYTES`` is shortened or, for a single row, refused with ``table_too_large``.
"""

from __future__ import annotations

import uuid

import pyarrow as pa

from kernels.limits import PREVIEW_CELL_CHARS
from kernels.wire import DATAFRAME, TABLE_FILE
from server.execution.tables import read_rows
from server.limits import PAGE_TEXT_BYTES
from tests.security.test_arrow_bombs import _linux_peak_memory, peak_since, reset_peak  # noqa: F401 - fixture
from tests.server.conftest import api, start_server  # noqa: F401 - fixtures
from tests.server.test_sessions import open_session, root, run, start_cards  # noqa: F401 - fixtures

MIB = 1024 * 1024
CEILING = 60 * MIB  # what one page of the long cell may add to the server's peak memory

LONG_CELL_CODE = """
import pyarrow as pa
from IPython.display import display
column = pa.array(['\\x01' * (45 * 1024 * 1024)], pa.string())
with pa.OSFile(get_ipython().kernel.tables_dir + '/{name}.arrow', 'wb') as file, \\
        pa.ipc.new_stream(file, pa.schema([('s', pa.string())])) as writer:
    writer.write_table(pa.table({{'s': column}}))
del column
display({{{dataframe!r}: {{'columns': [{{'name': 's', 'dtype': 'object'}}], 'index': [], 'row_count': 1,
          'rows': [], 'rows_available': 1, 'complete': True}},
         {table_file!r}: {{'name': '{name}'}}, 'text/plain': 'x'}}, raw=True)
"""


async def test_a_page_of_a_45_mb_cell_is_cut_before_it_is_converted(start_cards):
    api = await start_cards()
    token = await api.add_user("longcell@example.com")
    session_id = await open_session(api, token)
    code = LONG_CELL_CODE.format(name=uuid.uuid4().hex, dataframe=DATAFRAME, table_file=TABLE_FILE)
    response = await run(api, token, session_id, code)
    assert response.code == 200, response.body[:300]
    output_id = next(o["output_id"] for o in response.json()["outputs"] if "output_id" in o)
    baseline = reset_peak()

    page = await api.fetch("GET", f"/api/outputs/{output_id}/rows?limit=1", token=token)
    growth = peak_since(baseline)

    assert page.code == 200, page.body[:300]
    assert len(page.body) < 64 * 1024, f"a page of one row took {len(page.body) // MIB} MB"
    assert page.json()["rows"] == [["\x01" * PREVIEW_CELL_CHARS + "…"]]
    assert page.json()["truncated_cells"] == [[0, 0]]
    assert growth < CEILING, f"the server's peak memory grew by {growth // MIB} MB"


async def test_the_kernels_first_page_cuts_long_cells(start_cards):
    """A real DataFrame's bundle never carries a long cell: its first page is cut as later pages are."""
    api = await start_cards()
    token = await api.add_user("firstpage@example.com")
    session_id = await open_session(api, token)
    code = ("import pandas as pd\n"
            "pd.DataFrame({'n': [1, 2], 's': ['short', '\\x01' * 1_000_000], 'b': [b'x' * 100_000, None]})")
    response = await run(api, token, session_id, code)
    assert response.code == 200, response.body[:300]
    assert len(response.body) < 256 * 1024, f"the output took {len(response.body) // 1024} KB"
    frame = next((o["data"][DATAFRAME] for o in response.json()["outputs"] if DATAFRAME in o.get("data", {})),
                 response.json()["outputs"])
    assert frame["rows"][0][:2] == [1, "short"] and frame["rows"][1][:2] == [2, "\x01" * PREVIEW_CELL_CHARS + "…"]
    assert frame["truncated_cells"] == [[0, 2], [1, 1]]


def write_stream(path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as file, pa.ipc.new_stream(file, table.schema) as writer:
        writer.write_table(table)


def test_long_nested_text_shortens_a_page_or_refuses_a_row(tmp_path):
    """Text inside lists is not cut, but counted from Arrow's offsets: a page past ``PAGE_TEXT_BYTES``
    keeps the rows that fit; a single row past it is refused."""
    item = "y" * (PAGE_TEXT_BYTES // 8)
    many = tmp_path / "many.arrow"
    write_stream(many, pa.table({"l": [[item]] * 20}))
    rows, truncated = read_rows(many, 0, 20)
    assert 1 <= len(rows) < 20 and sum(len(row[0][0]) for row in rows) <= PAGE_TEXT_BYTES and truncated == []

    one = tmp_path / "one.arrow"
    write_stream(one, pa.table({"l": [[item] * 9]}))
    try:
        read_rows(one, 0, 1)
    except Exception as exc:  # noqa: BLE001 - the domain error's code is what matters
        assert getattr(exc, "code", None) == "table_too_large", exc
    else:
        raise AssertionError("a row holding more text than a page may was served")
