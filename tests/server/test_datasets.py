"""Dataset routes end to end: uploads, detection, bad files, paging, versions, visibility, limits."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

JAPANESE_CSV = "店舗,商品,数量,売上\n東京,りんご,3,1200.5\n大阪,みかん,5,800\n名古屋,ぶどう,1,2500\n"
LIMIT = 100 * 1024 * 1024


def leftovers(api) -> list[Path]:
    """Files left in the server's temp and blob folders."""
    data = Path(api.app.data_dir)
    return [p for p in (data / "tmp").glob("*")] + [p for p in (data / "blobs").rglob("*") if p.is_file()]


def multipart(filename: str, content: bytes, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (fields or {}).items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f'Content-Type: text/csv\r\n\r\n'.encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def raw_post(api, token: str, name: str, headers: str, body: bytes = b""):
    """Open a socket and send an upload's request head (and ``body``) by hand."""
    host, port = api.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"POST /api/datasets?name={name} HTTP/1.1\r\nHost: {host}\r\n"
                  f"Authorization: Bearer {token}\r\nContent-Type: text/csv\r\n{headers}\r\n").encode() + body)
    await writer.drain()
    return reader, writer


async def upload(api, name: str, content: bytes, token: str, **params: str):
    query = "&".join(f"{k}={v}" for k, v in {"name": name, **params}.items())
    return await api.fetch("POST", f"/api/datasets?{query}", body=content, token=token,
                           headers={"Content-Type": "text/csv"})


class TestUpload:
    @pytest.mark.parametrize("encoding", ["cp932", "euc_jp", "utf-8", "utf-8-sig"])
    async def test_japanese_encodings(self, any_api, encoding):
        """Japanese CSVs in each encoding come out with the right names, values and types."""
        token = await any_api.login()
        response = await upload(any_api, "sales", JAPANESE_CSV.encode(encoding), token)
        assert response.code == 201, response.body
        body = response.json()
        assert body["name"] == "sales" and body["version"] == 1 and body["row_count"] == 3
        assert [c["name"] for c in body["columns"]] == ["店舗", "商品", "数量", "売上"]
        assert [c["type"] for c in body["columns"]] == ["string", "string", "int64", "double"]
        assert body["bytes"] == len(JAPANESE_CSV.encode(encoding))
        assert body["encoding"].replace("-", "_").startswith(encoding.replace("-", "_")[:5])
        preview = await any_api.fetch("GET", f"/api/datasets/{body['id']}/preview", token=token)
        assert preview.json()["rows"][0] == ["東京", "りんご", 3, 1200.5]

    async def test_given_encoding_and_delimiter(self, api):
        """A given encoding and delimiter are used and reported as not detected."""
        token = await api.login()
        content = JAPANESE_CSV.replace(",", ";").encode("cp932")
        response = await upload(api, "semi", content, token, encoding="cp932", delimiter="%3B")
        assert response.code == 201, response.body
        body = response.json()
        assert body["delimiter"] == ";" and body["encoding"] == "cp932"
        assert body["detection"]["encoding_detected"] is False
        assert body["detection"]["delimiter_detected"] is False

    async def test_multipart_upload_named_after_file(self, api):
        """A browser form upload works and takes its name from the file when none is given."""
        token = await api.login()
        body, content_type = multipart("売上データ.csv", JAPANESE_CSV.encode("cp932"))
        response = await api.fetch("POST", "/api/datasets", body=body, token=token,
                                   headers={"Content-Type": content_type})
        assert response.code == 201, response.body
        assert response.json()["name"] == "売上データ"
        assert response.json()["row_count"] == 3

    async def test_multipart_without_file_part(self, api):
        """A form with no file part is a 400 and stores nothing."""
        token = await api.login()
        boundary = "b0undary"
        body = f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--{boundary}--\r\n'
        response = await api.fetch("POST", "/api/datasets", body=body.encode(), token=token,
                                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert response.code == 400
        assert leftovers(api) == []

    async def test_audit_dataset_created(self, api):
        """An upload writes dataset_created with the dataset and owner ids."""
        token = await api.login()
        with capture_logs() as logs:
            response = await upload(api, "sales", JAPANESE_CSV.encode(), token)
        event = next(e for e in logs if e["event"] == "dataset_created")
        assert event["dataset_id"] == response.json()["id"]
        assert event["owner_id"] == response.json()["owner_id"]

    async def test_name_required_and_unique(self, api):
        """A raw upload needs a name, and one owner cannot reuse it."""
        token = await api.login()
        response = await api.fetch("POST", "/api/datasets", body=b"a\n1\n", token=token)
        assert response.code == 400
        assert (await upload(api, "sales", b"a\n1\n", token)).code == 201
        again = await upload(api, "sales", b"a\n1\n", token)
        assert again.code == 409
        assert "new version" in again.json()["error"]["message"]

    async def test_upload_needs_token_before_body(self, api):
        """Without a token the upload is refused with 401."""
        response = await api.fetch("POST", "/api/datasets?name=x", body=b"a\n1\n", token="")
        assert response.code == 401
        assert leftovers(api) == []


class TestBadFiles:
    @pytest.mark.parametrize("content, words", [
        (b"", "empty"),
        (b"a,b,c\n", "no data rows"),
        (b"a,b,c\n1,2,3\n4,5\n", "line 3"),
        (b"a,b\n1,2\n3,4,5,6\n", "line 3"),
    ])
    async def test_unparseable_is_422(self, any_api, content, words):
        """Empty, header-only and ragged files get a 422 naming the problem, and nothing is stored."""
        token = await any_api.login()
        response = await upload(any_api, "bad", content, token)
        assert response.code == 422, response.body
        assert words in response.json()["error"]["message"].lower()
        listed = await any_api.fetch("GET", "/api/datasets", token=token)
        assert listed.json()["datasets"] == []
        if any_api.app.store == "embedded":
            assert leftovers(any_api) == []

    async def test_wrong_encoding_names_line(self, api):
        """CP932 bytes declared as UTF-8 are a 422 naming the line and suggesting encoding=."""
        token = await api.login()
        content = ("id,name\n1,abc\n2,東京\n").encode("cp932")
        response = await upload(api, "bad", content, token, encoding="utf-8")
        assert response.code == 422
        error = response.json()["error"]
        assert error["details"]["line"] == 3
        assert "encoding" in error["message"]
        assert leftovers(api) == []

    async def test_unknown_encoding(self, api):
        """An encoding name Python does not know is a 400."""
        token = await api.login()
        response = await upload(api, "x", b"a\n1\n", token, encoding="klingon")
        assert response.code == 400

    @pytest.mark.parametrize("encoding", ["idna", "punycode", "undefined", "unicode_escape", "utf-7", "rot13",
                                          "base64", "zlib", "x" * 300, "utf-8%00"])
    async def test_encodings_that_read_no_text_file_are_a_400(self, api, encoding):
        """Codecs for domain names, Python literals or bytes, and made-up names: a 400 that quotes little."""
        token = await api.login()
        response = await upload(api, "x", b"a,b\n1,2\n", token, encoding=encoding)
        assert response.code == 400 and response.error_code == "invalid_encoding", response.body
        assert len(response.json()["error"]["message"]) < 200
        assert leftovers(api) == []

    @pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
    async def test_utf16_and_utf32_without_a_byte_order_mark_ask_for_one(self, api, encoding):
        """Without a BOM the byte order is unknown: a 422 naming the -le/-be encodings; with one it reads."""
        token = await api.login()
        content = "a,b\n1,2\n".encode(f"{encoding}-le")
        response = await upload(api, "x", content, token, encoding=encoding)
        assert response.code == 422 and response.error_code == "byte_order_mark_missing", response.body
        assert f"{encoding}-le" in response.json()["error"]["message"]
        assert (await upload(api, "le", content, token, encoding=f"{encoding}-le")).code == 201
        bom = (await upload(api, "bom", "a,b\n1,2\n".encode(encoding), token, encoding=encoding))
        assert bom.code == 201 and bom.json()["columns"][0]["name"] == "a"

    @pytest.mark.parametrize("delimiter", ["%C3%A9", "%00", "%0B", "%0A", "%22", "ab", "%E3%80%81"])
    async def test_delimiters_other_than_one_ascii_character_are_a_400(self, api, delimiter):
        token = await api.login()
        response = await upload(api, "x", b"a,b\n1,2\n", token, delimiter=delimiter)
        assert response.code == 400 and response.error_code == "invalid_delimiter", response.body

    @pytest.mark.parametrize("delimiter, sent", [("\t", "%09"), (" ", "%20")])
    async def test_tab_and_space_delimiters_are_used_not_dropped(self, api, delimiter, sent):
        """A tab or a space given as the delimiter splits the rows (it used to be stripped and sniffed)."""
        token = await api.login()
        content = f"a{delimiter}b,c\n1{delimiter}2,3\n".encode()
        response = await upload(api, "x", content, token, delimiter=sent)
        assert response.code == 201, response.body
        assert response.json()["delimiter"] == delimiter
        assert [c["name"] for c in response.json()["columns"]] == ["a", "b,c"]


class TestLimits:
    async def test_declared_length_over_limit(self, api):
        """A Content-Length of 100 MB + 1 byte is refused with 413 before any body is sent."""
        token = await api.login()
        reader, writer = await raw_post(api, token, "big", f"Content-Length: {LIMIT + 64 * 1024 + 1}\r\n")
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 413")
        writer.close()
        assert leftovers(api) == []

    async def test_streamed_body_over_limit(self, api):
        """A chunked body that passes 100 MB by one byte is cut off with 413 and nothing is kept."""
        token = await api.login()
        reader, writer = await raw_post(api, token, "big", "Transfer-Encoding: chunked\r\n")
        chunk = (b"a,b,c\n" + b"1,2,3\n" * 174762)[: 1024 * 1024]
        for _ in range(LIMIT // len(chunk)):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"1\r\nx\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 30)
        assert status.startswith(b"HTTP/1.1 413")
        writer.close()
        assert leftovers(api) == []

    async def test_client_gone_mid_upload(self, api):
        """A client that disconnects mid-upload leaves no temp file."""
        token = await api.login()
        _, writer = await raw_post(api, token, "half", "Content-Length: 1000000\r\n", b"a,b\n1,2\n" * 1000)
        await asyncio.sleep(0.2)
        writer.close()
        for _ in range(50):
            if not leftovers(api):
                break
            await asyncio.sleep(0.05)
        assert leftovers(api) == []


class TestReadAndChange:
    async def test_list_get_preview_paging(self, any_api):
        """The list shows the dataset, and preview pages through rows with offset and limit."""
        token = await any_api.login()
        content = "n,label\n" + "".join(f"{i},行{i}\n" for i in range(250))
        created = (await upload(any_api, "rows", content.encode("cp932"), token)).json()
        listed = (await any_api.fetch("GET", "/api/datasets", token=token)).json()["datasets"]
        assert [d["id"] for d in listed] == [created["id"]]
        detail = (await any_api.fetch("GET", f"/api/datasets/{created['id']}", token=token)).json()
        assert detail["row_count"] == 250 and detail["columns"] == created["columns"]
        page = (await any_api.fetch("GET", f"/api/datasets/{created['id']}/preview?offset=240&limit=20",
                                    token=token)).json()
        assert page["total_rows"] == 250 and page["columns"] == ["n", "label"]
        assert page["rows"] == [[i, f"行{i}"] for i in range(240, 250)]

    @pytest.mark.parametrize("query", [
        "offset=-1", "limit=0", "limit=100000", "offset=abc", "offset=%EF%BC%91", "limit=%EF%BC%95",
        "offset=%2B1", "offset=%201", "offset=1%20", "offset=1_0", "offset=1e3", "offset=" + "9" * 5000,
        "version=0", "version=-1", "version=999999999999999999999999999", "version=9223372036854775808"])
    async def test_bad_paging(self, api, query):
        """Anything but ASCII digits in range is a 400 naming the range, never a 500, never echoed whole."""
        token = await api.login()
        created = (await upload(api, "rows", b"a\n1\n", token)).json()
        response = await api.fetch("GET", f"/api/datasets/{created['id']}/preview?{query}", token=token)
        assert response.code == 400 and response.error_code == "invalid_argument", response.body
        error = response.json()["error"]
        assert error["details"]["argument"] == query.split("=")[0] and len(error["message"]) < 200

    async def test_new_version(self, any_api):
        """A re-upload is version 2; version 1 stays readable and unchanged."""
        token = await any_api.login()
        created = (await upload(any_api, "sales", b"a,b\n1,2\n", token)).json()
        response = await any_api.fetch("POST", f"/api/datasets/{created['id']}/versions",
                                       body="a,b\n3,4\n5,6\n".encode(), token=token)
        assert response.code == 201, response.body
        assert response.json()["version"] == 2 and response.json()["row_count"] == 2
        versions = (await any_api.fetch("GET", f"/api/datasets/{created['id']}/versions", token=token)).json()
        assert [v["version"] for v in versions["versions"]] == [2, 1]
        old = await any_api.fetch("GET", f"/api/datasets/{created['id']}/preview?version=1", token=token)
        assert old.json()["rows"] == [[1, 2]]

    async def test_bad_new_version_keeps_old(self, api):
        """A failing re-upload leaves the dataset at its old version with nothing added."""
        token = await api.login()
        created = (await upload(api, "sales", b"a,b\n1,2\n", token)).json()
        response = await api.fetch("POST", f"/api/datasets/{created['id']}/versions",
                                   body=b"a,b\n1,2,3\n", token=token)
        assert response.code == 422
        detail = (await api.fetch("GET", f"/api/datasets/{created['id']}", token=token)).json()
        assert detail["version"] == 1
        assert len(list((Path(api.app.data_dir) / "blobs").rglob("*.parquet"))) == 1

    async def test_other_users_cannot_see(self, any_api):
        """Another member gets 404 on every route of someone else's dataset; an admin sees it."""
        owner = await any_api.add_user("owner@example.com")
        stranger = await any_api.add_user("stranger@example.com")
        created = (await upload(any_api, "private", b"a\n1\n", owner)).json()
        base = f"/api/datasets/{created['id']}"
        for method, path in [("GET", base), ("GET", base + "/preview"), ("GET", base + "/versions"),
                             ("DELETE", base), ("POST", base + "/versions")]:
            response = await any_api.fetch(method, path, token=stranger, body=b"a\n2\n" if method == "POST" else None)
            assert response.code == 404, (method, path)
        assert (await any_api.fetch("GET", "/api/datasets", token=stranger)).json()["datasets"] == []
        admin = await any_api.login()
        assert (await any_api.fetch("GET", base, token=admin)).code == 200

    async def test_delete(self, any_api):
        """The owner deletes a dataset: records and blobs go, and the name is free again."""
        token = await any_api.login()
        created = (await upload(any_api, "gone", b"a\n1\n", token)).json()
        await any_api.fetch("POST", f"/api/datasets/{created['id']}/versions", body=b"a\n2\n", token=token)
        response = await any_api.fetch("DELETE", f"/api/datasets/{created['id']}", token=token)
        assert response.code == 204
        assert (await any_api.fetch("GET", f"/api/datasets/{created['id']}", token=token)).code == 404
        if any_api.app.store == "embedded":
            assert leftovers(any_api) == []
        assert (await upload(any_api, "gone", b"a\n1\n", token)).code == 201
