"""DataFrame outputs on the server: the Arrow stream out of the bundle, pages read from it."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kernels import table_output
from kernels.wire import ARROW_STREAM, DATAFRAME
from server.errors import InvalidTableError, TableTooLargeError
from server.execution.tables import read_rows, take_arrow

FRAME = pd.DataFrame({"店舗": ["東京", None] * 60, "率": [0.5, np.nan] * 60,
                      "日": pd.to_datetime(["2024-01-02", None] * 60)})


def dataframe_output(frame: pd.DataFrame) -> dict:
    return {"output_type": "execute_result", "data": table_output.bundle(frame), "metadata": {},
            "execution_count": 1}


def test_take_arrow_empties_the_bundle_of_the_stream():
    output = dataframe_output(FRAME)
    stream = take_arrow(output)
    assert set(output["data"]) == {DATAFRAME, "text/plain"}
    assert pa.ipc.open_stream(stream).read_all().num_rows == 120
    assert take_arrow(output) is None


@pytest.mark.parametrize("output", [{"output_type": "stream", "name": "stdout", "text": "x"},
                                    {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}}])
def test_take_arrow_leaves_other_outputs(output):
    assert take_arrow(output) is None and "text" in str(output)


def test_take_arrow_drops_a_stream_that_is_not_base64():
    output = {"output_type": "display_data", "data": {ARROW_STREAM: "not base64!"}, "metadata": {}}
    assert take_arrow(output) is None and output["data"] == {}


def test_pages_match_the_first_page(tmp_path):
    output = dataframe_output(FRAME)
    stream = take_arrow(output)
    first = output["data"][DATAFRAME]["rows"]
    assert read_rows(stream, 0, table_output.FIRST_ROWS) == first
    assert read_rows(stream, 100, 50) == [["東京", 0.5, "2024-01-02T00:00:00"], [None, None, None]] * 10
    (tmp_path / "t.arrow").write_bytes(stream)
    assert read_rows(tmp_path / "t.arrow", 118, 10) == first[:2]
    assert read_rows(stream, 500, 10) == []


def test_a_corrupt_stream_is_refused():
    stream = take_arrow(dataframe_output(FRAME)).replace("東京".encode(), b"\xff" * 6)
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
    assert len(read_rows(stream, 1, 1, page_values=1000)) == 1
    with pytest.raises(TableTooLargeError):
        read_rows(stream, 0, 2, page_values=1000)
