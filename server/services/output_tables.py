"""The whole tables behind DataFrame outputs: kept as Arrow streams, served a page at a time, and let go.

A kernel's DataFrame output names its table, an Arrow stream in a file that the session fetches
from the kernel's agent into ``new_file()`` and hands to ``keep``. ``keep`` measures the stream from
its metadata at once (a table past the bounds is an error output, ``table_too_large``, and costs
nothing), then in the background validates it batch by batch (``TABLE_FILES_CHECKED`` at once:
each maps its file), stores it as a blob and records who may read it, asked again at every page: admins, for a saved card's run whoever may view the
card now, for an editor session's run the user who ran the code. ``rows`` waits for a store still
under way, so a page asked for at once is found.

Every table has an owner and a lifetime:

- an editor session's tables go when the session runs code again or closes (``drop_session``);
- a card run's tables belong to its result cache entry and go with it (``services/card_runs.py``);
- each user's tables are charged to them (the user whose session ran the code) up to
  ``quota_bytes`` and ``quota_tables``; past either the least recently used (stored or paged) go
  first, except pinned ones, the current output of a dashboard tile (``pin``, from the dashboard
  hub). The user's tables are listed only when an estimate (the last count plus what was stored
  since) reaches the quota, so keeping a table costs no listing in the common case;
- the outputs blob of a result cache entry is charged the same way, to the user whose action caused
  the run (``keep_result``), and counts in the same quota: a record with ``result_key``, never paged.
  When it is evicted (least recently stored or served), its cache entry goes with it; the tables of
  that entry stay, charged on their own.

A table is stored blob first, then record, and deleted record first, then blob: a crash or a store
fault in between leaves an orphan blob, never a record that points at nothing. A table that could
not be stored is logged (``output_table_not_stored``), and ``stored`` says so: its run is not cached.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from ..errors import BIError, NotFoundError, StorageUnavailableError
from ..execution.tables import measure, read_rows, validate
from ..limits import TABLE_FILES_CHECKED, TABLE_QUOTA_BYTES, TABLE_QUOTA_COUNT
from ..logs import get_logger
from ..models import OutputTable, User, iso_time, utcnow
from ..private_files import private_dir
from ..storage.base import Store
from .cards import CardService

log = get_logger("bi.outputs")

TOUCH_SECONDS = 60.0  # a served result's last use is written at most this often


class OutputTables(LoggingConfigurable):
    quota_bytes = Integer(TABLE_QUOTA_BYTES, help="Bytes of stored output tables and cached results each user's "
                                                  "runs may keep; past it the least recently used go first."
                          ).tag(config=True)
    quota_tables = Integer(TABLE_QUOTA_COUNT, help="Stored output tables and cached results each user's runs may "
                                                   "keep; past it the least recently used go first.").tag(config=True)

    def __init__(self, store: Store, cards: CardService, tmp_dir: Path, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.cards = cards
        self.tmp_dir = tmp_dir
        self._checking = asyncio.Semaphore(TABLE_FILES_CHECKED)
        self._storing: dict[str, asyncio.Future[bool]] = {}  # output id -> whether it is stored, once known
        self._editor: dict[str, list[str]] = {}  # editor session id -> its latest run's tables
        self._tasks: set[asyncio.Task[None]] = set()
        self._usage: dict[str, tuple[int, int]] = {}  # user id -> (bytes, tables) at most, as last counted
        self.deleted: list[Callable[[list[str]], Awaitable[None]]] = []  # told the ids of each table deleted

    def new_file(self) -> Path:
        """A fresh path for a table file on its way to ``keep``."""
        private_dir(self.tmp_dir)
        return self.tmp_dir / f"table-{uuid.uuid4().hex}.arrow"

    def keep(self, stream: Path, user_id: str, card_id: str | None, session_id: str) -> str:
        """Store the Arrow stream in the file ``stream`` (in the background, removing the file) as a new
        table; its output_id.

        ``TableTooLargeError`` or ``InvalidTableError`` at once for a stream past the bounds or
        malformed in its metadata. Without ``card_id`` (an editor's run) the table is the session's.
        """
        try:
            measure(stream)
        except BIError:
            stream.unlink(missing_ok=True)
            raise
        output_id = uuid.uuid4().hex
        if card_id is None:
            self._editor.setdefault(session_id, []).append(output_id)
        self.storing(output_id, asyncio.get_running_loop().create_task(self._store(output_id, stream, user_id, card_id)))
        return output_id

    def storing(self, output_id: str, stored: asyncio.Future[bool]) -> None:
        """The table or result record ``output_id`` is being stored: its readers wait for ``stored`` (True once
        its record is written for good, False if it will not be)."""
        self._storing[output_id] = stored
        stored.add_done_callback(lambda _: self._storing.pop(output_id, None))

    async def settled(self, output_id: str) -> None:
        """Wait for the table's storing (and the quota check after it), if under way."""
        storing = self._storing.get(output_id)
        if storing is not None:
            await asyncio.shield(storing)

    async def stored(self, output_ids: Iterable[str]) -> bool:
        """Whether every one of these tables is stored, once their storing is done."""
        return await self.records(output_ids) is not None

    async def records(self, output_ids: Iterable[str]) -> list[OutputTable | None] | None:
        """The records of these tables once their storing is done (None for one stored by this task just now),
        or None if one of them is not stored."""
        records: list[OutputTable | None] = []
        for output_id in output_ids:
            storing = self._storing.get(output_id)
            if storing is not None:
                if not await asyncio.shield(storing):
                    return None
                records.append(None)
                continue
            record = await self.store.get_output_table(output_id)
            if record is None:
                return None
            records.append(record)
        return records

    async def _store(self, output_id: str, stream: Path, user_id: str, card_id: str | None) -> bool:
        """Store the table (removing its file): True once its record is written (the quota check after it may
        fail alone)."""
        try:
            try:
                async with self._checking:
                    await asyncio.to_thread(validate, stream)
            except BIError as exc:
                log.warning("output_table_rejected", output_id=output_id, user_id=user_id, code=exc.code,
                            error=exc.message)
                return False
            size = stream.stat().st_size
            blob_key = f"tables/{output_id}.arrow"
            now = utcnow()
            try:
                await self.store.put_blob(blob_key, stream)
                await self.store.put_output_table(OutputTable(output_id, blob_key, user_id, card_id, now,
                                                              bytes=size, last_used=now))
            except StorageUnavailableError:
                log.warning("output_table_not_stored", output_id=output_id, user_id=user_id)
                return False
        finally:
            stream.unlink(missing_ok=True)
        try:
            await self._keep_within_quota(user_id, size)
        except StorageUnavailableError:
            log.warning("output_table_quota_unchecked", output_id=output_id, user_id=user_id)
        return True

    async def keep_result(self, output_id: str, blob_key: str, size: int, user_id: str, card_id: str,
                          result_key: str) -> None:
        """Charge the stored outputs blob ``blob_key`` (``size`` bytes) of the result cache entry ``result_key``
        to ``user_id``, within their quota, as the record ``output_id`` (which the entry's ``output_ids`` name)."""
        now = utcnow()
        await self.store.put_output_table(OutputTable(output_id, blob_key, user_id, card_id, now, bytes=size,
                                                      last_used=now, result_key=result_key))
        try:
            await self._keep_within_quota(user_id, size)
        except StorageUnavailableError:
            log.warning("output_table_quota_unchecked", output_id=output_id, user_id=user_id)

    async def _keep_within_quota(self, user_id: str, added: int) -> None:
        """Delete the user's least recently used tables, pinned ones aside, until they fit the quota."""
        estimate = self._usage.get(user_id)
        if estimate is not None and self._fits(estimate[0] + added, estimate[1] + 1):
            self._usage[user_id] = (estimate[0] + added, estimate[1] + 1)
            return
        tables = await self.store.list_output_tables(user_id)
        used, count = sum(table.bytes for table in tables), len(tables)
        for table in tables:
            if self._fits(used, count):
                break
            if not table.pinned:
                await self._delete(table)
                used, count = used - table.bytes, count - 1
                log.info("output_table_evicted", output_id=table.output_id, user_id=user_id, bytes=table.bytes,
                         last_used=table.last_used)
        self._usage[user_id] = (used, count)

    def _fits(self, used: int, count: int) -> bool:
        return used <= self.quota_bytes and count <= self.quota_tables

    # lifetimes ---------------------------------------------------------------
    def drop_session(self, session_id: str) -> None:
        """The editor session ran code again or closed: its earlier tables are deleted (in the background)."""
        output_ids = self._editor.pop(session_id, [])
        if output_ids:
            task = asyncio.get_running_loop().create_task(self.delete(output_ids))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def delete(self, output_ids: Iterable[str]) -> None:
        """Delete these tables (once stored, if they are being stored); missing ones are skipped."""
        for output_id in output_ids:
            await self.settled(output_id)
            table = await self.store.get_output_table(output_id)
            if table is not None:
                await self._delete(table)

    async def _delete(self, table: OutputTable) -> None:
        """Delete the record and blob; a result's outputs take their cache entry along, if it still names them."""
        if table.result_key is not None:
            entry = await self.store.get_cached_result(table.result_key)
            if entry is not None and entry.blob_key == table.blob_key:
                await self.store.delete_cached_result(table.result_key)
        await self.store.delete_output_table(table.output_id)
        await self.store.delete_blob(table.blob_key)
        for listener in self.deleted:
            await listener([table.output_id])

    async def served(self, record: OutputTable | None) -> None:
        """A result's stored outputs (``record``, as just read) were served again (a cache hit): used now, for the
        quota's order. Written only when its last use is ``TOUCH_SECONDS`` old, so that a busy dashboard costs no
        write per join (None: stored just now)."""
        if record is not None and record.last_used < iso_time(time.time() - TOUCH_SECONDS):
            await self.store.update_output_table(record.output_id, last_used=utcnow())

    async def pin(self, output_ids: Iterable[str], pinned: bool = True) -> None:
        """Keep these tables out of quota eviction (a dashboard tile shows them), or no longer."""
        for output_id in output_ids:
            await self.settled(output_id)
            await self.store.update_output_table(output_id, pinned=pinned)

    # pages -------------------------------------------------------------------
    async def rows(self, user: User, output_id: str, offset: int, limit: int) -> dict[str, Any]:
        """A page of the table, if ``user`` may read it (404 otherwise, as if it did not exist): long cells cut
        and listed in ``truncated_cells``, ``limit`` shrunk to the rows that fit the page's text bound."""
        path = await self.readable_file(user, output_id)
        (rows, truncated), total = await asyncio.to_thread(lambda: (read_rows(path, offset, limit),
                                                                   measure(path).rows))
        await self.store.update_output_table(output_id, last_used=utcnow())
        if len(rows) < min(limit, total - offset):  # the page's text passed its bound: fewer rows
            limit = len(rows)
        return {"output_id": output_id, "offset": offset, "limit": limit, "row_count": total, "rows": rows,
                "truncated_cells": truncated}

    async def readable_file(self, user: User, output_id: str) -> Path:
        """The stored table's Arrow stream, if ``user`` may read it (404 otherwise, as if it did not exist)."""
        await self.settled(output_id)
        table = await self.store.get_output_table(output_id)
        if table is None or table.result_key is not None or not await self._may_read(user, table):
            raise NotFoundError("No such table output: it may be another user's, or it was removed (a newer run "
                                "replaced it, or its owner's storage for tables was full). Run the code again.")
        return await self.store.blob_path(table.blob_key)

    async def _may_read(self, user: User, table: OutputTable) -> bool:
        """Admins; for a saved card's run whoever may view the card now (not who ran it, who may have
        lost their share since); for an editor session's run its user."""
        if user.role == "admin":
            return True
        if table.card_id is None:
            return table.user_id == user.id
        card = await self.store.get_card(table.card_id)
        return card is not None and await self.cards.access(user, card) is not None


def output_ids(outputs: Iterable[dict[str, Any]]) -> list[str]:
    """The tables the outputs of a run page from."""
    return [output["output_id"] for output in outputs if isinstance(output.get("output_id"), str)]
