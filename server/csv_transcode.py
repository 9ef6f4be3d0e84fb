"""The text columns of a CSV parsed from its own CP932 or EUC-JP bytes, transcoded to UTF-8.

In these encodings no byte below 0x40 is ever part of a multi-byte character, and the bytes below 0x80
are ASCII. So a delimiter, quote or line break byte of such a file is always that character: pyarrow can
split the file's own bytes into fields, and read numbers, dates and booleans from them as from UTF-8
(they are ASCII; a value that is not fails as it would in UTF-8). Only the text columns are still in the
file's encoding, and decoding them costs a fraction of decoding the whole file (numbers and dates are
most of its characters; a column of few distinct values decodes each once). Each value starts and ends
between characters, so a value that does not decode on its own is a byte sequence the whole file does
not decode either.
"""

from __future__ import annotations

import codecs

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

RAW_ENCODINGS = frozenset(codecs.lookup(name).name for name in (
    "cp932", "shift_jis", "euc_jp", "euc_jis_2004", "euc_jisx0213"))
"""Encodings read from their own bytes (shift_jis_2004 and shift_jisx0213 are not: their 0x5C and 0x7E are
not ASCII)."""
RAW_DELIMITER_BELOW = 0x40  # a delimiter byte from here up may be part of a character (Shift_JIS: "|" is 0x7C)
SEPARATORS = (0x0A, 0x00, 0x1F)  # the first of these no value holds parts the values joined for one decode
DISTINCT_SAMPLE = 1024  # values looked at to tell whether a column has few distinct values
FEW_DISTINCT = 4  # a sample with at least this many values per distinct one decodes each distinct value once


def reads_raw(encoding: str, delimiter: str) -> bool:
    """Whether a file in ``encoding`` with ``delimiter`` can be parsed from its own bytes."""
    return encoding in RAW_ENCODINGS and ord(delimiter) < RAW_DELIMITER_BELOW


def transcode_text(part: pa.Table | pa.RecordBatch, encoding: str) -> pa.Table | pa.RecordBatch:
    """``part`` with its text columns, read from ``encoding``'s bytes, as UTF-8; ``UnicodeDecodeError`` for
    a value ``encoding`` does not decode."""
    columns = part.columns
    for index, field in enumerate(part.schema):
        if pa.types.is_string(field.type):
            column = columns[index]
            if isinstance(column, pa.ChunkedArray):
                column = pa.chunked_array([_transcoded(chunk, encoding) for chunk in column.chunks], field.type)
            else:
                column = _transcoded(column, encoding)
            part = part.set_column(index, field, column)
    return part


def _transcoded(array: pa.StringArray, encoding: str) -> pa.StringArray:
    values = _value_bytes(array)
    if not values.size or values.max() < 0x80:  # ASCII: the same in UTF-8
        return array
    if array.null_count or _few_distinct(array):
        encoded = array.dictionary_encode()
        return _joined_decode(encoded.dictionary, _value_bytes(encoded.dictionary), encoding).take(encoded.indices)
    return _joined_decode(array, values, encoding)


def _value_bytes(array: pa.StringArray) -> np.ndarray:
    """The bytes of the values of ``array`` (no copy)."""
    data = array.buffers()[2]
    if not len(array) or data is None:
        return np.empty(0, np.uint8)
    offsets = np.frombuffer(array.buffers()[1], np.int32, len(array) + 1, array.offset * 4)
    return np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]


def _few_distinct(array: pa.StringArray) -> bool:
    sample = array.slice(0, DISTINCT_SAMPLE)
    return pc.count_distinct(sample).as_py() * FEW_DISTINCT <= len(sample)


def _joined_decode(array: pa.StringArray, values: np.ndarray, encoding: str) -> pa.StringArray:
    """The values of ``array`` (no nulls) decoded in one call: joined by a byte none of them holds (below 0x40,
    so no character spans two values), decoded, encoded to UTF-8 and cut apart where that byte is."""
    separator = next((byte for byte in SEPARATORS if not (values == byte).any()), None)
    if separator is None:
        return pa.array([value.decode(encoding) for value in array.view(pa.binary()).to_pylist()], pa.string())
    count = len(array)
    listed = pa.ListArray.from_arrays(pa.array([0, count], pa.int32()), array.view(pa.binary()))
    joined = pc.binary_join(listed, bytes([separator]))[0].as_buffer()
    text = np.frombuffer(str(memoryview(joined), encoding).encode(), np.uint8)
    cuts = np.flatnonzero(text == separator)
    offsets = np.empty(count + 1, np.int32)
    offsets[0], offsets[count] = 0, text.size - cuts.size
    offsets[1:count] = cuts - np.arange(count - 1, dtype=cuts.dtype)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(np.delete(text, cuts)))
