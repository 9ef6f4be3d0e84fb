"""CP932 and EUC-JP parsed from their own bytes, their text columns transcoded: the same Parquet as the file's UTF-8
twin, and the exact line of a bad byte."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import csv_import
from server.csv_import import _first_bad_line, convert_csv_to_parquet
from server.csv_transcode import RAW_DELIMITER_BELOW, RAW_ENCODINGS, SEPARATORS, reads_raw, transcode_text
from server.errors import UnprocessableError


def _encodes(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


# Characters of both encodings: ASCII, kana, kanji, full-width forms; CP932 adds its NEC and IBM extensions
# and half-width katakana (whose CP932 bytes look like EUC-JP lead bytes). ソ and ポ end in 0x5C and 0x7C in CP932.
COMMON = "abcXYZ019,.;\"' \tあいうアイウソポ売上東京日本語ー－＼〜　"
ALPHABETS = {encoding: "".join(char for char in COMMON + "①②Ⅲ㈱髙ｱｲｳﾞﾟ￢" if _encodes(char, encoding))
             for encoding in ("cp932", "euc_jp")}
# Byte sequences neither encoding decodes: a lead byte before a byte no character continues with.
BAD = {"cp932": [b"\x81\x7f", b"\x81", b"\xef\x20"], "euc_jp": [b"\xa4\x41", b"\xa4", b"\xff"]}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("encoding", sorted(RAW_ENCODINGS))
def test_no_byte_below_0x40_is_part_of_a_character_and_ascii_reads_as_ascii(encoding):
    """What reading a file's own bytes rests on, for every encoding read so: a delimiter, quote or line break byte
    is always that character, and a value of ASCII bytes is the same text in UTF-8."""
    assert bytes(range(0x80)).decode(encoding) == bytes(range(0x80)).decode("ascii")
    for lead in range(0x80, 0x100):
        for middle in [b""] + [bytes([byte]) for byte in range(0x80, 0x100)] * encoding.startswith("euc"):
            for low in range(RAW_DELIMITER_BELOW):
                try:
                    text = (bytes([lead]) + middle + bytes([low])).decode(encoding)
                except UnicodeDecodeError:
                    continue
                assert text.endswith(chr(low)), (lead, middle, low)


def test_a_delimiter_that_may_be_part_of_a_character_is_not_read_raw():
    assert reads_raw("cp932", ",") and reads_raw("euc_jp", "\t") and reads_raw("cp932", ";")
    assert not reads_raw("cp932", "|") and not reads_raw("shift_jis_2004", ",") and not reads_raw("utf-8", ",")


def values(encoding: str) -> st.SearchStrategy[list[str | None]]:
    text = st.text(st.sampled_from(ALPHABETS[encoding] + "\n\x00\x1f"), max_size=8)
    return st.lists(st.none() | text, max_size=40) | st.lists(st.sampled_from(["東京", "大阪", "a", ""]), max_size=3000)


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp"])
@SETTINGS
@given(data=st.data())
def test_text_columns_transcode_to_what_each_value_decodes_to(encoding, data):
    """Whatever the values (few distinct or many, nulls, the bytes that join them for one decode, ASCII only), and
    from whatever slice of an array, each comes out as its own decode; other columns are left as they are."""
    encoded = [None if text is None else text.encode(encoding) for text in data.draw(values(encoding))]
    texts = [None if value is None else value.decode(encoding) for value in encoded]  # 〜 decodes as ～ in CP932
    raw = pa.array(encoded, pa.binary()).view(pa.string())
    start = data.draw(st.integers(0, len(texts)))
    sliced = raw.slice(start, data.draw(st.integers(0, len(texts) - start)))
    numbers = pa.array(range(len(sliced)))
    batch = transcode_text(pa.record_batch({"text": sliced, "number": numbers}), encoding)
    assert batch.column(0).to_pylist() == texts[start : start + len(sliced)]
    assert batch.column(1) is numbers or batch.column(1).equals(numbers)
    table = transcode_text(pa.table({"text": pa.chunked_array([sliced, sliced], pa.string())}), encoding)
    assert table.column(0).to_pylist() == texts[start : start + len(sliced)] * 2


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp"])
@pytest.mark.parametrize("few", [True, False])
def test_a_value_that_does_not_decode_alone_is_an_error(encoding, few):
    """A lead byte at the end of a value is not completed by the next value's first byte."""
    lead = "東".encode(encoding)[:1]
    rows = [lead, b"\x41\x41"] + [b"x", b"y"] * 100 * few + [str(n).encode() + "売".encode(encoding) for n in range(20)]
    with pytest.raises(UnicodeDecodeError):
        transcode_text(pa.table({"text": pa.array(rows, pa.binary()).view(pa.string())}), encoding)


@pytest.mark.parametrize("separator", SEPARATORS)
def test_values_holding_the_joining_byte_are_joined_by_another(separator):
    texts = [f"売上{chr(separator)}{n}" for n in range(50)]
    array = pa.array([text.encode("cp932") for text in texts], pa.binary()).view(pa.string())
    assert transcode_text(pa.table({"t": array}), "cp932").column(0).to_pylist() == texts


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any file is parsed in chunks of 64 bytes after a first one of 128."""
    monkeypatch.setattr(csv_import, "CHUNK_BYTES", 64)
    monkeypatch.setattr(csv_import, "FIRST_BLOCK_SIZE", 128)
    monkeypatch.setattr(csv_import, "BLOCK_SIZE", 128)
    monkeypatch.setattr(csv_import, "SAMPLE_HEAD_BYTES", 64)  # a quote further in is not seen beforehand
    monkeypatch.setattr(csv_import, "SAMPLE_PIECES", 0)


CELL = st.text(st.sampled_from("abc019あい売上ｱソポ"), min_size=1, max_size=6)
QUOTED = st.builds(lambda text: '"' + text.replace('"', '""') + '"', st.text(st.sampled_from('ab,"\n\n売上'), max_size=80))


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[str, int | None]:
    """A CP932- and EUC-JP-encodable CSV of an integer, a text and a number column, perhaps with a float among the integers,
    quoted fields (with delimiters, quotes and line breaks), a ragged row; and the line of a bad byte to put in."""
    rows = draw(st.lists(st.tuples(st.integers(-999, 999), st.one_of(CELL, QUOTED) if draw(st.booleans()) else CELL,
                                   st.floats(-1e3, 1e3, allow_nan=False).map(lambda x: round(x, 2))),
                         min_size=1, max_size=60))
    lines = [f"{n},{text},{number}" for n, text, number in rows]
    if draw(st.booleans()):
        lines[draw(st.integers(0, len(lines) - 1))] = "1.5,x,2"  # the integers widen to floats
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), "1,x")  # a ragged row
    bad_line = draw(st.none() | st.integers(1, len(lines) + 1))
    header = draw(st.sampled_from(["番号,店舗,金額", '"番号","店,舗",金額', "番号,番号,"]))
    return draw(st.sampled_from(["", "\n", "\r\n\n"])) + header + "\n" + "\n".join(lines) + draw(
        st.sampled_from(["", "\n"])), bad_line


@settings(SETTINGS)
@given(data=csv_files(), encoding=st.sampled_from(["cp932", "euc_jp"]))
def test_a_file_read_raw_converts_as_its_utf8_twin(small_chunks, tmp_path_factory, data, encoding):
    """Wherever the chunks are cut, a CP932 or EUC-JP file parsed from its own bytes converts to the Parquet of its
    UTF-8 twin, or fails with the same 422; a bad byte (in the header too) names its exact line. A quote anywhere
    sends the file to the streaming reader."""
    text, bad_line = data
    folder = tmp_path_factory.mktemp("chunks")
    legacy, utf8 = folder / "legacy.csv", folder / "utf8.csv"
    raw = text.encode(encoding)
    if bad_line is not None:
        lines = raw.split(b"\n")
        lines[bad_line % len(lines)] += BAD[encoding][0]
        raw = b"\n".join(lines)
    legacy.write_bytes(raw)
    utf8.write_bytes(text.encode())
    try:
        twin = convert_csv_to_parquet(utf8, folder / "utf8.parquet")
    except UnprocessableError as error:
        expected: object = error.details
    else:
        expected = pq.read_table(folder / "utf8.parquet")
    if bad_line is not None:  # the bad byte, unless a ragged row comes before it
        bad = {"line": _first_bad_line(legacy, encoding), "reason": f"invalid {encoding} byte sequence"}
        if not (isinstance(expected, dict) and expected["line"] < bad["line"]):
            expected = bad
    try:
        ours = convert_csv_to_parquet(legacy, folder / "legacy.parquet", encoding=encoding)
    except UnprocessableError as error:
        assert error.details == expected
        assert not (folder / "legacy.parquet").exists()
    else:
        assert isinstance(expected, pa.Table) and ours.row_count == twin.row_count
        assert pq.read_table(folder / "legacy.parquet").equals(expected)


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
    """A float among the integers in a chunk right after the head (read while the head is parsed) widens the
    column as one read of the UTF-8 twin does; a value cut across two chunks stays whole."""
    rows = [f"{n},東京{'ｱ' * (n % 5)},{n}.5" for n in range(60)]
    rows[12] = "1.5,大阪,2"  # just past the 128-byte head, in a chunk read while the head is parsed
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


@pytest.mark.parametrize(("early", "late", "expected"), [
    ("{n}", "1.5", pa.float64()), ("{n}", "東京", pa.string()), ("", "{n}", pa.int64())])
def test_the_head_s_chunks_parsed_apart_type_a_column_as_the_whole_head(small_chunks, tmp_path, early, late, expected):
    """The head's two chunks (64 bytes each) infer their types apart: where they differ (integers, then a float or
    text in the second; nothing, then integers), the column gets the type of all the head's rows."""
    values = [(early if n < 12 else late).format(n=n) for n in range(40)]
    source = tmp_path / "cp932.csv"
    source.write_bytes(("番号,店舗\n" + "".join(f"{value},東京\n" for value in values)).encode("cp932"))
    convert_csv_to_parquet(source, tmp_path / "cp932.parquet", encoding="cp932")
    column = pq.read_table(tmp_path / "cp932.parquet").column("番号")
    assert column.type == expected
    assert column.to_pylist() == [None if value == "" else pa.scalar(value).cast(expected).as_py() for value in values]


def test_a_text_column_met_late_in_a_number_column_is_transcoded(small_chunks, tmp_path):
    """Japanese text in the last chunk of a column typed as integers by the head: the column is read again as text,
    and that text is transcoded."""
    rows = [f"{n},{n}" for n in range(60)] + ["60,六十"]
    source = tmp_path / "late.csv"
    source.write_bytes(("番号,数\n" + "\n".join(rows) + "\n").encode("cp932"))
    result = convert_csv_to_parquet(source, tmp_path / "late.parquet", encoding="cp932")
    column = pq.read_table(tmp_path / "late.parquet").column("数")
    assert result.row_count == 61 and column.type == pa.string() and column[60].as_py() == "六十"


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_bad_byte_in_the_last_chunk_names_its_line(small_chunks, tmp_path, line_end):
    """The line of a bad byte in a chunk far from the head, parsed on a thread."""
    lines = ["番号,店舗,金額"] + [f"{n},東京,{n}.5" for n in range(80)]
    raw = line_end.join(lines).encode("cp932") + b"\x81\x7f" + line_end.encode()
    source = tmp_path / "bad.csv"
    source.write_bytes(raw)
    with pytest.raises(UnprocessableError) as raised:
        convert_csv_to_parquet(source, tmp_path / "bad.parquet", encoding="cp932")
    assert raised.value.details["line"] == len(lines) == _first_bad_line(source, "cp932")
    assert not (tmp_path / "bad.parquet").exists()


def test_a_bad_byte_in_the_header_names_line_1(tmp_path):
    """The header is decoded apart from the records (pyarrow never sees it): its bad byte is found all the same."""
    source = tmp_path / "bad.csv"
    source.write_bytes("番号,店舗\n1,東京\n".encode("cp932").replace("店".encode("cp932"), b"\x81\x7f"))
    with pytest.raises(UnprocessableError) as raised:
        convert_csv_to_parquet(source, tmp_path / "bad.parquet", encoding="cp932")
    assert raised.value.details == {"line": 1, "reason": "invalid cp932 byte sequence"}


def test_a_pipe_delimited_shift_jis_file_is_transcoded_whole(tmp_path):
    """"|" is 0x7C, the second byte of ポ in CP932: such a file is not split on its own bytes."""
    text = "品名|数\nポット|1\nポンプ|2\n"
    source = tmp_path / "pipes.csv"
    source.write_bytes(text.encode("cp932"))
    result = convert_csv_to_parquet(source, tmp_path / "pipes.parquet", encoding="cp932", delimiter="|")
    assert result.row_count == 2
    assert pq.read_table(tmp_path / "pipes.parquet").to_pydict() == {"品名": ["ポット", "ポンプ"], "数": [1, 2]}


def test_a_large_file_names_the_line_of_a_bad_byte(tmp_path):
    """A file of many real-sized chunks: the 422 names the line of the bad byte, past the first chunks, and no
    Parquet file is left."""
    row = "2024/01/02,東京本店,りんご,12,345.5\n".encode("cp932")
    count = 3 * csv_import.FIRST_BLOCK_SIZE // len(row)
    bad_line = count - 7  # 1-based, the header being line 1
    source = tmp_path / "sales.csv"
    with source.open("wb") as file:
        file.write("日付,店舗,商品,数量,単価\n".encode("cp932"))
        for number in range(2, count + 1):
            file.write(row.replace("り".encode("cp932"), b"\x81\x7f") if number == bad_line else row)
    target = tmp_path / "sales.parquet"
    with pytest.raises(UnprocessableError) as raised:
        convert_csv_to_parquet(source, target, encoding="cp932")
    assert raised.value.details["line"] == bad_line == _first_bad_line(source, "cp932")
    assert not target.exists()


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp"])
def test_a_large_file_converts_as_its_utf8_twin(tmp_path, encoding):
    """The Parquet of a large CP932 or EUC-JP file is the same as that of its UTF-8 twin."""
    rows = "".join(f"{n},2024/01/{n % 28 + 1:02d},{'東京大阪福岡ｱｲｳ売'[n % 10:]},{n * 1.5}\n" for n in range(250_000))
    text = "番号,日付,店舗,金額\n" + rows
    assert len(text.encode(encoding)) >= csv_import.FIRST_BLOCK_SIZE
    legacy, utf8 = tmp_path / "legacy.csv", tmp_path / "utf8.csv"
    legacy.write_bytes(text.encode(encoding))
    utf8.write_bytes(text.encode())
    ours = convert_csv_to_parquet(legacy, tmp_path / "legacy.parquet", encoding=encoding)
    twin = convert_csv_to_parquet(utf8, tmp_path / "utf8.parquet")
    assert ours.encoding == encoding and ours.row_count == twin.row_count == 250_000
    assert pq.read_table(tmp_path / "legacy.parquet").equals(pq.read_table(tmp_path / "utf8.parquet"))


def test_a_wide_file_read_raw_in_small_blocks_converts_as_its_utf8_twin(tmp_path, monkeypatch):
    """A file of more than ``WIDE_COLUMNS`` columns goes to the streaming reader, one small block at a time: each
    batch's text is transcoded, and a column widened in a later block is widened as in the UTF-8 twin."""
    monkeypatch.setattr(csv_import, "WIDE_BLOCK_SIZE", 4096)
    header = ",".join(f"列{column}" for column in range(120))
    rows = [",".join(f"東京{row}" if column % 3 == 0 else str(row * column) for column in range(120)) for row in range(300)]
    rows[250] = rows[250].replace(",250,", ",250.5,", 1)
    text = header + "\n" + "\n".join(rows) + "\n"
    legacy, utf8 = tmp_path / "legacy.csv", tmp_path / "utf8.csv"
    legacy.write_bytes(text.encode("cp932"))
    utf8.write_bytes(text.encode())
    convert_csv_to_parquet(legacy, tmp_path / "legacy.parquet", encoding="cp932")
    convert_csv_to_parquet(utf8, tmp_path / "utf8.parquet")
    table = pq.read_table(tmp_path / "legacy.parquet")
    assert table.num_rows == 300 and table.schema.field("列1").type == pa.float64()
    assert table.equals(pq.read_table(tmp_path / "utf8.parquet"))
