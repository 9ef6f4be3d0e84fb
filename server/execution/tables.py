"""DataFrame outputs on the server: the Arrow stream leaves the bundle, later pages come from it.

A kernel's DataFrame bundle (``kernels.table_output``) may name the whole table, an Arrow IPC
stream in a file its agent serves once (``table_name``); the session fetches it before it hands
the output on. ``strip_table`` takes the name out of the output (and any stream a kernel put in
the bundle itself), so that only the summary and first page go to pages and caches;
``read_rows`` serves pages from the stored stream, converted as the kernel converted the first
page (``kernels.arrow_rows``).

The stream comes from a kernel. ``measure`` reads only its metadata and refuses, before
anything is decompressed, a stream past the bounds (``TableTooLargeError``) or malformed
(``InvalidTableError``); ``validate`` then reads it whole, a batch at a time, within those bounds.
``read_rows`` measures again before it reads the batches up to its page, and bounds the page in
values, then in bytes: long cells are cut (``kernels.arrow_rows.cut_long_values``) and the text
left is counted from Arrow's offsets (``text_bytes``) before anything is converted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kernels.arrow_check import Bounds, Size, TableTooLarge
from kernels.arrow_check import measure as measure_stream
from kernels.arrow_rows import Cells, cut_long_values, rows_of
from kernels.wire import ARROW_STREAM, TABLE_FILE, TABLE_FILE_NAME

from ..errors import InvalidTableError, TableTooLargeError
from ..limits import PAGE_TEXT_BYTES, PAGE_VALUES

Source = bytes | Path | str
BOUNDS = Bounds()  # kernels.limits
BINARY_LIKE = (pa.string(), pa.large_string(), pa.binary(), pa.large_binary())
TABLE_NAME = re.compile(TABLE_FILE_NAME)
BUNDLE_TYPES = ("display_data", "execute_result", "update_display_data")


def table_name(message: dict[str, Any]) -> str | None:
    """The name of the table file an iopub message's DataFrame bundle refers to, if well formed."""
    if message.get("msg_type") not in BUNDLE_TYPES:
        return None
    data = message.get("content", {}).get("data")
    reference = data.get(TABLE_FILE) if isinstance(data, dict) else None
    name = reference.get("name") if isinstance(reference, dict) else None
    return name if isinstance(name, str) and TABLE_NAME.fullmatch(name) else None


def strip_table(output: dict[str, Any]) -> bool:
    """Remove the table's name (and a stream a kernel put in the bundle itself) from ``output``'s bundle,
    in place; whether it named one."""
    data = output.get("data")
    if not isinstance(data, dict):
        return False
    data.pop(ARROW_STREAM, None)
    return data.pop(TABLE_FILE, None) is not None


def _open(source: Source) -> pa.NativeFile:
    return pa.BufferReader(source) if isinstance(source, bytes) else pa.memory_map(str(source))


def measure(source: Source, bounds: Bounds = BOUNDS) -> Size:
    """The table's size from the stream's metadata; the domain error of a stream past ``bounds``."""
    try:
        with _open(source) as file:
            return measure_stream(file, bounds)
    except TableTooLarge as exc:
        raise TableTooLargeError(f"The DataFrame is too large to keep for paging: {exc}. Show fewer rows "
                                 "or columns (its first rows are shown).", {"bound": exc.bound}) from None
    except pa.ArrowException as exc:
        raise InvalidTableError(f"The DataFrame's table is not a valid Arrow stream: {exc}") from None


def validate(source: Source, bounds: Bounds = BOUNDS) -> Size:
    """``measure``, then read every batch and check its data in full (``InvalidTableError``)."""
    size = measure(source, bounds)
    try:
        with _open(source) as file, pa.ipc.open_stream(file) as reader:
            for batch in reader:
                batch.validate(full=True)
    except pa.ArrowException as exc:
        raise InvalidTableError(f"The DataFrame's table is not a valid Arrow stream: {exc}") from None
    return size


def read_rows(source: Source, offset: int, limit: int, bounds: Bounds = BOUNDS, page_values: int = PAGE_VALUES,
              page_bytes: int = PAGE_TEXT_BYTES) -> tuple[list[list[Any]], Cells]:
    """Rows ``offset`` to ``offset + limit`` of an Arrow stream (bytes or a file) as JSON-safe lists, and
    the cells whose long values were cut ([row, column] of the page).

    Only the batches up to the page are read, one at a time; the rows read are fully validated
    (``InvalidTableError``) and may hold at most ``page_values`` values (``TableTooLargeError``).
    Past ``page_bytes`` of text once long cells are cut, the page keeps the rows that fit (fewer than
    ``limit``); a first row past it is a ``TableTooLargeError``.
    """
    measure(source, bounds)
    try:
        with _open(source) as file, pa.ipc.open_stream(file) as reader:
            parts, start = [], 0
            for batch in reader:
                if start >= offset + limit:
                    break
                end = start + batch.num_rows
                if end > offset:
                    first = max(offset, start)
                    parts.append(batch.slice(first - start, min(end, offset + limit) - first))
                start = end
            page = pa.Table.from_batches(parts, reader.schema)
        page.validate(full=True)
    except pa.ArrowException as exc:
        raise InvalidTableError(f"The stored table is not a valid Arrow stream: {exc}") from None
    if values_of(page) > page_values:
        raise TableTooLargeError(f"These rows hold more than {page_values:,} values; ask for fewer rows.",
                                 {"bound": "page_values"})
    page, cut = cut_long_values(page)
    fitting = rows_within(page, page_bytes)
    if fitting == 0 and page.num_rows:
        raise TableTooLargeError(f"This row holds more than {page_bytes:,} bytes of text, too much to show.",
                                 {"bound": "page_bytes"})
    if fitting < page.num_rows:
        page, cut = page.slice(0, fitting), [cell for cell in cut if cell[0] < fitting]
    return rows_of(page), cut


def rows_within(page: pa.Table, page_bytes: int) -> int:
    """How many of the first rows of ``page`` hold at most ``page_bytes`` of text between them."""
    if text_bytes(page) <= page_bytes:
        return page.num_rows
    low, high = 0, page.num_rows  # rows[:low] fit, rows[:high] do not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if text_bytes(page.slice(0, middle)) <= page_bytes else (low, middle)
    return low


def text_bytes(data: pa.Table | pa.Array | pa.ChunkedArray) -> int:
    """Bytes of the text and binary values converting ``data`` to Python copies, nested ones and a
    dictionary's values in every row that uses them included, from Arrow's offsets (nothing is copied)."""
    if isinstance(data, pa.Table):
        return sum(text_bytes(column) for column in data.columns)
    if isinstance(data, pa.ChunkedArray):
        return sum(text_bytes(chunk) for chunk in data.chunks)
    kind = data.type
    if kind in BINARY_LIKE:
        return pc.sum(pc.binary_length(data)).as_py() or 0
    if pa.types.is_fixed_size_binary(kind):
        return len(data) * kind.byte_width
    if isinstance(kind, pa.DictionaryType):
        if data.dictionary.type in BINARY_LIKE:
            return pc.sum(pc.binary_length(data.dictionary).take(data.indices.drop_null())).as_py() or 0
        return text_bytes(data.dictionary_decode())
    if isinstance(kind, pa.MapType):
        first, last = data.offsets[0].as_py(), data.offsets[-1].as_py()
        return sum(text_bytes(part.slice(first, last - first)) for part in (data.keys, data.items))
    if isinstance(kind, (pa.ListType, pa.LargeListType, pa.FixedSizeListType, pa.ListViewType, pa.LargeListViewType)):
        return text_bytes(data.flatten())
    if isinstance(kind, pa.StructType):
        return sum(text_bytes(field) for field in data.flatten())
    return 0


def values_of(data: pa.Table | pa.Array | pa.ChunkedArray) -> int:
    """How many values converting ``data`` to Python makes: each cell, and each nested item in it.

    A dictionary's string or bytes value is copied into every row that uses it: each of its bytes
    counts as a value there, so a huge shared value cannot be multiplied for free.
    """
    if isinstance(data, pa.Table):
        return sum(values_of(column) for column in data.columns)
    if isinstance(data, pa.ChunkedArray):
        return sum(values_of(chunk) for chunk in data.chunks)
    kind = data.type
    if isinstance(kind, pa.MapType):  # keys and items are of the whole array: the slice's by its offsets
        first, last = data.offsets[0].as_py(), data.offsets[-1].as_py()
        return len(data) + sum(values_of(part.slice(first, last - first)) for part in (data.keys, data.items))
    if isinstance(kind, (pa.ListType, pa.LargeListType, pa.FixedSizeListType, pa.ListViewType, pa.LargeListViewType)):
        return len(data) + values_of(data.flatten())
    if isinstance(kind, pa.StructType):
        return len(data) + sum(values_of(field) for field in data.flatten())
    if isinstance(kind, pa.DictionaryType) and data.dictionary.type in BINARY_LIKE:
        used = pc.binary_length(data.dictionary).take(data.indices.drop_null())
        return len(data) + (pc.sum(used).as_py() or 0)
    return len(data)
