"""What reading an Arrow IPC stream would cost, from its metadata alone, before anything is read.

A stream's record batches say how many rows they hold and, for each buffer, where it lies in the
body; a compressed buffer starts with the size it inflates to. ``measure`` adds these up message
by message without decompressing or allocating anything, so a small stream that inflates to
gigabytes, claims a billion rows of a type without buffers (nulls) or nests a billion list items
is refused at the cost of reading its headers (at most ``messages`` of them). Dictionaries must
hold flat values: a nested dictionary value is repeated by every index that points at it when
rows are converted.

The kernel uses it to decide whether a table travels at all, the server to refuse one that does
not keep within the bounds (``kernels.limits``).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pyarrow as pa

from kernels.limits import ARROW_BYTES, ARROW_MESSAGES, ARROW_ROWS, ARROW_VALUES

SCHEMA, DICTIONARY_BATCH, RECORD_BATCH = 1, 2, 3  # flatbuffer MessageHeader union tags (Message.fbs)
UNCOMPRESSED = -1  # a compressed stream's prefix for a buffer stored as it is


class TableTooLarge(ValueError):
    """The stream would take more than a bound once read; ``bound`` names it."""

    def __init__(self, message: str, bound: str):
        super().__init__(message)
        self.bound = bound


@dataclasses.dataclass(frozen=True)
class Bounds:
    bytes: int = ARROW_BYTES
    rows: int = ARROW_ROWS
    values: int = ARROW_VALUES
    messages: int = ARROW_MESSAGES


@dataclasses.dataclass
class Size:
    """What a stream holds: rows, buffer bytes once decompressed, values (every field's length), messages."""

    rows: int = 0
    bytes: int = 0
    values: int = 0
    messages: int = 0


def measure(source: Any, bounds: Bounds = Bounds()) -> Size:
    """The ``Size`` of the stream in ``source`` (bytes, a buffer or a file), checked against ``bounds``
    as each message is read: ``TableTooLarge`` past one, ``pa.ArrowInvalid`` for a malformed stream."""
    reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(source) if isinstance(source, bytes) else source)
    size = Size()
    seen_schema = False
    for message in reader:
        size.messages += 1
        _check(size, bounds)
        try:
            header_type, header = _header(message.metadata.to_pybytes())
            if header_type == SCHEMA:
                _check_schema(pa.ipc.read_schema(message))
                seen_schema = True
                continue
            if header_type not in (RECORD_BATCH, DICTIONARY_BATCH):
                raise pa.ArrowInvalid(f"unexpected Arrow IPC message type {header_type}")
            batch = header.table(1) if header is not None and header_type == DICTIONARY_BATCH else header
            if batch is None or not seen_schema:
                raise pa.ArrowInvalid("a batch without a schema or a body description")
            if header_type == RECORD_BATCH:
                size.rows += batch.scalar(0, "<q")
            size.values += sum(length for length, _ in batch.structs(1))
            size.bytes += _body_bytes(batch, message.body)
        except (struct.error, IndexError, OverflowError) as exc:
            raise pa.ArrowInvalid(f"malformed Arrow IPC metadata: {exc}") from None
        _check(size, bounds)
    if not seen_schema:
        raise pa.ArrowInvalid("an Arrow IPC stream without a schema")
    return size


def _check(size: Size, bounds: Bounds) -> None:
    for name in ("rows", "bytes", "values", "messages"):
        value, limit = getattr(size, name), getattr(bounds, name)
        if value < 0:
            raise pa.ArrowInvalid(f"negative {name} in Arrow IPC metadata")
        if value > limit:
            raise TableTooLarge(f"the table holds more than {limit:,} {name}", name)


def _check_schema(schema: pa.Schema) -> None:
    for field in schema:
        _check_type(field.type)


def _check_type(kind: pa.DataType) -> None:
    if isinstance(kind, pa.DictionaryType) and kind.value_type.num_fields:
        raise pa.ArrowInvalid(f"dictionary of nested values ({kind.value_type}) is not accepted")
    for index in range(kind.num_fields):
        _check_type(kind.field(index).type)


def _body_bytes(batch: _Table, body: pa.Buffer | None) -> int:
    """Bytes of the batch's buffers once decompressed (a compressed buffer's 8-byte size prefix)."""
    buffers = batch.structs(2)
    if batch.table(3) is None:  # no BodyCompression: buffers are stored as they are
        return sum(length for _, length in buffers)
    total = 0
    for offset, length in buffers:
        if length == 0:
            continue
        if body is None or offset < 0 or length < 8 or offset + length > body.size:
            raise pa.ArrowInvalid("a compressed buffer outside the message body")
        (inflated,) = struct.unpack("<q", body.slice(offset, 8).to_pybytes())
        total += length - 8 if inflated == UNCOMPRESSED else inflated
    return total


def _header(metadata: bytes) -> tuple[int, _Table | None]:
    """The ``Message`` flatbuffer's header type and header table."""
    message = _Table(metadata, struct.unpack_from("<I", metadata, 0)[0])
    return message.scalar(1, "<B"), message.table(2)


class _Table:
    """Just enough of a flatbuffers table reader for the Arrow IPC ``Message`` schema."""

    def __init__(self, buffer: bytes, position: int):
        self.buffer, self.position = buffer, position
        self.vtable = position - struct.unpack_from("<i", buffer, position)[0]
        self.vtable_size = struct.unpack_from("<H", buffer, self.vtable)[0]

    def _offset(self, field: int) -> int:
        entry = 4 + 2 * field
        return struct.unpack_from("<H", self.buffer, self.vtable + entry)[0] if entry < self.vtable_size else 0

    def scalar(self, field: int, fmt: str) -> int:
        offset = self._offset(field)
        return struct.unpack_from(fmt, self.buffer, self.position + offset)[0] if offset else 0

    def table(self, field: int) -> _Table | None:
        offset = self._offset(field)
        if not offset:
            return None
        at = self.position + offset
        return _Table(self.buffer, at + struct.unpack_from("<I", self.buffer, at)[0])

    def structs(self, field: int) -> list[tuple[int, int]]:
        """A vector of 16-byte structs of two int64 (``FieldNode``, ``Buffer``)."""
        offset = self._offset(field)
        if not offset:
            return []
        at = self.position + offset
        at += struct.unpack_from("<I", self.buffer, at)[0]
        count = struct.unpack_from("<I", self.buffer, at)[0]
        if at + 4 + 16 * count > len(self.buffer):
            raise IndexError("a vector past the end of the metadata")
        return [struct.unpack_from("<qq", self.buffer, at + 4 + 16 * index) for index in range(count)]
