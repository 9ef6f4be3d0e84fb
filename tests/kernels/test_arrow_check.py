"""kernels.arrow_check: a stream's size from its metadata, before anything is read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kernels import table_output
from kernels.arrow_check import Bounds, Size, TableTooLarge, measure
from kernels.wire import TABLE_FILE

TABLE = pa.table({"n": pa.array(range(1000), pa.int64()), "s": pa.array([str(i) for i in range(1000)]),
                  "l": pa.array([[1, 2]] * 1000), "d": pa.array(["x", "y"] * 500).dictionary_encode(),
                  "st": pa.array([{"a": 1}] * 1000)})


def stream_of(table: pa.Table, compression: str | None = None, chunk: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(table, max_chunksize=chunk)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
def test_size_is_the_same_compressed_or_not(compression):
    """Rows, inflated bytes and values (list items, struct fields, dictionary entries included)
    read the same whatever the compression, and bytes cover every buffer of the table."""
    size = measure(stream_of(TABLE, compression, chunk=300))
    assert size == measure(stream_of(TABLE, None, chunk=300))
    assert size.rows == 1000 and size.values == 1000 * 8 + 2 and size.bytes >= TABLE.nbytes


def test_each_bound_is_checked_before_reading():
    """Past any bound it raises TableTooLarge naming it, and allocates nothing from Arrow's pool."""
    zeros = pa.record_batch([pa.array(np.zeros(1 << 20, dtype=np.int64))], names=["zero"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, zeros.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        for _ in range(64):
            writer.write_batch(zeros)
    bomb = sink.getvalue().to_pybytes()
    before = pa.total_allocated_bytes()
    huge = 1 << 40
    for bounds, name in ((Bounds(bytes=10 << 20, rows=huge, values=huge), "bytes"),
                         (Bounds(bytes=huge, rows=1 << 22, values=huge), "rows"),
                         (Bounds(bytes=huge, rows=huge, values=1 << 22), "values"),
                         (Bounds(bytes=huge, rows=huge, values=huge, messages=10), "messages")):
        with pytest.raises(TableTooLarge) as refused:
            measure(bomb, bounds)
        assert refused.value.bound == name
    assert pa.total_allocated_bytes() - before < 1 << 20
    assert measure(bomb, Bounds(huge, huge, huge)) == Size(rows=64 << 20, bytes=512 << 20, values=64 << 20, messages=65)


def test_malformed_streams_are_invalid():
    """Garbage, a stream cut in its metadata and a dictionary of nested values are ArrowInvalid."""
    stream = stream_of(TABLE)
    for bad in (b"garbage!" * 10, stream[:40]):
        with pytest.raises(pa.ArrowInvalid):
            measure(bad)
    nested = pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array([[1, 2]]))
    with pytest.raises(pa.ArrowInvalid, match="dictionary"):
        measure(stream_of(pa.table({"d": nested})))


def test_the_kernel_writes_no_table_past_the_server_bounds(monkeypatch, tmp_path):
    """A frame with more rows or values than the server keeps shows its first rows, with no table file."""
    frame = pd.DataFrame({"flag": [True, False] * 50})
    assert TABLE_FILE in table_output.bundle(frame, tables_dir=str(tmp_path))
    monkeypatch.setattr(table_output, "ARROW_ROWS", 99)
    assert TABLE_FILE not in table_output.bundle(frame, tables_dir=str(tmp_path))
    monkeypatch.setattr(table_output, "measure", lambda stream, bounds: measure(stream, Bounds(values=99)))
    monkeypatch.setattr(table_output, "ARROW_ROWS", 100)
    assert TABLE_FILE not in table_output.bundle(frame, tables_dir=str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 1  # the refused one was removed again
