"""The one JSON reader for what clients send and the one writer for what the API sends back.

``loads`` reads a request body or a websocket frame within ``limits``: at most ``max_bytes``, UTF-8,
nesting at most ``JSON_DEPTH`` deep (counted on the bytes before anything is parsed, so a deep
document never reaches the recursive parser), number literals of at most ``JSON_NUMBER_DIGITS``
characters, integers within ``JSON_INT_MAX``, finite floats, no ``NaN``/``Infinity``/``-Infinity``
and no lone surrogate escapes. A problem raises ``InvalidJSONError`` (400, ``invalid_json``) with
``details.reason`` and, when the parser got that far, the JSON pointer of the offending value
(``/`` for the whole document, as the API's schema errors name it).

``dumps`` writes UTF-8 JSON that any strict parser reads: ``NaN`` and infinities (values computed
from data or kernel output) become ``null`` and a lone surrogate is escaped; neither fails a
response. Bokeh items need nothing: Bokeh writes non-finite numbers as
``{"type": "number", "value": "nan"}`` itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import InvalidJSONError, PayloadTooLargeError
from .limits import JSON_DEPTH, JSON_INT_MAX, JSON_NUMBER_DIGITS
from .logs import get_logger

log = get_logger("bi.json")

SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]", re.IGNORECASE)
SCAN_BYTES = 256 * 1024  # bytes scanned at once by ``check_shape``
QUOTE = ord('"')
STRUCTURAL = [bytes([byte]) for byte in b"[]{},:"]
IS_STRUCTURAL = np.zeros(256, dtype=bool)
IS_STRUCTURAL[list(b"[]{},:")] = True
STEP = np.zeros(256, dtype=np.int8)
STEP[list(b"[{")] = 1
STEP[list(b"]}")] = -1
SEPARATORS = (",", ":")


class _Refused:
    """Stands in for a literal the parser met but we refuse; found afterwards to name its pointer."""

    __slots__ = ("message", "reason")

    def __init__(self, reason: str, message: str):
        self.reason = reason
        self.message = message


def loads(raw: str | bytes, max_bytes: int | None, max_values: int | None = None) -> Any:
    """The JSON value in ``raw``, read within the limits above (no size limit when ``max_bytes`` is None) and
    of at most ``max_values`` values (``check_shape``), counted before it is parsed."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLargeError(f"A JSON document may have at most {max_bytes} bytes.",
                                   {"limit_bytes": max_bytes})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJSONError(f"The JSON is not UTF-8 text (byte {exc.start} cannot be decoded).",
                               {"reason": "encoding", "position": exc.start}) from None
    check_shape(data, values=max_values)
    refused: list[_Refused] = []
    try:
        value = json.loads(text, parse_int=_reader_of(_int, refused), parse_float=_reader_of(_float, refused),
                           parse_constant=_reader_of(_constant, refused))
    except json.JSONDecodeError as exc:
        raise InvalidJSONError(f"The JSON cannot be read: {exc.msg} at line {exc.lineno} column {exc.colno}.",
                               {"reason": "syntax", "line": exc.lineno, "column": exc.colno}) from None
    if refused or SURROGATE_ESCAPE.search(data):
        _check_values(value, "")
    return value


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as compact UTF-8 JSON, with non-finite numbers as ``null`` (logged, never raised);
    ``default`` as for ``json.dumps``."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=SEPARATORS, allow_nan=False,
                          default=default).encode()
    except ValueError:  # a NaN or infinity (ValueError), or a lone surrogate (UnicodeEncodeError)
        log.warning("json_written_with_replacements")
        return json.dumps(_finite(value), ensure_ascii=True, separators=SEPARATORS, allow_nan=False,
                          default=default).encode()


def pointer_of(path: list[str | int]) -> str:
    """An RFC 6901 JSON pointer to ``path``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def check_shape(data: bytes, depth: int = JSON_DEPTH, values: int | None = None) -> int:
    """The values in JSON ``data`` (at most its structural bytes ``[]{},:`` outside strings, plus one: each
    array item, key and value past the first of its container follows one); refuse nesting deeper than
    ``depth`` or more than ``values`` values, without parsing.

    Counted on the bytes in slices of ``SCAN_BYTES``, so the count costs a few arrays of one slice
    whatever the document holds (splitting out its strings made a copy per string: 450 MB for 10 MB
    of short strings). Escapes are paired from the left first, as a parser reads them; a backslash
    outside a string is a syntax error the parser stops at, so up to there both agree."""
    structural = sum(data.count(byte) for byte in STRUCTURAL)
    if data.count(b"[") + data.count(b"{") <= depth and (values is None or structural < values):
        return structural + 1  # too few brackets to nest deeper, nor bytes to count more values, strings included
    if b"\\" in data:
        data = data.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    view = np.frombuffer(data, dtype=np.uint8)
    in_string, level, deepest, counted = 0, 0, 0, 1
    for start in range(0, len(view), SCAN_BYTES):
        piece = view[start:start + SCAN_BYTES]
        quotes = np.cumsum(piece == QUOTE, dtype=np.int32)
        outside = ((quotes + in_string) & 1) == 0
        levels = np.cumsum(np.where(outside, STEP[piece], 0), dtype=np.int32) + level
        deepest = max(deepest, int(levels.max()))
        counted += int(np.count_nonzero(outside & IS_STRUCTURAL[piece]))
        in_string, level = (in_string + int(quotes[-1])) & 1, int(levels[-1])
    if deepest > depth:
        raise InvalidJSONError(f"The JSON nests deeper than {depth} levels of arrays and objects.",
                               {"reason": "too_deep", "limit": depth})
    if values is not None and counted > values:
        raise InvalidJSONError(f"The JSON holds more than {values:,} values.", {"reason": "too_many_values",
                                                                                 "limit": values})
    return counted


def _reader_of(parse: Any, refused: list[_Refused]) -> Any:
    def read(literal: str) -> Any:
        value = parse(literal)
        if isinstance(value, _Refused):
            refused.append(value)
        return value
    return read


def _int(literal: str) -> int | _Refused:
    if len(literal) > JSON_NUMBER_DIGITS:
        return _Refused("number", f"numbers may have at most {JSON_NUMBER_DIGITS} characters")
    value = int(literal)
    if abs(value) > JSON_INT_MAX:
        return _Refused("number", f"whole numbers must lie within ±{JSON_INT_MAX}")
    return value


def _float(literal: str) -> float | _Refused:
    if len(literal) > JSON_NUMBER_DIGITS:
        return _Refused("number", f"numbers may have at most {JSON_NUMBER_DIGITS} characters")
    value = float(literal)
    if not math.isfinite(value):
        return _Refused("number", "numbers must be finite (this one is too large)")
    return value


def _constant(literal: str) -> _Refused:
    return _Refused("non_finite", f"{literal} is not JSON; send a finite number or null")


def _check_values(value: Any, pointer: str) -> None:
    """Raise for the first refused literal or lone surrogate in ``value`` (nesting already bounded)."""
    if isinstance(value, _Refused):
        raise InvalidJSONError(f"{pointer or '/'}: {value.message}.",
                               {"reason": value.reason, "pointer": pointer or "/"})
    if isinstance(value, str):
        _check_text(value, pointer)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{pointer}/{index}")
    elif isinstance(value, dict):
        for key, item in value.items():
            child = pointer + pointer_of([key])
            _check_text(key, child)
            _check_values(item, child)


def _check_text(text: str, pointer: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJSONError(f"{pointer or '/'}: the text holds a lone surrogate (\\ud800-\\udfff without "
                               "its pair), which is not Unicode.",
                               {"reason": "surrogate", "pointer": pointer or "/"}) from None


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as None and lone surrogates left for ``ensure_ascii`` to escape."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value
