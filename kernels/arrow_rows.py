"""Rows of an Arrow table as JSON-safe lists: one conversion for every page of rows we serve.

Used by the kernel for a DataFrame's first page, by the server for later pages of a card output
and for dataset previews, so a value looks the same on every page. ``cut_long_values`` cuts long
text and binary values in Arrow, before anything is converted: one 45 MB cell would otherwise be a
45 MB Python string and up to 270 MB of JSON.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kernels.limits import PREVIEW_CELL_CHARS

Cells = list[list[int]]


def json_safe(value: Any) -> Any:
    """A cell as JSON can carry it: dates as ISO strings, NaN and infinities as null.

    Durations become seconds, decimals strings, bytes their ``repr`` (``b'\\x00'``, as pandas
    shows them), nested lists and structs lists and objects of safe values.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return repr(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    return value


def rows_of(table: pa.Table) -> list[list[Any]]:
    """Every row of ``table`` as a list of JSON-safe values."""
    columns = [column.to_pylist() for column in table.columns]
    return [[json_safe(value) for value in row] for row in zip(*columns, strict=True)]


def cut_long_values(table: pa.Table, chars: int = PREVIEW_CELL_CHARS) -> tuple[pa.Table, Cells]:
    """``table`` with text longer than ``chars`` characters cut and marked "…" and binary values cut to
    ``chars`` bytes (plain or dictionary-encoded columns), and the cut cells as [row, column], by row."""
    cut: Cells = []
    for position, column in enumerate(table.columns):
        chunks, start, changed = [], 0, False
        for chunk in column.chunks:
            short, long = _cut(chunk, chars)
            if long is not None:
                cut.extend([start + row, position] for row in pc.indices_nonzero(long).to_pylist())
                changed = True
            chunks.append(short)
            start += len(chunk)
        if changed:
            table = table.set_column(position, table.field(position), pa.chunked_array(chunks, column.type))
    return table, sorted(cut)


def _cut(array: pa.Array, chars: int) -> tuple[pa.Array, pa.Array | None]:
    """``array`` with its long values cut, and which were (None: none)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        dictionary, long = _cut(array.dictionary, chars)
        if long is None:
            return array, None
        return (pa.DictionaryArray.from_arrays(array.indices, dictionary),
                pc.fill_null(long.take(array.indices), False))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        long = pc.fill_null(pc.greater(pc.utf8_length(array), chars), False)
        short = pc.binary_join_element_wise(pc.utf8_slice_codeunits(array, 0, chars), pa.scalar("…", kind),
                                            pa.scalar("", kind))
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        long = pc.fill_null(pc.greater(pc.binary_length(array), chars), False)
        short = pc.binary_slice(array, 0, chars)
    else:
        return array, None
    if not pc.any(long).as_py():
        return array, None
    return pc.if_else(long, short, array), long
