"""Arrow bombs: a DataFrame output's table that is small on the wire and huge once read.

A kernel writes the whole table of a DataFrame output as an Arrow IPC stream to its tables folder,
which the server fetches, stores and pages from. Each stream below is a few kilobytes, written by card code (the kernel is
only the pipe: any card can write any file there and display any MIME bundle): columns of one repeated value that zstd
shrinks 30,000 times, a compressed buffer that claims a terabyte, billions of rows of the null
type (no buffers at all), one row holding thirty million nested nulls, and a 300 KB string that
a dictionary repeats in every row. The server refuses the first three at store time with the
error output ``table_too_large`` and the pages of the last two (whose stored size is within
bounds) with a 400 ``table_too_large``, and reads a stored stream with the same ceiling; the
server's peak memory (``VmHWM``, reset through ``/proc/self/clear_refs``: the server runs in this
process) stays small throughout.
"""

from __future__ import annotations

import base64
import struct
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tornado.httpclient import HTTPClientError

from kernels.wire import TABLE_FILE
from server.models import OutputTable, utcnow
from tests.server.conftest import api, start_server  # noqa: F401 - fixtures
from tests.server.test_sessions import open_session, root, run, start_cards  # noqa: F401 - fixtures

MIB = 1024 * 1024
CEILING = 100 * MIB  # what reading all the bombs may add to the server's peak memory


def stream_of(batches: list[pa.RecordBatch], compression: str | None = "zstd") -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def zstd_bomb() -> bytes:
    """1 GiB of int64 zeros in 16 batches of 64 MiB: about 36 KB with zstd."""
    batch = pa.record_batch([pa.array(np.zeros(8 * MIB, dtype=np.int64))], names=["zero"])
    return stream_of([batch] * 16)


def lying_bomb() -> bytes:
    """1,000 int64 whose compressed buffer claims to inflate to 1 TiB."""
    stream = stream_of([pa.record_batch([pa.array(range(1000), pa.int64())], names=["n"])])
    honest = struct.pack("<q", 8000)  # the buffer's inflated size, the only 8000 in the stream
    assert stream.count(honest) == 1
    return stream.replace(honest, struct.pack("<q", 2 ** 40))


def null_rows_bomb() -> bytes:
    """Ten billion rows of the null type, which has no buffers."""
    batch = pa.record_batch([pa.nulls(2 ** 31 - 1)], names=["nothing"])
    return stream_of([batch] * 5, compression=None)


def nested_nulls_bomb() -> bytes:
    """One row holding a list of thirty million nulls."""
    count = 30_000_000
    column = pa.ListArray.from_arrays(pa.array([0, count], pa.int32()), pa.nulls(count))
    return stream_of([pa.record_batch([column], names=["everything"])], compression=None)


def dictionary_bomb() -> bytes:
    """1,000 rows that each point at one 300 KB dictionary string (300 MB once converted)."""
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(1000, dtype=np.int32)), pa.array(["x" * 300_000]))
    return stream_of([pa.record_batch([column], names=["same"])])


STORE_TIME_BOMBS = {"zstd": zstd_bomb, "lying": lying_bomb, "null_rows": null_rows_bomb}
PAGE_BOMBS = {"nested_nulls": nested_nulls_bomb, "dictionary": dictionary_bomb}  # within the store's bounds


def display_code(stream: bytes) -> str:
    """Card code that writes ``stream`` to its kernel's tables folder and shows a bundle naming it."""
    name = uuid.uuid4().hex
    return (f"import base64, pyarrow as pa\nfrom IPython.display import display\n"
            f"with pa.OSFile(get_ipython().kernel.tables_dir + '/{name}.arrow', 'wb') as file:\n"
            f"    file.write(base64.b64decode({base64.b64encode(stream)!r}))\n"
            f"display({{{TABLE_FILE!r}: {{'name': {name!r}}}, 'text/plain': 'a table'}}, raw=True)\n")


def _status_kib(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def reset_peak() -> int:
    """Reset this process's peak RSS to its current RSS, which is returned."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def peak_since(baseline: int) -> int:
    return _status_kib("VmHWM") - baseline


async def test_bombs_from_a_card_are_refused_when_kept(start_cards):
    """Each bomb a card displays gets the error output table_too_large and no output_id; streams
    within the store's bounds whose pages would convert thirty million values, or one value 1,000
    times, are kept but such a page is refused; the server's peak memory stays under the ceiling."""
    api = await start_cards()
    token = await api.add_user("bomber@example.com")
    session_id = await open_session(api, token)
    streams = {name: make() for name, make in {**STORE_TIME_BOMBS, **PAGE_BOMBS}.items()}
    baseline = reset_peak()

    results, pages = {}, {}
    for name, stream in streams.items():
        response = await run(api, token, session_id, display_code(stream))
        assert response.code == 200, response.body
        results[name] = response.json()["outputs"]
        for output in results[name]:
            if "output_id" in output:
                pages[name] = await page_of(api, token, output["output_id"])
    growth = peak_since(baseline)

    assert growth < CEILING, f"the server's peak memory grew by {growth // MIB} MB; pages: {pages}"
    for name in STORE_TIME_BOMBS:
        assert [o.get("ename") for o in results[name] if o["output_type"] == "error"] == ["table_too_large"], name
        assert not any("output_id" in o for o in results[name]), (name, pages.get(name))
    assert {name: pages.get(name) for name in PAGE_BOMBS} == dict.fromkeys(PAGE_BOMBS, (400, "table_too_large"))


async def page_of(api, token: str, output_id: str) -> tuple[int | str, str | None]:
    """The status and error code of a page of 1,000 rows (a response too large for the client: "closed")."""
    try:
        page = await api.fetch("GET", f"/api/outputs/{output_id}/rows?limit=1000", token=token)
    except HTTPClientError as exc:
        return "closed", type(exc).__name__
    return page.code, page.json().get("error", {}).get("code") if page.code >= 400 else None


async def test_a_stored_bomb_is_read_with_a_ceiling(api):
    """A bomb already in the store (kept before the bounds existed) is refused by the rows route
    with table_too_large, without inflating it."""
    token = await api.add_user("reader@example.com")
    me = (await api.fetch("GET", "/api/me", token=token)).json()
    store = api.app.store_instance
    output_id = uuid.uuid4().hex
    source = Path(api.app.data_dir) / "bomb.arrow"
    source.write_bytes(zstd_bomb())
    await store.put_blob(f"tables/{output_id}.arrow", source)
    await store.put_output_table(OutputTable(output_id, f"tables/{output_id}.arrow", me["id"], None, utcnow()))
    baseline = reset_peak()

    page = await api.fetch("GET", f"/api/outputs/{output_id}/rows?offset=100000000&limit=10", token=token)
    growth = peak_since(baseline)

    assert (page.code, page.json().get("error", {}).get("code")) == (400, "table_too_large"), page.body[:200]
    assert growth < CEILING, f"the server's peak memory grew by {growth // MIB} MB"


@pytest.fixture(autouse=True)
def _linux_peak_memory() -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs /proc/self/clear_refs to measure peak memory")
