"""A stored output table as CSV, a batch at a time: what ``GET /api/outputs/{id}/csv`` streams.

Excel is the reader to please: UTF-8 starts with a byte order mark (without it Excel reads Japanese
as mojibake), or the text is CP932 (Shift_JIS as Windows writes it; a character CP932 lacks becomes
``?``). A text cell or column name that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
gets a leading ``'``, so that a spreadsheet shows it as text instead of running it as a formula (CSV
injection). Columns the CSV writer cannot write (lists, structs) are written as their text.
"""

from __future__ import annotations

import io
import re
from collections.abc import Generator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

ENCODINGS = {"utf-8": "utf-8-sig", "cp932": "cp932"}  # the ?encoding= values and the codecs they use
FORMULA_START = r"^[=+\-@\t\r]"


def _safe_name(name: str) -> str:
    return "'" + name if re.match(FORMULA_START, name) else name


def _safe(column: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_string_view(column.type):
        column = column.cast(pa.large_string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        quoted = pc.binary_join_element_wise(pa.scalar("'", column.type), column, pa.scalar("", column.type))
        return pc.if_else(pc.match_substring_regex(column, FORMULA_START), quoted, column)
    if pa.types.is_nested(column.type) or pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return _safe(pa.array([None if value is None else str(value) for value in column.to_pylist()], pa.string()))
    return column


def _csv(batch: pa.RecordBatch, header: bool) -> bytes:
    safe = pa.RecordBatch.from_arrays([_safe(column) for column in batch.columns], names=[_safe_name(name) for name in batch.schema.names])
    out = io.BytesIO()
    pa_csv.write_csv(safe, out, pa_csv.WriteOptions(include_header=header))
    return out.getvalue()


def csv_chunks(path: Path, encoding: str) -> Generator[bytes, None, None]:
    """The table in ``path`` (an Arrow stream, already validated when stored) as CSV in ``encoding`` (a key
    of ``ENCODINGS``), one chunk per record batch; the header comes first even for an empty table."""
    codec = ENCODINGS[encoding]
    with pa.memory_map(str(path)) as file, pa.ipc.open_stream(file) as reader:
        header = _csv(pa.RecordBatch.from_pylist([], schema=reader.schema), header=True)
        yield header.decode().encode(codec, errors="replace")  # with UTF-8's byte order mark
        for batch in reader:
            yield _csv(batch, header=False).decode().encode(codec.removesuffix("-sig"), errors="replace")
