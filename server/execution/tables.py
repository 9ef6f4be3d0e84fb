"""DataFrame outputs on the server: the Arrow stream leaves the bundle, later pages come from it.

A kernel's DataFrame bundle (``kernels.table_output``) may carry the whole table as a base64
Arrow IPC stream. ``take_arrow`` takes it out of the output, so that only the summary and first
page go to pages and caches, and the stream can be stored; ``read_rows`` serves pages from the
stored stream, converted as the kernel converted the first page (``kernels.arrow_rows``).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import pyarrow as pa

from kernels.arrow_rows import rows_of
from kernels.wire import ARROW_STREAM


def take_arrow(output: dict[str, Any]) -> bytes | None:
    """Remove the Arrow stream from ``output``'s bundle (in place); the stream, or None."""
    data = output.get("data")
    if not isinstance(data, dict) or ARROW_STREAM not in data:
        return None
    encoded = data.pop(ARROW_STREAM)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, TypeError, ValueError):
        return None


def _table(stream: bytes | Path | str) -> pa.Table:
    source = pa.py_buffer(stream) if isinstance(stream, bytes) else pa.memory_map(str(stream))
    return pa.ipc.open_stream(source).read_all()


def row_count(stream: bytes | Path | str) -> int:
    return _table(stream).num_rows


def read_rows(stream: bytes | Path | str, offset: int, limit: int) -> list[list[Any]]:
    """Rows ``offset`` to ``offset + limit`` of an Arrow stream (bytes or a file) as JSON-safe lists.

    The stream comes from a kernel: the rows read are fully validated first (``pa.ArrowInvalid``).
    """
    part = _table(stream).slice(offset, limit)
    part.validate(full=True)
    return rows_of(part)
