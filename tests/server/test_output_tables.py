"""OutputTables on a real SQLite store, without kernels: quotas, least recent use, pins, sessions."""

from __future__ import annotations

import pyarrow as pa
import pytest

from server.errors import NotFoundError, TableTooLargeError
from server.models import User, utcnow
from server.services.output_tables import OutputTables
from server.storage.sqlite import SQLiteStore


def stream(rows: int) -> bytes:
    table = pa.table({"n": pa.array(range(rows), pa.int64())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


TABLE = stream(1000)  # about 8 KB


@pytest.fixture
async def tables(tmp_path):
    store = SQLiteStore(data_dir=str(tmp_path))
    await store.open()
    yield OutputTables(store, cards=None, tmp_dir=tmp_path / "tmp", quota_bytes=3 * len(TABLE), quota_tables=100)
    await store.close()


def admin(name: str) -> User:
    return User(name, f"{name}@example.com", name, "admin", "", utcnow())


def file_of(tables: OutputTables, data: bytes) -> object:
    """A table file fetched from a kernel, as the session hands it to ``keep``."""
    path = tables.new_file()
    path.write_bytes(data)
    return path


async def keep(tables: OutputTables, owner: str, data: bytes = TABLE, card: str | None = "c") -> str:
    file = file_of(tables, data)
    output_id = tables.keep(file, owner, card, "s1")
    await tables.settled(output_id)
    assert not file.exists()  # stored, and the fetched file gone
    return output_id


async def readable(tables: OutputTables, owner: str, output_id: str) -> bool:
    """Whether the table is still kept: paged (and so used) as an admin, since card "c" is no real card."""
    try:
        await tables.rows(admin(owner), output_id, 0, 1)
    except NotFoundError:
        return False
    return True


async def test_least_recently_used_go_first_and_pins_stay(tables):
    """Past the quota the least recently used (stored or paged) table goes; a pinned one never
    does; another user's tables are not theirs to lose."""
    other = await keep(tables, "bo")
    first, second, third = [await keep(tables, "ana") for _ in range(3)]
    await tables.pin([first])
    assert await readable(tables, "ana", second)  # used now: third is the least recently used unpinned
    fourth = await keep(tables, "ana")
    assert [await readable(tables, "ana", t) for t in (first, second, third, fourth)] == [True, True, False, True]
    await tables.pin([first], pinned=False)
    await keep(tables, "ana")
    assert not await readable(tables, "ana", first)
    assert await readable(tables, "bo", other)


async def test_the_count_of_tables_is_bounded_too(tables):
    """Past the number of tables a user may keep, the least recently used go as well."""
    tables.quota_tables = 2
    kept = [await keep(tables, "ana", stream(1)) for _ in range(4)]
    assert [await readable(tables, "ana", t) for t in kept] == [False, False, True, True]


async def test_an_editor_run_supersedes_the_session_tables_and_a_card_run_does_not(tables):
    """Dropping a session deletes its editor tables; a card run's (kept with its cache entry) stay."""
    editor = await keep(tables, "ana", card=None)
    card_run = await keep(tables, "ana", card="c")
    tables.drop_session("s1")
    await tables.delete([editor])  # waits for nothing more than the deletion already under way
    assert not await readable(tables, "ana", editor)
    assert await readable(tables, "ana", card_run)


def test_a_table_past_the_bounds_is_refused_at_once(tables):
    """Ten million rows of nulls (no bytes at all) are refused when kept, before anything is stored."""
    huge = pa.table({"nothing": pa.nulls(10_000_000)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, huge.schema) as writer:
        writer.write_table(huge)
    file = file_of(tables, sink.getvalue().to_pybytes())
    with pytest.raises(TableTooLargeError):
        tables.keep(file, "ana", None, "s1")
    assert not file.exists()
