"""DataFrame outputs on the server: the table's name out of the bundle, pages read from its stream."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kernels import table_output
from kernels.wire import ARROW_STREAM, DATAFRAME, TABLE_FILE
from server.errors import InvalidTableError, TableTooLargeError
from server.execution.tables import read_rows, strip_table, table_name

FRAME = pd.DataFrame({"店舗": ["東京", None] * 60, "率": [0.5, np.nan] * 60,
                      "日": pd.to_datetime(["2024-01-02", None] * 60)})


def dataframe_output(frame: pd.DataFrame, folder) -> tuple[dict, bytes]:
    """The output of showing ``frame`` in a kernel whose tables folder is ``folder``, and its table's stream."""
    output = {"output_type": "execute_result", "data": table_output.bundle(frame, tables_dir=str(folder)),
              "metadata": {}, "execution_count": 1}
    name = table_name({"msg_type": "execute_result", "content": output})
    assert name is not None, output["data"]
    return output, (folder / f"{name}.arrow").read_bytes()


def test_the_bundle_names_the_table_and_strip_table_takes_the_name_out(tmp_path):
    output, stream = dataframe_output(FRAME, tmp_path)
    assert strip_table(output)
    assert set(output["data"]) == {DATAFRAME, "text/plain"}
    assert pa.ipc.open_stream(stream).read_all().num_rows == 120
    assert not strip_table(output)


@pytest.mark.parametrize("output", [{"output_type": "stream", "name": "stdout", "text": "x"},
                                    {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}}])
def test_strip_table_leaves_other_outputs(output):
    assert not strip_table(output) and "text" in str(output)


def test_a_stream_inside_the_bundle_is_dropped_unread():
    output = {"output_type": "display_data", "data": {ARROW_STREAM: "QUJD", "text/plain": "x"}, "metadata": {}}
    assert not strip_table(output) and output["data"] == {"text/plain": "x"}


@pytest.mark.parametrize("reference", [{"name": "../../etc/passwd"}, {"name": "A" * 32}, {"name": 7}, "abc", None,
                                       {"name": "0" * 31}, {"name": "0" * 32 + "\n"}])
def test_only_a_well_formed_table_name_is_fetched(reference):
    message = {"msg_type": "display_data", "content": {"data": {TABLE_FILE: reference}}}
    assert table_name(message) is None


def test_pages_match_the_first_page(tmp_path):
    output, stream = dataframe_output(FRAME, tmp_path)
    first = output["data"][DATAFRAME]["rows"]
    assert read_rows(stream, 0, table_output.FIRST_ROWS) == (first, [])
    assert read_rows(stream, 100, 50)[0] == [["東京", 0.5, "2024-01-02T00:00:00"], [None, None, None]] * 10
    (tmp_path / "t.arrow").write_bytes(stream)
    assert read_rows(tmp_path / "t.arrow", 118, 10)[0] == first[:2]
    assert read_rows(stream, 500, 10) == ([], [])


def test_a_corrupt_stream_is_refused(tmp_path):
    stream = dataframe_output(FRAME, tmp_path)[1].replace("東京".encode(), b"\xff" * 6)
    with pytest.raises(InvalidTableError, match="UTF8"):
        read_rows(stream, 0, 200)
    with pytest.raises(InvalidTableError):
        read_rows(base64.b64encode(b"garbage"), 0, 1)


@pytest.mark.parametrize("column", [
    pa.ListArray.from_arrays(pa.array([0, 600, 1200], pa.int32()), pa.nulls(1200)),
    pa.ListViewArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array([600, 600], pa.int32()), pa.nulls(600)),
    pa.array([{"a": [None] * 600}] * 2),
    pa.array([[("k", [None] * 600)]] * 2, pa.map_(pa.string(), pa.list_(pa.null()))),
    pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array(["x" * 600])),
])
def test_a_page_converts_a_bounded_number_of_values(column):
    """Nested items, shared list views and dictionary strings all count toward the page's values."""
    sink = pa.BufferOutputStream()
    table = pa.table({"c": column})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    stream = sink.getvalue().to_pybytes()
    assert len(read_rows(stream, 1, 1, page_values=1000)[0]) == 1
    with pytest.raises(TableTooLargeError):
        read_rows(stream, 0, 2, page_values=1000)
