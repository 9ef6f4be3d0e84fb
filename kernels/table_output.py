"""DataFrames and Series as data, never HTML (DESIGN.md §7).

A DataFrame shown by a cell (last expression or ``display``) publishes the bundle:

- ``application/vnd.bi.dataframe.v1+json``: ``columns`` (name and pandas dtype of each),
  ``index`` (the names of the leading columns that hold the index), ``row_count``, ``rows``
  (the first ``FIRST_ROWS`` rows as JSON-safe lists, ``kernels.arrow_rows``, long values cut to
  ``PREVIEW_CELL_CHARS`` as on every page, the cut cells in ``truncated_cells``), and
  ``rows_available`` / ``complete``: how many rows can be paged, and whether that is all;
- ``application/vnd.bi.table-file.v1+json``: ``{"name"}`` of the whole table as an Arrow IPC
  stream written to the kernel's tables folder (``<name>.arrow``), only when it takes at most
  ``arrow_limit`` bytes and keeps within the rows and values the server accepts
  (``kernels.arrow_check``). The server fetches the file from the agent as it reads the output,
  stores it and serves later pages from it; the agent removes the file as it serves it. Without
  it (no folder, or the folder is full) only the first rows are available. The table never
  travels inside a message: a 40 MB table would be a 53 MB base64 string in one JSON message,
  which the server would hold several times over while parsing it;
- ``text/plain``: pandas' repr, cut to a few rows and columns.

A Series shows as a one-column frame (named ``value`` if it has no name). The table's columns are
the index levels, then the frame's columns; an unnamed RangeIndex (row positions, no information)
is left out. Names become strings: MultiIndex column tuples are joined with `` / ``, repeated
names get `` (2)``, `` (3)``... Values Arrow cannot hold as they are (mixed-type object columns,
complex numbers, periods, intervals) travel as their text.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from kernels import formatters
from kernels.arrow_check import Bounds, TableTooLarge, measure
from kernels.arrow_rows import cut_long_values, rows_of
from kernels.limits import ARROW_BYTES, ARROW_ROWS
from kernels.wire import DATAFRAME, TABLE_FILE

FIRST_ROWS = 50
PLAIN_ROWS, PLAIN_COLUMNS = 10, 20

Columns = list[tuple[str, pd.Series]]


def _name(label: Any) -> str:
    if isinstance(label, tuple):
        return " / ".join(str(part) for part in label if part != "")
    return str(label)


def _unique(names: list[str]) -> list[str]:
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, number = name, 1
        while candidate in taken:
            number += 1
            candidate = f"{name} ({number})"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def columns_of(frame: pd.DataFrame) -> tuple[Columns, int]:
    """The table's (name, values) columns, index levels first, and how many come from the index."""
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.name is None:
        levels = []
    else:
        default = ["index"] if index.nlevels == 1 else [f"level_{i}" for i in range(index.nlevels)]
        levels = [(name if name is not None else default[i], pd.Series(index.get_level_values(i)))
                  for i, name in enumerate(index.names)]
    labels = [label for label, _ in levels] + list(frame.columns)
    values = [values for _, values in levels] + [frame.iloc[:, i] for i in range(frame.shape[1])]
    return list(zip(_unique([_name(label) for label in labels]), values, strict=True)), len(levels)


def arrow_array(values: pd.Series) -> pa.Array:
    """``values`` as an Arrow array, or as strings where Arrow has no plain type for them."""
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        array = None
    if array is None or isinstance(array.type, pa.ExtensionType):
        array = pa.array(values.astype("string"), from_pandas=True)
    return array


def arrow_table(columns: Columns) -> pa.Table:
    return pa.Table.from_arrays([arrow_array(values) for _, values in columns],
                                names=[name for name, _ in columns])


def write_table(frame: pd.DataFrame, columns: Columns, limit: int, folder: Path) -> str | None:
    """Write the whole table to ``folder`` as ``<name>.arrow`` (an Arrow IPC stream); its name, or None
    if it takes more than ``limit`` bytes, passes another bound of the server's (rows, values) or
    does not fit the folder.

    A frame that already takes more than ``limit`` bytes in memory, or has too many rows, is not
    converted at all.
    """
    if len(frame) > ARROW_ROWS or frame.memory_usage(index=True, deep=False).sum() > limit:
        return None
    table = arrow_table(columns)
    if table.nbytes > limit:
        return None
    name = secrets.token_hex(16)
    path = folder / f"{name}.arrow"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with pa.OSFile(descriptor, "wb") as file, pa.ipc.new_stream(file, table.schema) as writer:
            writer.write_table(table)
        with pa.memory_map(str(path)) as written:
            measure(written, Bounds(bytes=limit))
    except (OSError, pa.ArrowException, TableTooLarge):  # the folder is full or gone, or the table too large
        path.unlink(missing_ok=True)
        return None
    return name


def plain(obj: pd.DataFrame | pd.Series) -> str:
    with pd.option_context("display.max_rows", PLAIN_ROWS, "display.min_rows", PLAIN_ROWS,
                           "display.max_columns", PLAIN_COLUMNS, "display.width", 120):
        return repr(obj)


def bundle(obj: pd.DataFrame | pd.Series, arrow_limit: int = ARROW_BYTES,
           tables_dir: str = "") -> dict[str, Any]:
    """The MIME bundle of a DataFrame or Series; without ``tables_dir``, only its first rows."""
    frame = obj.to_frame("value" if obj.name is None else obj.name) if isinstance(obj, pd.Series) else obj
    columns, index_columns = columns_of(frame)
    first, truncated = cut_long_values(arrow_table([(name, values.iloc[:FIRST_ROWS]) for name, values in columns]))
    stream = write_table(frame, columns, arrow_limit, Path(tables_dir)) if tables_dir else None
    data: dict[str, Any] = {
        DATAFRAME: {"columns": [{"name": name, "dtype": str(values.dtype)} for name, values in columns],
                    "index": [name for name, _ in columns[:index_columns]],
                    "row_count": len(frame),
                    "rows": rows_of(first),
                    "truncated_cells": truncated,
                    "rows_available": len(frame) if stream is not None else first.num_rows,
                    "complete": stream is not None},
        "text/plain": plain(obj),
    }
    if stream is not None:
        data[TABLE_FILE] = {"name": stream}
    return data


def install(shell: Any, arrow_limit: int = ARROW_BYTES, tables_dir: str = "") -> None:
    """DataFrames and Series shown on ``shell`` publish ``bundle`` and no HTML."""
    formatters.register(shell, (pd.DataFrame, pd.Series), lambda obj: bundle(obj, arrow_limit, tables_dir))
