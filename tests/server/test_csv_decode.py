"""CP932 and EUC-JP decoded in chunks by processes: the same text as one decode, and the exact line of a bad byte."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from server import csv_decode, csv_import
from server.csv_decode import DecodeWorkers, ParallelDecoder, UndecodableLine
from server.csv_import import PARALLEL_DECODE_BYTES, _first_bad_line, convert_csv_to_parquet
from server.errors import UnprocessableError

def _encodes(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


# Characters of both encodings: ASCII, kana, kanji, full-width forms; CP932 adds its NEC and IBM extensions
# and half-width katakana (whose CP932 bytes look like EUC-JP lead bytes).
COMMON = "abcXYZ019,.;\"' \tあいうアイウ売上東京日本語ー－＼〜　"
ALPHABETS = {encoding: "".join(char for char in COMMON + "①②Ⅲ㈱髙ｱｲｳﾞﾟ￢" if _encodes(char, encoding))
             for encoding in ("cp932", "euc_jp")}
# Byte sequences neither encoding decodes: a lead byte before a byte no character continues with.
BAD = {"cp932": [b"\x81\x7f", b"\x81\x0a", b"\xef\x20", b"\x9f\r"], "euc_jp": [b"\xa4\x41", b"\xa4\x0a", b"\xff", b"\xb0\r"]}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def workers() -> Iterator[DecodeWorkers]:
    with DecodeWorkers(2) as processes:
        yield processes


def lines(encoding: str) -> st.SearchStrategy[list[str]]:
    return st.lists(st.text(st.sampled_from(ALPHABETS[encoding]), max_size=12), min_size=1, max_size=30)


def text_bytes(rows: list[str], encoding: str, line_end: str) -> bytes:
    return line_end.join(rows).encode(encoding)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("decode") / "file.csv"


def decode_all(data: bytes, encoding: str, workers: DecodeWorkers, chunk_bytes: int, scratch: Path) -> bytes:
    """``data`` written to ``scratch`` and decoded from there in chunks of about ``chunk_bytes``."""
    scratch.write_bytes(data)
    decoder = ParallelDecoder(scratch, encoding, workers, chunk_bytes)
    try:
        parts = []
        while part := decoder.read():
            parts.append(part)
        return b"".join(parts)
    finally:
        decoder.close()


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp"])
@SETTINGS
@given(data=st.data())
def test_chunks_decode_to_what_one_decode_gives(workers, scratch, encoding, data):
    """Whatever the chunk size (newlines at chunk edges, lines longer than a chunk, CR line ends), the
    chunks' UTF-8 in order is the whole file's."""
    rows = data.draw(lines(encoding))
    raw = text_bytes(rows, encoding, data.draw(st.sampled_from(["\n", "\r\n", "\r"])))
    chunk_bytes = data.draw(st.integers(1, 64))
    assert decode_all(raw, encoding, workers, chunk_bytes, scratch) == raw.decode(encoding).encode()


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp"])
@SETTINGS
@given(data=st.data())
def test_a_bad_byte_is_named_on_its_exact_line(workers, scratch, encoding, data, tmp_path_factory):
    """The line of the first undecodable byte is the one the single-threaded scan names, wherever the
    chunks are cut."""
    rows = data.draw(lines(encoding))
    row = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.integers(0, len(rows[row])))
    bad = data.draw(st.sampled_from(BAD[encoding]))
    line_end = data.draw(st.sampled_from(["\n", "\r\n"]))
    raw = line_end.join(rows[:row]).encode(encoding) + line_end.encode() * (row > 0)
    raw += rows[row][:column].encode(encoding) + bad + rows[row][column:].encode(encoding)
    raw += (line_end + line_end.join(rows[row + 1:])).encode(encoding) * (row + 1 < len(rows))
    path = tmp_path_factory.getbasetemp() / f"bad-{encoding}.csv"
    path.write_bytes(raw)
    expected = _first_bad_line(path, encoding)
    assert expected is not None
    with pytest.raises(UndecodableLine) as raised:
        decode_all(raw, encoding, workers, data.draw(st.integers(1, 64)), scratch)
    assert raised.value.line == expected


def test_the_workers_serve_the_next_file_after_a_bad_one(workers, tmp_path):
    """A file that ended early leaves no answer behind for the next one (at another path)."""
    with pytest.raises(UndecodableLine):
        decode_all(b"a\n\x81\x7f\n" + "売上\n".encode("cp932") * 50, "cp932", workers, 4, tmp_path / "bad.csv")
    assert decode_all("東京\n大阪\n".encode("cp932"), "cp932", workers, 3, tmp_path / "good.csv") == "東京\n大阪\n".encode()


def test_a_chunk_holding_a_quote_is_told(workers, tmp_path):
    """``quoted`` turns true with the first chunk read that holds a double quote, not before."""
    path = tmp_path / "quoted.csv"
    path.write_bytes("売上,1\n".encode("cp932") * 20 + b'"a",2\n' + "売上,3\n".encode("cp932") * 20)
    decoder = ParallelDecoder(path, "cp932", workers, 32)
    try:
        seen = []
        while chunk := decoder.read():
            seen.append((b'"' in chunk, decoder.quoted))
    finally:
        decoder.close()
    first = [has for has, _ in seen].index(True)
    assert [quoted for _, quoted in seen] == [False] * first + [True] * (len(seen) - first)


def test_an_encoding_that_may_hold_a_newline_in_a_character_is_refused(workers, tmp_path):
    with pytest.raises(ValueError, match="0x0A"):
        ParallelDecoder(tmp_path / "any.csv", "utf-16-le", workers)


def test_an_upload_decoded_in_parallel_names_the_line_of_a_bad_byte(tmp_path):
    """A file large enough to be decoded by processes: the 422 names the line of the bad byte, past the first
    chunks, and no Parquet file is left."""
    row = "2024/01/02,東京本店,りんご,12,345.5\n".encode("cp932")
    count = PARALLEL_DECODE_BYTES // len(row) + 1000
    bad_line = count - 7  # 1-based, the header being line 1
    source = tmp_path / "sales.csv"
    with source.open("wb") as file:
        file.write("日付,店舗,商品,数量,単価\n".encode("cp932"))
        for number in range(2, count + 1):
            file.write(row.replace(b"\x82\xe8", b"\x81\x7f") if number == bad_line else row)
    target = tmp_path / "sales.parquet"
    with pytest.raises(UnprocessableError) as raised:
        convert_csv_to_parquet(source, target, encoding="cp932")
    assert raised.value.details["line"] == bad_line == _first_bad_line(source, "cp932")
    assert not target.exists()


def test_an_upload_decoded_in_parallel_equals_one_decoded_in_one_piece(tmp_path):
    """The Parquet of a large CP932 file is the same as that of its UTF-8 twin (decoded nowhere)."""
    rows = "".join(f"{n},2024/01/{n % 28 + 1:02d},{'東京大阪福岡ｱｲｳ①'[n % 10:]},{n * 1.5}\n" for n in range(250_000))
    text = "番号,日付,店舗,金額\n" + rows
    assert len(text.encode("cp932")) >= PARALLEL_DECODE_BYTES
    cp932, utf8 = tmp_path / "cp932.csv", tmp_path / "utf8.csv"
    cp932.write_bytes(text.encode("cp932"))
    utf8.write_bytes(text.encode())
    ours = convert_csv_to_parquet(cp932, tmp_path / "cp932.parquet", encoding="cp932")
    twin = convert_csv_to_parquet(utf8, tmp_path / "utf8.parquet")
    assert ours.encoding == "cp932" and ours.row_count == twin.row_count == 250_000
    assert pq.read_table(tmp_path / "cp932.parquet").equals(pq.read_table(tmp_path / "utf8.parquet"))


def test_worker_is_standalone():
    """The worker runs with ``-I -S``: it imports nothing of the server (nor anything outside the stdlib)."""
    source = (Path(__file__).parents[2] / "server" / "csv_decode_worker.py").read_text()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"os", "struct", "sys"}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any file is decoded by processes in chunks of 64 bytes, parsed apart after a head of 128."""
    monkeypatch.setattr(csv_import, "PARALLEL_DECODE_BYTES", 0)
    monkeypatch.setattr(csv_decode, "CHUNK_BYTES", 64)
    monkeypatch.setattr(csv_import, "FIRST_BLOCK_SIZE", 128)
    monkeypatch.setattr(csv_import, "BLOCK_SIZE", 128)
    monkeypatch.setattr(csv_import, "SAMPLE_HEAD_BYTES", 64)  # a quote further in is not seen beforehand
    monkeypatch.setattr(csv_import, "SAMPLE_PIECES", 0)


CELL = st.text(st.sampled_from("abc019あい売上ｱ①"), min_size=1, max_size=6)
QUOTED = st.builds(lambda text: '"' + text.replace('"', '""') + '"', st.text(st.sampled_from('ab,"\n\n売上'), max_size=80))


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[str, int | None]:
    """A CP932-encodable CSV of an integer, a text and a number column, perhaps with a float among the integers,
    quoted fields (with delimiters, quotes and line breaks), a ragged row; and the line of a bad byte to put in."""
    rows = draw(st.lists(st.tuples(st.integers(-999, 999), st.one_of(CELL, QUOTED) if draw(st.booleans()) else CELL,
                                   st.floats(-1e3, 1e3, allow_nan=False).map(lambda x: round(x, 2))),
                         min_size=1, max_size=60))
    lines = [f"{n},{text},{number}" for n, text, number in rows]
    if draw(st.booleans()):
        lines[draw(st.integers(0, len(lines) - 1))] = "1.5,x,2"  # the integers widen to floats
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), "1,x")  # a ragged row
    bad_line = draw(st.none() | st.integers(2, len(lines) + 1))
    return "番号,店舗,金額\n" + "\n".join(lines) + draw(st.sampled_from(["", "\n"])), bad_line


@settings(SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # shrinking takes minutes (processes)
@given(data=csv_files())
def test_chunks_parsed_apart_convert_as_one_streaming_read(small_chunks, tmp_path_factory, data):
    """Wherever the chunks are cut, a CP932 file decoded and parsed in chunks converts to the Parquet of its
    UTF-8 twin (read by one streaming reader), or fails with the same 422; a bad byte names its exact line.
    A quote anywhere sends the file to the streaming reader."""
    text, bad_line = data
    folder = tmp_path_factory.mktemp("chunks")
    cp932, utf8 = folder / "cp932.csv", folder / "utf8.csv"
    raw = text.encode("cp932")
    if bad_line is not None:
        lines = raw.split(b"\n")
        lines[bad_line - 1] += b"\x81\x7f"
        raw = b"\n".join(lines)
    cp932.write_bytes(raw)
    utf8.write_bytes(text.encode())
    try:
        twin = convert_csv_to_parquet(utf8, folder / "utf8.parquet")
    except UnprocessableError as error:
        expected: object = error.details
    else:
        expected = pq.read_table(folder / "utf8.parquet")
    allowed = [expected]
    if bad_line is not None:  # the bad byte, or a ragged row before it (which comes first to light is open)
        bad = {"line": _first_bad_line(cp932, "cp932"), "reason": "invalid cp932 byte sequence"}
        earlier = isinstance(expected, dict) and expected["line"] < bad["line"]
        expected, allowed = bad, [bad, *allowed[:earlier]]
    try:
        ours = convert_csv_to_parquet(cp932, folder / "cp932.parquet", encoding="cp932")
    except UnprocessableError as error:
        assert error.details in allowed
        assert not (folder / "cp932.parquet").exists()
    else:
        assert isinstance(expected, pa.Table) and ours.row_count == twin.row_count
        assert pq.read_table(folder / "cp932.parquet").equals(expected)


def test_a_quote_past_the_sample_sends_the_file_to_the_streaming_reader(small_chunks, tmp_path):
    """Quoted line breaks cut by a chunk edge: the chunks' parse is given up and the file read in one stream."""
    long_value = "1行目\n" + "次の行\n" * 30  # longer than a chunk: some chunk edge falls inside its quotes
    rows = [f'{n},"{long_value}",{n}.5' if n == 40 else f"{n},東京,{n}.5" for n in range(80)]
    source = tmp_path / "sales.csv"
    source.write_bytes(("番号,店舗,金額\n" + "\n".join(rows) + "\n").encode("cp932"))
    result = convert_csv_to_parquet(source, tmp_path / "sales.parquet", encoding="cp932")
    table = pq.read_table(tmp_path / "sales.parquet")
    assert result.row_count == 80 and table.column("店舗")[40].as_py() == long_value


def test_chunks_read_while_the_head_is_parsed_take_its_types_and_widen_them(small_chunks, tmp_path):
    """A float among the integers in each chunk right after the head (taken while the head is parsed) widens the
    column as one read of the UTF-8 twin does; a value cut across two chunks stays whole."""
    rows = [f"{n},東京{'ｱ' * (n % 5)},{n}.5" for n in range(60)]
    rows[12] = "1.5,大阪,2"  # just past the 128-byte head, in a chunk taken while the head is parsed
    text = "番号,店舗,金額\n" + "\n".join(rows) + "\n"
    source, twin = tmp_path / "cp932.csv", tmp_path / "utf8.csv"
    source.write_bytes(text.encode("cp932"))
    twin.write_bytes(text.encode())
    ours = convert_csv_to_parquet(source, tmp_path / "cp932.parquet", encoding="cp932")
    convert_csv_to_parquet(twin, tmp_path / "utf8.parquet")
    table = pq.read_table(tmp_path / "cp932.parquet")
    assert ours.row_count == 60 and table.schema.field("番号").type == pa.float64()
    assert table.equals(pq.read_table(tmp_path / "utf8.parquet"))
    assert table.column("店舗").to_pylist() == [f"東京{'ｱ' * (n % 5)}" if n != 12 else "大阪" for n in range(60)]


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_bad_byte_in_the_last_chunk_names_its_line(small_chunks, tmp_path, line_end):
    """The line of a bad byte in the file's last chunk, counted from the file's start when it is met."""
    lines = ["番号,店舗,金額"] + [f"{n},東京,{n}.5" for n in range(80)]
    raw = line_end.join(lines).encode("cp932") + b"\x81\x7f" + line_end.encode()
    source = tmp_path / "bad.csv"
    source.write_bytes(raw)
    with pytest.raises(UnprocessableError) as raised:
        convert_csv_to_parquet(source, tmp_path / "bad.parquet", encoding="cp932")
    assert raised.value.details["line"] == len(lines) == _first_bad_line(source, "cp932")
    assert not (tmp_path / "bad.parquet").exists()


def _decoding_processes() -> list[int]:
    """The decoding processes this test process has running now."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # ended meanwhile
        if parent == os.getpid() and b"csv_decode_worker.py" in command:
            found.append(int(stat.parent.name))
    return sorted(found)


@pytest.fixture
def started(small_chunks, monkeypatch: pytest.MonkeyPatch) -> list[DecodeWorkers | str]:
    """Every set of decoding processes started, and "detect" where an encoding was detected, in order."""
    events: list[DecodeWorkers | str] = []

    class Counted(DecodeWorkers):
        def __init__(self, count: int):
            super().__init__(count)
            events.append(self)

    detect = csv_import._detect_encoding
    monkeypatch.setattr(csv_import, "DecodeWorkers", Counted)
    monkeypatch.setattr(csv_import, "_detect_encoding", lambda sample: events.append("detect") or detect(sample))
    return events


@pytest.mark.parametrize("given", [None, "cp932"])
def test_the_processes_started_before_detection_decode_the_file(started, tmp_path, given):
    """A file that is not UTF-8 (or is named CP932) gets its processes before its encoding is detected, and they
    are the ones that decode it: one start per upload, none left running after."""
    source = tmp_path / "sales.csv"
    source.write_bytes(("番号,店舗\n" + "".join(f"{n},東京本店\n" for n in range(200))).encode("cp932"))
    running = _decoding_processes()  # the module's own
    result = convert_csv_to_parquet(source, tmp_path / "sales.parquet", encoding=given)
    assert result.encoding == "cp932" and result.row_count == 200
    workers = started[0]
    assert started == [workers] + ["detect"] * (given is None)
    assert isinstance(workers, DecodeWorkers) and workers.processes == []
    assert _decoding_processes() == running


def test_processes_started_for_an_encoding_they_cannot_decode_end_unused(started, tmp_path):
    """A file detected as cp1252 (not cut at newlines by the processes) ends the processes started ahead; so
    does a 422 before any conversion."""
    running = _decoding_processes()  # the module's own
    source = tmp_path / "prices.csv"
    source.write_bytes(b"name,price\n" + "".join(f"café {n},{n}\n" for n in range(200)).encode("cp1252"))
    assert convert_csv_to_parquet(source, tmp_path / "prices.parquet").encoding == "cp1252"
    long_header = tmp_path / "long.csv"
    long_header.write_bytes((",".join(f"列{n}" for n in range(600)) + "\n1\n").encode("cp932"))
    with pytest.raises(UnprocessableError):
        convert_csv_to_parquet(long_header, tmp_path / "long.parquet")
    workers = [event for event in started if isinstance(event, DecodeWorkers)]
    assert len(workers) == 2 and all(each.processes == [] for each in workers)
    assert _decoding_processes() == running
