"""Rows of an Arrow table as JSON-safe lists: one conversion for every page of rows we serve.

Used by the kernel for a DataFrame's first page, by the server for later pages of a card output
and for dataset previews, so a value looks the same on every page.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import pyarrow as pa


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
