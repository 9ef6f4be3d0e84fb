"""CSV -> Parquet conversion: encodings, delimiters, headers, types, and every failure mode."""

from __future__ import annotations

import codecs
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from server import csv_import
from server.csv_import import convert_csv_to_parquet
from server.errors import InvalidRequestError, UnprocessableError
from server.limits import CSV_COLUMNS

JAPANESE = "名前,住所,メモ\n山田太郎,東京都千代田区,①ｶﾀｶﾅ髙﨑\n佐藤花子,大阪府大阪市,ポイント２倍\n"
JAPANESE_ROWS = {
    "名前": ["山田太郎", "佐藤花子"],
    "住所": ["東京都千代田区", "大阪府大阪市"],
    "メモ": ["①ｶﾀｶﾅ髙﨑", "ポイント２倍"],
}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 512 bytes and row groups of 2 KB, so a few hundred rows span many of each."""
    monkeypatch.setattr(csv_import, "FIRST_BLOCK_SIZE", 512)
    monkeypatch.setattr(csv_import, "BLOCK_SIZE", 512)
    monkeypatch.setattr(csv_import, "ROW_GROUP_BYTES", 2048)


@pytest.fixture
def small_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4 KB head and 1 KB pieces, so that a file of tens of KB extends past the head."""
    monkeypatch.setattr(csv_import, "SAMPLE_HEAD_BYTES", 4096)
    monkeypatch.setattr(csv_import, "SAMPLE_PIECE_BYTES", 1024)


def write(tmp_path: Path, data: bytes | str, codec: str = "utf-8") -> Path:
    """Write ``data`` (text is encoded with ``codec``) as the upload."""
    source = tmp_path / "upload.csv"
    source.write_bytes(data if isinstance(data, bytes) else data.encode(codec))
    return source


def convert(tmp_path: Path, data: bytes | str, codec: str = "utf-8", **kwargs):
    """Convert ``data`` and return the result and the Parquet read back as a dict of lists."""
    target = tmp_path / "out.parquet"
    result = convert_csv_to_parquet(write(tmp_path, data, codec), target, **kwargs)
    return result, pq.read_table(target).to_pydict()


def fail(tmp_path: Path, data: bytes | str, codec: str = "utf-8", **kwargs) -> UnprocessableError:
    """Convert ``data`` expecting a 422, and check that no target was left behind."""
    target = tmp_path / "out.parquet"
    with pytest.raises(UnprocessableError) as caught:
        convert_csv_to_parquet(write(tmp_path, data, codec), target, **kwargs)
    assert not target.exists()
    return caught.value


def types(result) -> dict[str, str]:
    return {column.name: column.type for column in result.columns}


# Encodings


def test_utf8_without_bom_is_detected_with_full_confidence(tmp_path):
    """Plain UTF-8 Japanese is recognised as strict UTF-8 and read back unchanged."""
    result, table = convert(tmp_path, JAPANESE)
    assert result.encoding == "utf-8" and result.encoding_detected
    assert result.encoding_confidence == 1.0
    assert table == JAPANESE_ROWS
    assert result.row_count == 2


def test_utf8_bom_is_detected_and_stripped_from_the_first_name(tmp_path):
    """A UTF-8 BOM gives utf-8-sig and does not end up in the first column name."""
    result, table = convert(tmp_path, codecs.BOM_UTF8 + JAPANESE.encode())
    assert (result.encoding, result.encoding_confidence) == ("utf-8-sig", 1.0)
    assert table == JAPANESE_ROWS


def test_cp932_with_nec_extensions_and_half_width_kana_is_detected(tmp_path):
    """Shift_JIS-family bytes, including ① and half-width kana, are read as cp932."""
    result, table = convert(tmp_path, JAPANESE, codec="cp932")
    assert result.encoding == "cp932" and result.encoding_detected
    assert 0 < result.encoding_confidence <= 1
    assert table == JAPANESE_ROWS


def test_euc_jp_is_detected(tmp_path):
    """EUC-JP bytes (which also happen to decode as cp932) are read as euc_jp."""
    rows = "".join(f"山田太郎{i},東京都千代田区{i}丁目,特になし\n" for i in range(20))
    text = "顧客名,住所,備考\n" + rows
    result, table = convert(tmp_path, text, codec="euc_jp")
    assert result.encoding == "euc_jp"
    assert table["顧客名"][3] == "山田太郎3" and table["備考"][0] == "特になし"


def test_short_euc_jp_is_not_mistaken_for_a_chinese_or_korean_code_page(tmp_path):
    """Even a two-row EUC-JP file, ambiguous to charset-normalizer, comes out as euc_jp."""
    result, table = convert(tmp_path, "名前,値\n山田,1\n佐藤,2\n", codec="euc_jp")
    assert result.encoding == "euc_jp"
    assert table == {"名前": ["山田", "佐藤"], "値": [1, 2]}


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_detected(tmp_path, codec):
    """A UTF-16 BOM (either byte order) gives utf-16."""
    bom = codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE
    result, table = convert(tmp_path, bom + JAPANESE.encode(codec))
    assert result.encoding == "utf-16"
    assert table == JAPANESE_ROWS


def test_japanese_text_that_starts_after_the_head_is_still_detected(tmp_path, small_sample):
    """Pieces sampled beyond an all-ASCII head reveal cp932 further into the file."""
    ascii_rows = "".join(f"{i},plain,ascii\n" for i in range(2000))
    japanese_rows = "".join(f"{i},山田{i},①ｶﾀｶﾅ\n" for i in range(2000, 2300))
    text = "id,name,note\n" + ascii_rows + japanese_rows
    assert text.encode("cp932").index("山".encode("cp932")) > 5 * csv_import.SAMPLE_HEAD_BYTES
    result, table = convert(tmp_path, text, codec="cp932")
    assert result.encoding == "cp932"
    assert table["name"][2100] == "山田2100" and table["note"][-1] == "①ｶﾀｶﾅ"


def test_given_encoding_is_used_and_reported_as_not_detected(tmp_path):
    """encoding= skips detection and is reported under its canonical codec name."""
    result, table = convert(tmp_path, JAPANESE, codec="cp932", encoding="MS932")
    assert result.encoding == "cp932" and not result.encoding_detected
    assert result.encoding_confidence == 1.0
    assert table == JAPANESE_ROWS


@pytest.mark.parametrize("name", ["no-such-codec", "rot13", "base64", "idna", "punycode", "undefined",
                                  "unicode_escape", "raw_unicode_escape", "utf-7", "charmap", "a\0b"])
def test_unknown_or_non_text_encoding_is_a_bad_request(tmp_path, name):
    """An encoding that does not read text files is rejected before anything is written."""
    target = tmp_path / "out.parquet"
    with pytest.raises(InvalidRequestError, match="unknown encoding") as caught:
        convert_csv_to_parquet(write(tmp_path, "a,b\n1,2\n"), target, encoding=name)
    assert caught.value.code == "invalid_encoding"
    assert not target.exists()


def test_every_file_encoding_can_be_named():
    """The allow-list holds the file encodings people have, under their canonical names."""
    for name in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be", "cp932", "shift_jis_2004",
                 "euc_jp", "iso2022_jp", "cp1252", "latin-1", "gb18030", "big5", "koi8-r", "cp037"):
        assert codecs.lookup(name).name in csv_import.CSV_ENCODINGS, name


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_utf16_without_a_byte_order_mark_is_a_422_naming_the_byte_orders(tmp_path, codec):
    error = fail(tmp_path, "a,b\n1,2\n".encode(f"{codec}-be"), encoding=codec)
    assert error.code == "byte_order_mark_missing"
    assert f"{codec}-le" in error.message and f"{codec}-be" in error.message


def test_undetectable_bytes_ask_for_an_encoding(tmp_path):
    """Binary noise that no codec decodes is a 422 asking for encoding=."""
    error = fail(tmp_path, bytes(range(256)) * 4)
    assert "encoding=" in error.message


# Invalid bytes


def test_invalid_byte_in_given_encoding_names_its_line(tmp_path, small_blocks):
    """A byte cp932 cannot decode, deep in the file, is reported with its line."""
    data = "名前,値\n".encode("cp932") + "山田,1\n".encode("cp932") * 300 + b"\x81\x20,2\n"
    error = fail(tmp_path, data, encoding="cp932")
    assert error.details == {"line": 302, "reason": "invalid cp932 byte sequence"}
    assert "Line 302" in error.message and "encoding=" in error.message


def test_cp932_file_given_as_utf8_names_the_first_japanese_line(tmp_path):
    """Declaring a cp932 file to be UTF-8 fails at the first line with Japanese bytes."""
    data = ("id,name\n1,plain\n2,山田\n").encode("cp932")
    error = fail(tmp_path, data, encoding="utf-8")
    assert error.details["line"] == 3
    assert "not valid utf-8" in error.message


def test_invalid_utf8_beyond_the_sample_names_its_line(tmp_path, small_sample, small_blocks):
    """A file detected as UTF-8 from its sample but corrupt later is reported by line."""
    rows = "".join(f"{i},テキスト{i}\n" for i in range(3000))
    data = ("id,text\n" + rows).encode() + b"3000,\xff\xfe\n" + "3001,末尾\n".encode() * 2000
    error = fail(tmp_path, data)
    assert error.details["line"] == 3002
    assert "detected as utf-8" in error.message


def test_invalid_utf8_in_an_integer_column_is_reported_not_widened_away(tmp_path, small_blocks):
    """A corrupt byte where an int was expected still ends in the invalid-bytes error."""
    data = b"a,b\n" + b"1,x\n" * 200 + b"\xff,y\n"
    error = fail(tmp_path, data, encoding="utf-8")
    assert error.details["line"] == 202


@pytest.mark.parametrize("stray", [b"\xe9", b"\x9a", b"\xff"])
def test_ascii_with_one_stray_byte_is_read_as_western_not_some_rare_code_page(tmp_path, stray):
    """Dozens of code pages tie on one byte; cp1252 is the likely one here (not cp1006, Urdu)."""
    data = b"name,city\n" + b"alice,Paris\n" * 50 + b"bob,Par" + stray + b"s\n"
    result, table = convert(tmp_path, data)
    assert result.encoding == "cp1252" and table["city"][-1] == "Par" + stray.decode("cp1252") + "s"


def test_cyrillic_is_still_read_as_cyrillic(tmp_path):
    result, table = convert(tmp_path, "имя,город\nАнна,Москва\nИван,Санкт-Петербург\n", "cp1251")
    assert result.encoding == "cp1251" and table["город"] == ["Москва", "Санкт-Петербург"]


def test_utf8_with_one_corrupt_byte_is_not_read_as_a_legacy_code_page(tmp_path):
    """Mostly-valid UTF-8 is treated as UTF-8, so the damage is reported instead of mojibake."""
    data = ("名前,値\n" + "".join(f"山田{i},{i}\n" for i in range(30))).encode() + b"x,\xff\n"
    error = fail(tmp_path, data)
    assert error.details["line"] == 32


# Delimiters


@pytest.mark.parametrize("delimiter", [",", "\t", ";", "|"])
@pytest.mark.parametrize("codec", ["utf-8", "cp932"])
def test_each_delimiter_is_sniffed(tmp_path, delimiter, codec):
    """Comma, tab, semicolon and pipe are recognised (pipe even next to cp932 ポ = 0x837C)."""
    text = JAPANESE.replace(",", delimiter)
    result, table = convert(tmp_path, text, codec=codec)
    assert (result.delimiter, result.delimiter_detected) == (delimiter, True)
    assert table == JAPANESE_ROWS


def test_quoted_delimiters_do_not_mislead_the_sniffer(tmp_path):
    """Commas inside quoted fields of a semicolon file do not make it a comma file."""
    text = 'a;b\n"x, y, z";1\n"p, q";2\n'
    result, table = convert(tmp_path, text)
    assert result.delimiter == ";"
    assert table == {"a": ["x, y, z", "p, q"], "b": [1, 2]}


def test_wider_split_wins_when_two_delimiters_are_consistent(tmp_path):
    """A tab file whose middle column always holds a comma is read as three tab columns."""
    result, table = convert(tmp_path, "id\t住所, 区\tn\n1\t東京, 千代田\t5\n2\t大阪, 北\t6\n")
    assert result.delimiter == "\t"
    assert table["住所, 区"] == ["東京, 千代田", "大阪, 北"]


def test_given_delimiter_is_used(tmp_path):
    """delimiter= overrides sniffing and is reported as not detected."""
    result, table = convert(tmp_path, "a;b,c\n1;2,3\n", delimiter=";")
    assert (result.delimiter, result.delimiter_detected) == (";", False)
    assert table == {"a": [1], "b,c": ["2,3"]}


@pytest.mark.parametrize("delimiter", ["", ";;", '"', "\n", "\r", "\0", "\x0b", "é", "、", "\x7f", "x" * 500])
def test_bad_delimiter_parameter_is_a_bad_request(tmp_path, delimiter):
    """A delimiter that is not one usable character is rejected before anything is written."""
    target = tmp_path / "out.parquet"
    with pytest.raises(InvalidRequestError, match="delimiter"):
        convert_csv_to_parquet(write(tmp_path, "a,b\n1,2\n"), target, delimiter=delimiter)
    assert not target.exists()


def test_one_column_file_falls_back_to_comma(tmp_path):
    """A single-column file has nothing to sniff and gets ','."""
    result, table = convert(tmp_path, "名前\n山田\n佐藤\n")
    assert result.delimiter == ","
    assert table == {"名前": ["山田", "佐藤"]}


# Header


def test_empty_and_duplicate_names_are_made_unique(tmp_path):
    """Blank names become column_<n> (1-based) and repeats get _2, _3."""
    result, table = convert(tmp_path, "a,,a,b, ,a\n1,2,3,4,5,6\n")
    assert [c.name for c in result.columns] == ["a", "column_2", "a_2", "b", "column_5", "a_3"]
    assert table["a_3"] == [6] and table["column_5"] == [5]


def test_duplicate_japanese_names_are_made_unique(tmp_path):
    """Renaming keeps Japanese names intact in a cp932 file."""
    result, table = convert(tmp_path, "名前,名前,値\n山田,佐藤,1\n", codec="cp932")
    assert list(table) == ["名前", "名前_2", "値"]
    assert table["名前_2"] == ["佐藤"]


@pytest.mark.parametrize("codec", ["utf-8", "cp932", "utf-16"])
@pytest.mark.parametrize("text", ["\r\n\n名前,名前,値\n山田,佐藤,1\n", '"名\r\n前",名前,名前\n山田,佐藤,1\n'])
def test_names_made_unique_skip_blank_lines_and_a_header_of_several_lines(tmp_path, codec, text):
    """Read again with the unique names, the records still start after the header: not after its first line."""
    result, table = convert(tmp_path, text, codec=codec)
    assert result.row_count == 1 and list(table.values())[1:] == [["佐藤"], [1]]


# Types


def test_dates_and_timestamps_are_recognised(tmp_path):
    """Slash dates, space-separated and ISO timestamps become timestamps; ISO dates date32."""
    text = ("slash,spaced,iso,date,minutes\n"
            "2024/01/05,2024-01-05 10:00:00,2024-01-05T10:00:00,2024-01-05,2024/01/05 10:30\n"
            "2024/12/31,2024-12-31 23:59:59,2024-12-31T23:59:59,2024-12-31,2024/12/31 23:59\n")
    result, table = convert(tmp_path, text)
    assert types(result) == {"slash": "timestamp[s]", "spaced": "timestamp[s]", "iso": "timestamp[s]",
                             "date": "date32[day]", "minutes": "timestamp[s]"}
    assert str(table["slash"][1]) == "2024-12-31 00:00:00"
    assert str(table["minutes"][0]) == "2024-01-05 10:30:00"


def test_int_column_widens_to_float_in_a_later_block(tmp_path, small_blocks):
    """An int column meeting 1.5 after the first block is re-read as double."""
    result, table = convert(tmp_path, "a,b\n" + "1,x\n" * 300 + "1.5,y\n")
    assert types(result) == {"a": "double", "b": "string"}
    assert table["a"][-1] == 1.5 and table["a"][0] == 1.0 and result.row_count == 301


def test_int_column_widens_to_string_in_a_later_block(tmp_path, small_blocks):
    """An int column meeting text after the first block is re-read as string."""
    result, table = convert(tmp_path, "a,b\n" + "1,x\n" * 300 + "abc,y\n")
    assert types(result)["a"] == "string"
    assert table["a"][0] == "1" and table["a"][-1] == "abc"


def test_int_widens_twice_float_then_string(tmp_path, small_blocks):
    """A column can widen int -> double -> string over successive re-reads."""
    result, table = convert(tmp_path, "a\n" + "1\n" * 300 + "1.5\n" + "2\n" * 300 + "n/a?\n")
    assert types(result) == {"a": "string"}
    assert table["a"][300] == "1.5" and table["a"][-1] == "n/a?"


def test_timestamp_column_widens_to_string(tmp_path, small_blocks):
    """A date column meeting a non-date later becomes a string column."""
    result, table = convert(tmp_path, "d,b\n" + "2024/01/05,x\n" * 200 + "soon,y\n")
    assert types(result)["d"] == "string"
    assert table["d"][0] == "2024/01/05" and table["d"][-1] == "soon"


def test_all_null_columns_widen_together(tmp_path, small_blocks, monkeypatch):
    """Columns empty throughout the first block all become strings in a single re-read."""
    monkeypatch.setattr(csv_import, "MAX_ATTEMPTS", 3)
    result, table = convert(tmp_path, "a,b,c\n" + ",1,\n" * 200 + "3,2,z\n")
    assert types(result) == {"a": "string", "b": "int64", "c": "string"}
    assert table["a"][-1] == "3" and table["c"][-1] == "z" and table["a"][0] == ""


def test_restart_budget_exhausted_reads_everything_as_string(tmp_path, small_blocks, monkeypatch):
    """When widening would need more attempts than allowed, the last one reads strings."""
    monkeypatch.setattr(csv_import, "MAX_ATTEMPTS", 2)
    result, table = convert(tmp_path, "a,b,c\n" + "1,2,x\n" * 200 + "1.5,2.5,y\n")
    assert set(types(result).values()) == {"string"}
    assert table["a"][-1] == "1.5" and table["b"][0] == "2"


def test_batches_are_gathered_into_row_groups(tmp_path, small_blocks, monkeypatch):
    """Row groups hold several blocks' batches (about ROW_GROUP_BYTES), with every row kept."""
    source = write(tmp_path, "a,b\n" + "".join(f"{i},行{i}\n" for i in range(3000)))

    def row_groups(group_bytes: int) -> int:
        monkeypatch.setattr(csv_import, "ROW_GROUP_BYTES", group_bytes)
        target = tmp_path / f"out{group_bytes}.parquet"
        assert convert_csv_to_parquet(source, target).row_count == 3000
        assert pq.read_table(target)["a"].to_pylist() == list(range(3000))
        return pq.ParquetFile(target).metadata.num_row_groups

    one_per_block = row_groups(1)
    assert 1 < row_groups(2048) <= one_per_block // 2


def test_only_text_columns_are_dictionary_encoded(tmp_path):
    """Numbers and times of many distinct values are written plain (a dictionary of them cost writing CPU, then
    fell back to plain and compressed worse); text keeps its dictionary, and every value reads back. Only the
    numbers and times get min/max statistics (those of text cost writing CPU and nothing reads them)."""
    rows = "".join(f"{i},{i * 0.37:.2f},2024/01/{i % 28 + 1:02d},{'東西南北'[i % 4]}\n" for i in range(3000))
    result, table = convert(tmp_path, "id,price,day,area\n" + rows)
    assert types(result) == {"id": "int64", "price": "double", "day": "timestamp[s]", "area": "string"}
    assert table["id"] == list(range(3000)) and table["area"][:5] == ["東", "西", "南", "北", "東"]
    group = pq.ParquetFile(tmp_path / "out.parquet").metadata.row_group(0)
    dictionary = {group.column(i).path_in_schema: "RLE_DICTIONARY" in group.column(i).encodings
                  for i in range(group.num_columns)}
    assert dictionary == {"id": False, "price": False, "day": False, "area": True}
    statistics = {group.column(i).path_in_schema: group.column(i).is_stats_set for i in range(group.num_columns)}
    assert statistics == {"id": True, "price": True, "day": True, "area": False}


# Quoting and data shapes


def test_quoted_newlines_survive_block_boundaries(tmp_path, small_blocks):
    """Multi-line quoted values are kept whole, even where they cross a block boundary."""
    rows = "".join(f'{i},"一行目{i}\n二行目, with comma"\n' for i in range(200))
    result, table = convert(tmp_path, "id,text\n" + rows)
    assert result.row_count == 200
    assert all(value == f"一行目{i}\n二行目, with comma" for i, value in enumerate(table["text"]))


def test_unusual_shapes_do_not_crash(tmp_path):
    """Empty strings, NULL markers and Japanese values in a file of the most columns allowed convert cleanly."""
    width = CSV_COLUMNS // 4 * 4
    header = ",".join(f"列{i}" for i in range(width))
    row = ",".join(["", "NULL", "NA", "値"] * (width // 4))
    result, table = convert(tmp_path, f"{header}\n{row}\n{row}\n")
    assert len(result.columns) == width and result.row_count == 2
    assert table["列3"] == ["値", "値"] and table["列1"] == [None, None]


def test_empty_strings_in_text_columns_stay_empty_strings(tmp_path):
    """An empty field in a text column is an empty string, not a crash or a shift."""
    result, table = convert(tmp_path, 'a,b\nx,""\n,y\n')
    assert table == {"a": ["x", ""], "b": ["", "y"]}


# Empty, header-only, ragged and other failures


@pytest.mark.parametrize("data", [b"", b"  \n\n \t\n", codecs.BOM_UTF8, codecs.BOM_UTF16_LE])
def test_empty_file_is_rejected(tmp_path, data):
    """A file with no bytes, only whitespace, or only a BOM is 'The file is empty.'."""
    error = fail(tmp_path, data)
    assert error.message == "The file is empty."


@pytest.mark.parametrize("data", ["a,b\n", "a,b", "名前,値\r\n\r\n"])
def test_header_only_is_rejected(tmp_path, data):
    """A header without data rows is a 422 saying so."""
    error = fail(tmp_path, data)
    assert "no data rows" in error.message


def test_row_with_too_many_fields_names_its_physical_line(tmp_path):
    """The line counts physical lines, including blank lines and quoted newlines."""
    error = fail(tmp_path, 'a,b\n1,2\n\n"x\ny",3\n4,5,6\n7,8\n')
    assert error.details == {"line": 6, "reason": "expected 2 fields, found 3"}
    assert error.message.startswith("Line 6 has 3 fields but the header has 2")


def test_row_with_too_few_fields_in_a_later_block_names_its_line(tmp_path, small_blocks):
    """A short row several blocks in is reported with its line."""
    error = fail(tmp_path, "名前,値,メモ\n" + "山田,1,x\n" * 300 + "佐藤,2\n", codec="cp932")
    assert error.details == {"line": 302, "reason": "expected 3 fields, found 2"}


def test_a_row_longer_than_a_block_is_read_with_longer_blocks(tmp_path, small_blocks):
    """A field of 4 blocks (as a 3 MB field is of the real 2 MB blocks) is read whole."""
    result, table = convert(tmp_path, "a,b\n" + "1,x\n" * 200 + "2," + "長" * 700 + "\n3,y\n")
    assert result.row_count == 202 and table["b"][200] == "長" * 700 and table["b"][-1] == "y"


def test_a_row_longer_than_the_longest_block_is_a_422_saying_what_to_do(tmp_path, small_blocks, monkeypatch):
    monkeypatch.setattr(csv_import, "LONGEST_ROW_BYTES", 1 << 20)
    error = fail(tmp_path, "a,b\n" + "1,x\n" * 200 + "2," + "x" * 2_200_000 + "\n3,y\n")
    assert error.details == {"line": None, "reason": "row longer than 1 MB"}
    assert "longer than 1 MB" in error.message and "shorten its longest fields" in error.message


def test_failure_removes_a_partially_written_target(tmp_path, small_blocks):
    """A failure after several batches were written leaves no target behind."""
    error = fail(tmp_path, "a,b\n" + "1,x\n" * 300 + "1,x,extra\n")
    assert error.details["line"] == 302


def test_the_header_is_measured_as_pyarrow_reads_it(tmp_path):
    """Quoted delimiters and line breaks are inside a name; blank lines before the header are skipped."""
    result, table = convert(tmp_path, '\n\n"a,b","c\nd"\n1,2\n', max_columns=2)
    assert [c.name for c in result.columns] == ["a,b", "c\nd"]
    error = fail(tmp_path, '"a,b",c,"d"\n1,2,3\n', max_columns=2)
    assert error.code == "too_many_columns" and error.details == {"columns": 3, "limit": 2}


@pytest.mark.parametrize("codec", ["utf-8", "cp932"])
def test_a_header_ending_past_the_sniffed_bytes_is_read_whole(tmp_path, codec):
    """A header longer than the head's first bytes decoded for sniffing (but within the limit) is measured whole."""
    name = "売上" * 50_000  # 300 KB of UTF-8, 200 KB of CP932
    result, table = convert(tmp_path, f"{name},b\n" + "1,2\n" * 300_000, codec=codec, encoding=codec)  # past the head
    assert [c.name for c in result.columns] == [name, "b"] and result.delimiter == "," and result.row_count == 300_000


def test_a_header_with_no_end_in_the_head_is_too_long(tmp_path, small_sample):
    """A first line that does not end within the sampled head is refused before conversion."""
    error = fail(tmp_path, "a" * 10_000 + ",b\n1,2\n" + "3,4\n" * 2000)
    assert error.code == "header_too_long"
