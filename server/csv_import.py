"""Convert an uploaded CSV file to Parquet.

A byte sample (the head plus a few pieces from further in) picks the encoding: a BOM, strict
UTF-8, else charset-normalizer. The decoded head picks the delimiter. A feed hands pyarrow's
streaming CSV reader the file as UTF-8, one block at a time and only a few blocks ahead of
the batches consumed, transcoding in small steps; a second thread writes the batches,
gathered into row groups, to a ParquetWriter. Memory is thus bounded by a few blocks and
one row group whatever the file size or core count. A CP932 or EUC-JP file is not transcoded: pyarrow
parses its own bytes, after the header (whose names are decoded here), and only its text columns are
decoded (``server.csv_transcode``). Such a file without a quote skips the streaming reader: its chunks,
cut at newlines, are parsed and their text decoded apart on threads (``_parse_chunks``); a quote met
further in reads the file again the streaming way. A wide file (more than ``WIDE_COLUMNS``
columns) is read in small blocks on one thread: its cost per block grows with its columns (each
column's builders, on each conversion thread), and what the pool freed goes back to the system after
each row group. Column types come from the first
block; when a later block does not fit, the column is widened and the file is read again
from the start, as it is with longer blocks (up to ``LONGEST_ROW_BYTES``) when a row is longer
than a block. Every data problem becomes an UnprocessableError naming the line and the
reason, and the target file is removed.
"""

from __future__ import annotations

import codecs
import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import encodings
import io
import itertools
import pkgutil
import re
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path

import charset_normalizer
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from charset_normalizer.md import mess_ratio

from server.csv_transcode import reads_raw, transcode_text
from server.errors import InvalidRequestError, UnprocessableError, quoted
from server.limits import CSV_COLUMNS, CSV_HEADER_CHARS, CSV_ROW_BYTES
from server.models import Column

FIRST_BLOCK_SIZE = 8 << 20
BLOCK_SIZE = 2 << 20
WIDE_COLUMNS = 100  # a file wider is read in WIDE_BLOCK_SIZE blocks on one thread
WIDE_BLOCK_SIZE = 1 << 20
LONGEST_ROW_BYTES = CSV_ROW_BYTES  # blocks grow to this for long rows (a few are in memory at once)
TRANSCODE_STEP = 256 << 10
CHUNK_BYTES = 2 << 20  # a raw file without a quote is parsed in chunks of about this many bytes (after the first)
PARSE_THREADS = 2  # threads parsing chunks apart (pyarrow releases the GIL)
READ_AHEAD_BLOCKS = 3
READ_AHEAD_TIMEOUT = 2.0
ROW_GROUP_BYTES = 4 << 20  # the last group is written after all is read; 8 MB ones made a file only 0.4 % smaller
MAX_ATTEMPTS = 8
COMPRESSION = "zstd"
SAMPLE_HEAD_BYTES = 1 << 20
SAMPLE_PIECE_BYTES = 64 << 10
SAMPLE_PIECES = 4
DETECTION_BYTES = 160 << 10
SNIFF_CHARS = 64 << 10
SNIFF_BYTES = 4 * SNIFF_CHARS  # hold SNIFF_CHARS characters in any encoding
DELIMITERS = (",", "\t", ";", "|")
TIMESTAMP_PARSERS = (pacsv.ISO8601, "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")

_ENCODING_HINT = "pass encoding= with the file's real encoding, for example cp932, euc_jp or utf-8"
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SJIS_FAMILY = frozenset({"cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213"})
_EUC_FAMILY = frozenset({"euc_jp", "euc_jis_2004", "euc_jisx0213"})
_SUPERSETS = {**dict.fromkeys(_SJIS_FAMILY, "cp932"), **dict.fromkeys(_EUC_FAMILY, "euc_jp")}
_JAPANESE_CHAOS_MARGIN = 0.1
_WESTERN = "cp1252"
_UTF8_DAMAGE_RATIO = 20
_WIDE_UNICODE = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]
_NATIVE_UTF8 = frozenset({"utf-8", "utf-8-sig"})
_BOM_REQUIRED = {"utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
                 "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)}
# Text codecs made for something other than files: domain names, Python literals, mail headers.
_NOT_FOR_FILES = ("idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape", "utf_7", "charmap")
_RAGGED_ROW = re.compile(r"CSV parse error: (?:Row #\d+: )?Expected (\d+) columns, got (\d+)")  # then the row
_CONVERSION_ERROR = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to [^:]+: invalid value '(.*)'\Z", re.S
)


@dataclasses.dataclass(frozen=True)
class ImportResult:
    row_count: int
    columns: tuple[Column, ...]
    encoding: str
    encoding_detected: bool
    encoding_confidence: float
    delimiter: str
    delimiter_detected: bool


def convert_csv_to_parquet(
    source: Path, target: Path, *, encoding: str | None = None, delimiter: str | None = None,
    max_columns: int = CSV_COLUMNS,
) -> ImportResult:
    """Write the CSV file ``source`` to ``target`` as Parquet; ``target`` never survives a failure.

    A header of more than ``max_columns`` columns or ``CSV_HEADER_CHARS`` characters is refused
    before anything is converted."""
    given = _given_encoding(encoding) if encoding is not None else None
    _check_delimiter(delimiter)
    try:
        return _convert(Path(source), Path(target), given, delimiter, max_columns)
    except BaseException:
        Path(target).unlink(missing_ok=True)
        raise
    finally:
        pa.default_memory_pool().release_unused()  # the blocks go back to the system, not kept for later


@dataclasses.dataclass(frozen=True)
class _Encoding:
    name: str
    detected: bool
    confidence: float


@dataclasses.dataclass(frozen=True)
class _Sample:
    head: bytes
    pieces: tuple[bytes, ...]
    whole: bool


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How pyarrow is told to read the file on one attempt."""

    encoding: str
    delimiter: str
    column_names: tuple[str, ...] | None = None
    column_types: Mapping[str, pa.DataType] = dataclasses.field(default_factory=dict)
    block_size: int = 0  # past the first block; 0: BLOCK_SIZE (WIDE_BLOCK_SIZE for a wide file)
    wide: bool = False  # more than WIDE_COLUMNS columns
    skip_rows: int = 1  # lines before the records when column_names are given (not raw): ``_header_lines``
    raw: bool = False  # pyarrow parses the file's own bytes from ``start``, and its text columns are transcoded
    start: int = 0  # where the records start in a raw file (after the header, whose names are column_names)
    chunked: bool = False  # a raw file's chunks are parsed apart, on threads (no quote in it: see _parse_chunks)

    @property
    def blocks(self) -> tuple[int, int]:
        """The sizes of the first block and of those after it."""
        if self.wide:
            size = self.block_size or WIDE_BLOCK_SIZE
            return size, size
        later = self.block_size or BLOCK_SIZE
        return max(FIRST_BLOCK_SIZE, later), later


class _Retry(Exception):
    """Read again with ``plan``; ``names`` are the columns of the failed attempt."""

    def __init__(self, plan: _Plan, names: list[str]):
        super().__init__("retry")
        self.plan = plan
        self.names = names


class _RaggedRow(Exception):
    """A record had ``actual`` fields, not the header's ``expected``."""

    def __init__(self, expected: int, actual: int):
        super().__init__("ragged row")
        self.expected, self.actual = expected, actual


class _LongRow(Exception):
    """A row is longer than ``LONGEST_ROW_BYTES``."""


class _Serial(Exception):
    """A chunk cannot be parsed apart from the others: read the file again with one streaming reader."""


class _BadBytes(Exception):
    """Bytes invalid in the encoding reached pyarrow's native UTF-8 path."""


def _file_encodings() -> frozenset[str]:
    """The canonical names of the standard library's codecs that read text files."""
    names = set()
    for module in pkgutil.iter_modules(encodings.__path__):
        try:
            info = codecs.lookup(module.name)
        except LookupError:  # aliases, and Windows-only codecs
            continue
        if info._is_text_encoding:  # no bytes-to-bytes or str-to-str codecs
            names.add(info.name)
    return frozenset(names - {codecs.lookup(name).name for name in _NOT_FOR_FILES})


CSV_ENCODINGS = _file_encodings()
"""The encodings a caller may name: every text file encoding of the standard library."""


def _given_encoding(name: str) -> _Encoding:
    """The caller's encoding under its canonical codec name, if it is one a CSV file can be in."""
    try:
        canonical = codecs.lookup(name).name
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        canonical = None
    if canonical not in CSV_ENCODINGS:
        raise InvalidRequestError(
            f"unknown encoding {quoted(name)}: name the text encoding of the file, for example "
            "utf-8, cp932, euc_jp or cp1252", {"field": "encoding"}, code="invalid_encoding")
    return _Encoding(canonical, detected=False, confidence=1.0)


def _check_delimiter(delimiter: str | None) -> None:
    """One tab or printable ASCII character other than a quote (line breaks end rows)."""
    if delimiter is not None and not (delimiter == "\t" or (
            len(delimiter) == 1 and " " <= delimiter <= "~" and delimiter != '"')):
        raise InvalidRequestError(
            f"delimiter must be a tab or one printable ASCII character other than a quote, got "
            f"{quoted(delimiter)}", {"field": "delimiter"}, code="invalid_delimiter")


def _convert(
    source: Path, target: Path, given: _Encoding | None, delimiter: str | None, max_columns: int
) -> ImportResult:
    sample = _read_sample(source)
    if given is not None:
        _check_byte_order_mark(sample, given.name)
    chosen = given or _detect_encoding(sample)
    try:
        text = _decode_head(sample, chosen.name)
    except UnicodeError:
        raise _encoding_error(source, chosen) from None
    if sample.whole and not text.lstrip("\ufeff").strip():
        raise UnprocessableError("The file is empty.", {"line": None, "reason": "empty file"})
    chosen_delimiter = delimiter or _sniff_delimiter(text)
    columns = _check_header(text, chosen_delimiter, sample.whole, max_columns)
    wide = columns > WIDE_COLUMNS
    plan = _Plan(chosen.name, chosen_delimiter, wide=wide, skip_rows=_header_lines(text, chosen_delimiter))
    try:
        if reads_raw(chosen.name, chosen_delimiter):
            plan = _raw_plan(plan, sample, text)
        rows, schema = _convert_with_retries(source, target, plan)
    except (UnicodeError, _BadBytes):
        raise _encoding_error(source, chosen) from None
    except _RaggedRow as ragged:
        raise _ragged_error(source, plan, chosen, ragged.expected, ragged.actual) from None
    except _LongRow:
        limit = LONGEST_ROW_BYTES >> 20
        raise UnprocessableError(
            f"A row of the file is longer than {limit} MB, the most one row can hold; shorten its "
            "longest fields (long text belongs in several rows or a separate file) and upload again.",
            {"line": None, "reason": f"row longer than {limit} MB"},
        ) from None
    except pa.ArrowException as exc:
        raise _arrow_error(exc) from None
    if rows == 0:
        raise _header_only_error()
    return ImportResult(
        row_count=rows,
        columns=tuple(Column(field.name, str(field.type)) for field in schema),
        encoding=chosen.name,
        encoding_detected=chosen.detected,
        encoding_confidence=chosen.confidence,
        delimiter=plan.delimiter,
        delimiter_detected=delimiter is None,
    )


def _check_byte_order_mark(sample: _Sample, encoding: str) -> None:
    """UTF-16 and UTF-32 without a byte order need a file that says which it is."""
    boms = _BOM_REQUIRED.get(encoding)
    if boms is not None and not sample.head.startswith(boms):
        raise UnprocessableError(
            f"The file does not start with a byte order mark, so {encoding} does not say whether it is "
            f"little- or big-endian; pass encoding={encoding}-le or encoding={encoding}-be.",
            {"line": None, "reason": "no byte order mark"}, code="byte_order_mark_missing")


def _check_header(text: str, delimiter: str, whole: bool, max_columns: int) -> int:
    """The header row's columns; refuse more than ``max_columns`` or ``CSV_HEADER_CHARS`` characters.

    ``text`` is the decoded head of the file; a header that does not end in it is longer than
    the limit (the head holds at least ``CSV_HEADER_CHARS`` characters in any encoding).
    """
    columns, length, ended = _header_shape(text, delimiter)
    ended = ended or whole
    if columns > max_columns:
        counted = f"{columns:,}" if ended else f"at least {columns:,}"
        raise UnprocessableError(
            f"The header row has {counted} columns; a dataset may have at most {max_columns:,}. "
            "Split the file into several with fewer columns each, or drop the columns you do not need.",
            {"columns": columns, "limit": max_columns}, code="too_many_columns")
    if length > CSV_HEADER_CHARS or not ended:
        raise UnprocessableError(
            f"The header row is longer than {CSV_HEADER_CHARS:,} characters; give the columns shorter "
            "names (is the first line really a header?).",
            {"limit": CSV_HEADER_CHARS}, code="header_too_long")
    return columns


_HEADER_TOKENS: dict[str, re.Pattern[str]] = {}
_LINE_BREAK = re.compile(rb"[\r\n]")
_LINE_END = re.compile(r"\r\n|\r|\n")


def _header_shape(text: str, delimiter: str) -> tuple[int, int, bool]:
    """(columns, characters, whether it ended) of the first non-empty record of ``text``, read as
    pyarrow reads it: quotes (doubled inside) hide delimiters and line breaks."""
    tokens = _HEADER_TOKENS.setdefault(delimiter, re.compile(f'["\r\n{re.escape(delimiter)}]'))
    start = len(text) - len(text.lstrip("\r\n"))
    columns, in_quotes = 1, False
    for match in tokens.finditer(text, start):
        token = match.group()
        if token == '"':
            in_quotes = not in_quotes
        elif in_quotes:
            continue
        elif token == delimiter:
            columns += 1
        else:
            return columns, match.start() - start, True
    return columns, len(text) - start, False


def _header_lines(text: str, delimiter: str) -> int:
    """The lines up to the end of the header in ``text`` (the decoded head): blank lines before it and those of its
    quoted line breaks too, as pyarrow's ``skip_rows`` counts them (it skips lines, not records)."""
    skipped = len(text) - len(text.lstrip("\r\n"))
    _, length, _ = _header_shape(text, delimiter)
    return len(_LINE_END.findall(text, 0, skipped + length)) + 1


def _raw_plan(plan: _Plan, sample: _Sample, text: str) -> _Plan:
    """``plan`` for a file pyarrow parses from its own bytes (``server.csv_transcode``): its records start after
    the header, whose names are decoded here (``UnicodeDecodeError`` for a byte the encoding does not decode)
    and read as pyarrow reads them; its chunks are parsed apart unless it is wide or its sample holds a quote.

    ``text`` is the decoded head: the header ends at the line break after as many as it holds (each is one byte).
    """
    skipped = len(text) - len(text.lstrip("\r\n"))
    _, length, _ = _header_shape(text, plan.delimiter)
    inside = sum(map(text[: skipped + length].count, "\r\n"))
    breaks = [match.start() for match in itertools.islice(_LINE_BREAK.finditer(sample.head), inside + 1)]
    end = breaks[inside] if len(breaks) > inside else len(sample.head)
    header = sample.head[:end].decode(plan.encoding) + "\n" + plan.delimiter  # pyarrow reads no header alone
    names = pacsv.read_csv(pa.py_buffer(header.encode()), parse_options=pacsv.ParseOptions(
        delimiter=plan.delimiter, invalid_row_handler=lambda row: "skip")).column_names
    quoted = any(b'"' in part for part in (sample.head, *sample.pieces))
    return dataclasses.replace(plan, raw=True, start=end + 1, column_names=tuple(_unique_names(names)),
                               chunked=not plan.wide and not quoted)


def _read_sample(source: Path) -> _Sample:
    """The first bytes of the file plus pieces spread over the rest, each cut at line ends."""
    size = source.stat().st_size
    with source.open("rb") as file:
        head = file.read(SAMPLE_HEAD_BYTES)
        if size <= SAMPLE_HEAD_BYTES:
            return _Sample(head, (), whole=True)
        pieces = tuple(_read_piece(file, offset, size) for offset in _piece_offsets(size))
    cut = head.rfind(b"\n") + 1
    return _Sample(head[:cut] if cut else head, pieces, whole=False)


def _piece_offsets(size: int) -> list[int]:
    """Evenly spaced offsets from the end of the head to the last piece of the file."""
    last = max(size - SAMPLE_PIECE_BYTES, SAMPLE_HEAD_BYTES)
    step = (last - SAMPLE_HEAD_BYTES) / max(SAMPLE_PIECES - 1, 1)
    return sorted({SAMPLE_HEAD_BYTES + round(step * k) for k in range(SAMPLE_PIECES)})


def _read_piece(file: io.BufferedReader, offset: int, size: int) -> bytes:
    """The whole lines inside ``SAMPLE_PIECE_BYTES`` bytes at ``offset`` (up to EOF for the last)."""
    file.seek(offset)
    data = file.read(SAMPLE_PIECE_BYTES)
    start = data.find(b"\n") + 1
    end = len(data) if offset + len(data) >= size else data.rfind(b"\n") + 1
    return data[start:end] if end > start else b""


def _detect_encoding(sample: _Sample) -> _Encoding:
    for bom, name in _BOMS:
        if sample.head.startswith(bom):
            return _Encoding(name, detected=True, confidence=1.0)
    if _is_utf8(sample):
        return _Encoding("utf-8", detected=True, confidence=1.0)
    data = _non_ascii_lines(sample)
    return _damaged_utf8(data) or _guess_encoding(data)


def _is_utf8(sample: _Sample) -> bool:
    """Whether every part of the sample is strict UTF-8 (a truncated last character is allowed)."""
    try:
        for part in (sample.head, *sample.pieces):
            codecs.utf_8_decode(part, "strict", False)
    except UnicodeDecodeError:
        return False
    return True


def _damaged_utf8(data: bytes) -> _Encoding | None:
    """UTF-8 if valid multi-byte characters outnumber invalid bytes many times over.

    Such a file is UTF-8 with a few corrupt bytes, better reported by line than read as
    some legacy code page. CP932 and EUC-JP text is mostly invalid as UTF-8.
    """
    text = data.decode("utf-8", "replace")
    damaged = text.count("\ufffd")
    valid = len(text) - len(text.encode("ascii", "ignore")) - damaged
    if valid < _UTF8_DAMAGE_RATIO * damaged:
        return None
    return _Encoding("utf-8", detected=True, confidence=round(valid / (valid + damaged), 3))


def _non_ascii_lines(sample: _Sample) -> bytes:
    """The sample's lines that carry any information about the encoding, up to a budget per part.

    The budget keeps detection fast on big files while every part still has its say.
    """
    parts = (sample.head, *sample.pieces)
    budget = DETECTION_BYTES // len(parts)
    chosen: list[bytes] = []
    for part in parts:
        taken = 0
        for line in part.splitlines(keepends=True):
            if taken >= budget:
                break
            if not line.isascii():
                chosen.append(line)
                taken += len(line)
    return b"".join(chosen)


def _guess_encoding(data: bytes) -> _Encoding:
    """charset-normalizer's verdict, nudged towards Japanese codecs and their supersets, then
    towards the Western cp1252: a few stray bytes in ASCII text fit dozens of code pages equally
    well, and charset-normalizer would pick the first by name (cp1006, Urdu).

    UTF-16/32 are only recognised by their BOM: without one, lines are not 0x0A-delimited
    and a short sample of stray bytes too easily "decodes" as UTF-16.
    """
    matches = list(charset_normalizer.from_bytes(data, threshold=1.0, cp_exclusion=_WIDE_UNICODE))
    if not matches:
        raise UnprocessableError(
            f"The file's text encoding could not be detected; {_ENCODING_HINT}.",
            {"line": None, "reason": "unknown encoding"},
        )
    match = _prefer_japanese(matches)
    if match is None:
        western = _western(data, matches[0].chaos)
        if western is not None:
            return western
        match = matches[0]
    confidence = round(1.0 - match.chaos, 3)
    return _Encoding(_superset(match.encoding, data), detected=True, confidence=confidence)


def _western(data: bytes, best_chaos: float) -> _Encoding | None:
    """cp1252 if it reads ``data`` nearly as well as the best match."""
    try:
        chaos = mess_ratio(data.decode(_WESTERN))
    except UnicodeDecodeError:
        return None
    if chaos > best_chaos + _JAPANESE_CHAOS_MARGIN:
        return None
    return _Encoding(_WESTERN, detected=True, confidence=round(1.0 - chaos, 3))


def _prefer_japanese(matches: list[charset_normalizer.CharsetMatch]) -> charset_normalizer.CharsetMatch | None:
    """The first EUC-JP, else Shift_JIS, match nearly as good as the best, if any.

    EUC-JP goes first: EUC-JP bytes nearly always also decode as CP932, while ordinary CP932
    text (kana, symbols, level-1 kanji) never decodes as EUC-JP.
    """
    near = [m for m in matches if m.chaos <= matches[0].chaos + _JAPANESE_CHAOS_MARGIN]
    for family in (_EUC_FAMILY, _SJIS_FAMILY):
        for match in near:
            if codecs.lookup(match.encoding).name in family:
                return match
    return None


def _superset(name: str, data: bytes) -> str:
    """``cp932`` for the Shift_JIS family, ``euc_jp`` for EUC, when they decode ``data``."""
    canonical = codecs.lookup(name).name
    preferred = _SUPERSETS.get(canonical, canonical)
    try:
        data.decode(preferred)
    except UnicodeDecodeError:
        return canonical
    return preferred


def _decode_head(sample: _Sample, encoding: str) -> str:
    """The head as text, or only its first ``SNIFF_BYTES`` when the header ends in them: the rest of it is not read
    (decoding a 1 MB CP932 head took 6 ms, on the way to the first parsed row)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    if sample.whole:
        return decoder.decode(sample.head, final=True)
    text = decoder.decode(sample.head[:SNIFF_BYTES])
    if _header_shape(text, ",")[2]:  # where the header ends does not depend on the delimiter
        return text
    return text + decoder.decode(sample.head[SNIFF_BYTES:])


def _sniff_delimiter(text: str) -> str:
    """The candidate giving the header at least two fields and the most rows of its width."""
    chunk = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS:
        chunk = chunk[: chunk.rfind("\n") + 1] or chunk
    scores = {delimiter: _consistency(chunk, delimiter) for delimiter in DELIMITERS}
    best = max(DELIMITERS, key=scores.__getitem__)
    return best if scores[best][0] > 0 else ","


def _consistency(chunk: str, delimiter: str) -> tuple[float, int]:
    """(share of records as wide as the header, header width); zero unless the header splits."""
    try:
        rows = [row for row in csv.reader(io.StringIO(chunk), delimiter=delimiter) if row]
    except csv.Error:
        return (0.0, 0)
    if not rows or len(rows[0]) < 2:
        return (0.0, 0)
    width = len(rows[0])
    return (sum(len(row) == width for row in rows) / len(rows), width)


def _convert_with_retries(source: Path, target: Path, plan: _Plan) -> tuple[int, pa.Schema]:
    """Attempts with ever wider types; the last one reads every column as a string."""
    names: list[str] = []
    for _ in range(MAX_ATTEMPTS - 1):
        try:
            return _attempt(source, target, plan)
        except _Retry as retry:
            target.unlink(missing_ok=True)
            plan, names = retry.plan, retry.names
    all_strings = dataclasses.replace(plan, column_types=dict.fromkeys(names, pa.string()))
    return _attempt(source, target, all_strings)


def _attempt(source: Path, target: Path, plan: _Plan) -> tuple[int, pa.Schema]:
    """One full read (again with longer blocks for a long row); raises _Retry when the header or a
    column type must change."""
    schema = None
    try:
        with source.open("rb") as file:
            file.seek(plan.start)
            if plan.chunked:
                with contextlib.closing(_parse_chunks(_line_chunks(file), plan)) as tables:
                    first = next(tables)
                    schema = first.schema
                    _check_columns(schema, plan)
                    parts = itertools.chain([first], tables)
                    del first  # written and gone with its row group
                    return _write(schema, parts, target), schema
            feed = _Utf8Feed(file, None if plan.raw or plan.encoding in _NATIVE_UTF8 else plan.encoding, plan.blocks)
            try:
                reader = pacsv.open_csv(pa.PythonFile(feed, mode="r"), **_reader_options(plan))
                schema = reader.schema
                _check_columns(schema, plan)
                batches = _consumed(reader, feed.batch_consumed)
                return _write(schema, (transcode_text(batch, plan.encoding) for batch in batches) if plan.raw
                              else batches, target), schema
            finally:
                feed.stop()
    except _Serial:
        target.unlink(missing_ok=True)
        return _attempt(source, target, dataclasses.replace(plan, chunked=False))
    except pa.ArrowInvalid as exc:
        ragged = _RAGGED_ROW.match(str(exc))
        if ragged:
            raise _RaggedRow(int(ragged[1]), int(ragged[2])) from exc
        if "invalid UTF8" in str(exc):
            raise _BadBytes() from exc
        if "straddling" in str(exc):  # a row longer than a block: read again with longer blocks
            later = plan.blocks[1]
            if later >= LONGEST_ROW_BYTES:
                raise _LongRow() from exc
            target.unlink(missing_ok=True)
            return _attempt(source, target, dataclasses.replace(plan, block_size=min(4 * later, LONGEST_ROW_BYTES)))
        widened = _widened(plan, schema, exc)
        if widened is None or schema is None:
            raise
        raise _Retry(widened, schema.names) from exc


def _parse_chunks(chunks: Iterator[memoryview], plan: _Plan) -> Generator[pa.Table]:
    """The file's rows as tables, in order: its chunks parsed, and their text decoded, apart on ``PARSE_THREADS``
    threads.

    ``pyarrow.csv.read_csv`` of a chunk without ``newlines_in_values`` costs a third less CPU than the
    streaming reader, and runs while another thread writes. The head (the first ``PARSE_THREADS`` chunks,
    ``FIRST_BLOCK_SIZE`` bytes in all) sets every column's type for the rest: its chunks are parsed at once, each
    inferring its own, and again as one when they disagree (types every chunk infers are those of all their rows).
    A later value that does not fit fails its conversion as in the streaming reader's later blocks.
    """
    pending: collections.deque[concurrent.futures.Future[pa.Table]] = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(PARSE_THREADS) as pool:
        try:
            head = list(itertools.islice(chunks, PARSE_THREADS)) or [memoryview(b"")]
            pending.extend(pool.submit(_parse_chunk, chunk, plan) for chunk in head)
            tables = [future.result() for future in pending]
            pending.clear()
            if any(table.schema != tables[0].schema for table in tables):
                tables = [_parse_chunk(memoryview(b"".join(head)), plan)]
            del head
            schema = tables[0].schema
            typed = dataclasses.replace(plan, column_types=dict(zip(schema.names, schema.types, strict=True)))
            while True:
                while len(pending) <= PARSE_THREADS and (chunk := next(chunks, None)):
                    pending.append(pool.submit(_parse_chunk, chunk, typed))
                if tables:
                    yield tables.pop(0)
                elif not pending:
                    return
                else:
                    yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _line_chunks(file: io.BufferedReader) -> Iterator[memoryview]:
    """The rest of ``file`` in chunks of whole lines: ``PARSE_THREADS`` of ``FIRST_BLOCK_SIZE`` bytes in all, then
    of about ``CHUNK_BYTES``; ``_Serial`` when one may not hold whole records.

    A cut at a newline inside a quoted field would split a record: a chunk holding a quote is refused (0x22 is
    never part of a character of a raw file), as is one that is followed by more but holds no newline (CR line
    ends, or a line longer than a chunk).
    """
    sizes = itertools.chain([FIRST_BLOCK_SIZE // PARSE_THREADS] * PARSE_THREADS, itertools.repeat(CHUNK_BYTES))
    while chunk := file.read(size := next(sizes)):
        end = len(chunk)
        if end == size:  # more may follow: the chunk ends after its last newline, the rest is read again
            end = chunk.rfind(b"\n") + 1
            if not end:
                raise _Serial()
            file.seek(end - size, io.SEEK_CUR)
        if chunk.find(b'"', 0, end) >= 0:
            raise _Serial()
        yield memoryview(chunk)[:end]


def _parse_chunk(chunk: memoryview, plan: _Plan) -> pa.Table:
    """One chunk of records as a table, its text decoded, in one block on this thread."""
    options = _reader_options(plan)
    read = options["read_options"]
    read.use_threads, read.block_size = False, len(chunk) + 1
    options["parse_options"].newlines_in_values = False
    return transcode_text(pacsv.read_csv(pa.py_buffer(chunk), **options), plan.encoding)


class _Utf8Feed(io.RawIOBase):
    """The rest of the file as UTF-8 (transcoded from ``encoding``; None: as it is), one block per read, at most
    ``READ_AHEAD_BLOCKS`` ahead of the consumer.

    Used instead of ``ReadOptions(encoding=...)``: pyarrow's background reader runs up to 32
    blocks ahead of the parser (the whole file, for fast input) and its transcoder decodes a
    whole block per call, holding the GIL meanwhile. Here decoding runs in ``TRANSCODE_STEP``
    slices. The first block is long, for type
    inference (``FIRST_BLOCK_SIZE``); later ones are ``BLOCK_SIZE`` unless a long row needs more
    (``_Plan.blocks``).
    """

    def __init__(self, file: io.BufferedReader, encoding: str | None, blocks: tuple[int, int]):
        super().__init__()
        self._file = file
        self._native = encoding is None
        self._decoder = None if encoding is None else codecs.getincrementaldecoder(encoding)()
        self._rest: bytes | memoryview = b""
        self._block_size, self._later_block_size = blocks
        self._reads_left = READ_AHEAD_BLOCKS
        self._stopped = False
        self._turn = threading.Condition()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> pa.Buffer:
        if not self._take_turn():
            return pa.py_buffer(b"")
        size, self._block_size = min(size, self._block_size), self._later_block_size
        block = pa.allocate_buffer(size, resizable=True)
        with memoryview(block).cast("B") as view:
            filled = self._file.readinto(view) if self._native else self._transcode_into(view)
        block.resize(filled)
        return block

    def _transcode_into(self, view: memoryview) -> int:
        """Fill ``view`` with UTF-8 decoded step by step; the rest waits for the next read."""
        filled = 0
        while filled < len(view):
            piece = self._rest or self._step()
            if not piece:
                break
            taken = min(len(piece), len(view) - filled)
            view[filled : filled + taken] = memoryview(piece)[:taken]
            self._rest = memoryview(piece)[taken:]  # no copy of what is left
            filled += taken
        return filled

    def _take_turn(self) -> bool:
        """Wait until the consumer is close enough behind; False once stopped.

        pyarrow needs block k+1 before it yields batch k; the timeout only guards against it
        ever needing more look-ahead than that, turning a would-be deadlock into a slowdown.
        """
        with self._turn:
            self._turn.wait_for(lambda: self._stopped or self._reads_left > 0, READ_AHEAD_TIMEOUT)
            self._reads_left -= 1
            return not self._stopped

    def _step(self) -> bytes:
        assert self._decoder is not None  # only transcoding feeds step
        raw = self._file.read(TRANSCODE_STEP)
        return self._decoder.decode(raw, final=not raw).encode()

    def batch_consumed(self) -> None:
        with self._turn:
            self._reads_left += 1
            self._turn.notify()

    def stop(self) -> None:
        with self._turn:
            self._stopped = True
            self._turn.notify_all()


def _reader_options(plan: _Plan) -> dict:
    return {
        "read_options": pacsv.ReadOptions(
            use_threads=not plan.wide,
            block_size=plan.blocks[0],
            column_names=plan.column_names,
            skip_rows=plan.skip_rows if plan.column_names and not plan.raw else 0,
        ),
        "parse_options": pacsv.ParseOptions(
            delimiter=plan.delimiter, newlines_in_values=True
        ),
        "convert_options": pacsv.ConvertOptions(  # transcoded text is valid UTF-8: it need not be checked again
            column_types=dict(plan.column_types), timestamp_parsers=list(TIMESTAMP_PARSERS),
            check_utf8=plan.encoding in _NATIVE_UTF8,
        ),
    }


def _check_columns(schema: pa.Schema, plan: _Plan) -> None:
    """Ask for a re-read with fixed names, or fail on columns that are not valid UTF-8."""
    if plan.column_names is None:
        names = _unique_names(schema.names)
        if names != schema.names:
            raise _Retry(dataclasses.replace(plan, column_names=tuple(names)), names)
    if any(pa.types.is_binary(field.type) for field in schema):
        raise _BadBytes()


def _unique_names(names: list[str]) -> list[str]:
    """Blank names become ``column_<n>`` (1-based); repeats get ``_2``, ``_3``..."""
    result: list[str] = []
    seen: set[str] = set()
    for position, name in enumerate(names, 1):
        base = name if name.strip() else f"column_{position}"
        candidate, suffix = base, 1
        while candidate in seen:
            suffix += 1
            candidate = f"{base}_{suffix}"
        seen.add(candidate)
        result.append(candidate)
    return result


def _widened(plan: _Plan, schema: pa.Schema | None, exc: pa.ArrowInvalid) -> _Plan | None:
    """The plan with the column that failed conversion widened, or None if it cannot widen.

    When an all-null column fails, every all-null column becomes a string at once, so a sparse
    wide file costs one re-read rather than one per column.
    """
    match = _CONVERSION_ERROR.search(str(exc))
    if match is None or schema is None:
        return None
    field = schema.field(int(match.group(1)))
    wider = _wider_type(field.type, match.group(2))
    if wider == field.type:
        return None
    types = dict(plan.column_types)
    if pa.types.is_null(field.type):
        types.update((f.name, pa.string()) for f in schema if pa.types.is_null(f.type))
    types[field.name] = wider
    return dataclasses.replace(plan, column_types=types)


def _wider_type(current: pa.DataType, value: str) -> pa.DataType:
    if pa.types.is_integer(current) and _parses_as_float(value):
        return pa.float64()
    return pa.string()


def _parses_as_float(value: str) -> bool:
    try:
        pc.cast(pa.scalar(value), pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def _write(schema: pa.Schema, parts: Iterable[pa.RecordBatch | pa.Table], target: Path) -> int:
    """Write ``parts`` to ``target`` in row groups of about ``ROW_GROUP_BYTES`` (in memory).

    Each row group is written on a second thread while the next one is being read. Only text columns are
    dictionary-encoded: numbers and times of many distinct values filled a dictionary page, fell back to
    plain encoding and compressed worse (on the CP932 bench file: 30 % less writing CPU, a 28 % smaller file).
    Only the other columns get min/max statistics: nothing reads them for text, and comparing every string
    cost a tenth of the writing CPU.
    """
    rows = 0
    text = [field.name for field in schema if pa.types.is_string(field.type)]
    writer = pq.ParquetWriter(target, schema, compression=COMPRESSION, use_dictionary=text,
                              write_statistics=[field.name for field in schema if field.name not in text])
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(lambda: None)
            for group in _row_groups(parts):
                pending.result()
                pa.default_memory_pool().release_unused()  # the groups written so far go back to the system
                pending = pool.submit(writer.write_table, group)
                rows += group.num_rows
            pending.result()
    finally:
        writer.close()
    return rows


def _consumed(reader: pacsv.CSVStreamingReader, batch_consumed: Callable[[], None]) -> Iterator[pa.RecordBatch]:
    """The reader's batches, telling the feed of each one taken."""
    for batch in reader:
        batch_consumed()
        yield batch


def _row_groups(parts: Iterable[pa.RecordBatch | pa.Table]) -> Iterator[pa.Table]:
    """``parts`` gathered into tables of at least ``ROW_GROUP_BYTES`` (but the last).

    Larger row groups compress markedly better than one per block.
    """
    gathered: list[pa.RecordBatch | pa.Table] = []
    size = 0
    for part in parts:
        gathered.append(part)
        size += part.nbytes
        if size >= ROW_GROUP_BYTES:
            yield _table(gathered)
            gathered, size = [], 0
    if gathered:
        yield _table(gathered)


def _table(parts: list[pa.RecordBatch | pa.Table]) -> pa.Table:
    return pa.concat_tables([pa.Table.from_batches([part]) if isinstance(part, pa.RecordBatch) else part
                             for part in parts])


def _encoding_error(source: Path, chosen: _Encoding, line: int | None = None) -> UnprocessableError:
    """The 422 of a byte ``chosen`` cannot decode, on ``line`` (if not known, the file is read again to find it)."""
    line = line or _first_bad_line(source, chosen.name)
    how = "detected as" if chosen.detected else "read as"
    where = f"Line {line}" if line is not None else "The file"
    return UnprocessableError(
        f"{where} is not valid {chosen.name} text (the file was {how} {chosen.name}); "
        f"{_ENCODING_HINT}.",
        {"line": line, "reason": f"invalid {chosen.name} byte sequence"},
    )


def _first_bad_line(source: Path, encoding: str, last: int | None = None) -> int | None:
    """The 1-based line holding the first byte ``encoding`` cannot decode, if any (looked for up to about line
    ``last``: maybe past it)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with source.open("rb") as file:
        while chunk := file.read(SAMPLE_PIECE_BYTES):
            state = decoder.getstate()
            try:
                line += decoder.decode(chunk).count("\n")
            except UnicodeDecodeError:
                decoder.setstate(state)
                return line + _newlines_before_error(decoder, chunk)
            if last is not None and line > last:
                return None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line
    return None


def _newlines_before_error(decoder: codecs.IncrementalDecoder, chunk: bytes) -> int:
    """Feed ``chunk`` byte by byte; the newlines decoded before the decoder fails."""
    count = 0
    for index in range(len(chunk)):
        try:
            count += decoder.decode(chunk[index : index + 1]).count("\n")
        except UnicodeDecodeError:
            break
    return count


def _ragged_error(source: Path, plan: _Plan, chosen: _Encoding, expected: int, actual: int) -> UnprocessableError:
    """The 422 of the first record of the wrong width, or of a byte the encoding cannot decode before it (pyarrow
    splits a block into records before it converts or decodes its values)."""
    line = _ragged_line(source, plan, expected)
    bad = _first_bad_line(source, plan.encoding, line)
    if bad is not None and (line is None or bad <= line):
        return _encoding_error(source, chosen, bad)
    where = f"Line {line}" if line is not None else "A row"
    return UnprocessableError(
        f"{where} has {actual} fields but the header has {expected}; "
        f"check the delimiter ({plan.delimiter!r}) and the quoting on that line.",
        {"line": line, "reason": f"expected {expected} fields, found {actual}"},
    )


def _ragged_line(source: Path, plan: _Plan, expected: int) -> int | None:
    """The physical line where the first record of the wrong width starts (the header is line 1).

    pyarrow's error names no row in the streaming reader, and elsewhere counts records (of a chunk)
    rather than lines, so the file is re-read with the csv module.
    """
    with source.open(encoding=plan.encoding, errors="replace", newline="") as file:
        reader = csv.reader(file, delimiter=plan.delimiter)
        header_seen = False
        start = 1
        try:
            for record in reader:
                if record and header_seen and len(record) != expected:
                    return start
                header_seen = header_seen or bool(record)
                start = reader.line_num + 1
        except csv.Error:
            return None
    return None


def _header_only_error() -> UnprocessableError:
    return UnprocessableError(
        "The file has a header row but no data rows.", {"line": None, "reason": "no data rows"}
    )


def _arrow_error(exc: pa.ArrowException) -> UnprocessableError:
    reason = _clean_reason(exc)
    if reason.startswith("Empty CSV file"):
        return _header_only_error()
    return UnprocessableError(
        f"The CSV file could not be read: {reason}", {"line": None, "reason": reason}
    )


def _clean_reason(exc: Exception) -> str:
    """pyarrow's message without its prefixes, on one line, at most 300 characters."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    reason = re.sub(r"^(CSV parse error: |In CSV column #\d+: |Row #\d+: )+", "", reason)
    return reason if len(reason) <= 300 else reason[:299] + "…"
