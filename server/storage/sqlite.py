"""The embedded store: one SQLite file for records and a directory for blobs, under ``data_dir``.

All SQLite work runs on one dedicated thread, so the connection is never shared
between threads and writes are serialised. The schema is versioned with
``PRAGMA user_version``; each entry of ``MIGRATIONS`` moves it one step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable, Collection, Iterator

from ..errors import ConflictError, LeaseLostError, NotFoundError, StoreClosedError
from ..limits import SEARCH_TOTAL_MAX
from ..paging import ListQuery, Page, Scope, after_number, fold, number_key, ordered, take
from ..private_files import private_dir, private_file
from ..models import (AuditEvent, AuditQuery, CachedResult, Card, CardVersion, Column, Dashboard, DashboardVersion,
                      Dataset, DatasetVersion, IdempotentAnswer, KernelRecord, Lease, OutputTable, PersonalToken,
                      RefreshSchedule, Share, SignInSession, User, VersionStamp, card_ids, refresh_seconds, utcnow)
from .base import LEASE_KEPT_SECONDS, USER_FIELDS, Store, blob_prefix
from .catalog import (CARD, DASHBOARD, DATASET, CatalogEntry, CatalogueGap, ItemMaker, Listed, card_entry, card_summary,
                      dashboard_entry, dashboard_summary, dataset_entry)
from .versioned import CARDS, DASHBOARDS, DATASETS, Versioned

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        current_version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (owner_id, name)
    );
    CREATE TABLE dataset_versions (
        dataset_id TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        blob_key TEXT NOT NULL,
        row_count INTEGER NOT NULL,
        columns TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        encoding TEXT NOT NULL,
        delimiter TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (dataset_id, version)
    );
    """,
    """
    CREATE TABLE cards (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES users(id),
        current_version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX cards_by_owner ON cards (owner_id, created_at);
    CREATE TABLE card_versions (
        card_id TEXT NOT NULL REFERENCES cards(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        title TEXT NOT NULL,
        code TEXT NOT NULL,
        datasets TEXT NOT NULL,
        parameters TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (card_id, version)
    );
    """,
    """
    CREATE TABLE result_cache (
        key TEXT PRIMARY KEY,
        blob_key TEXT NOT NULL,
        card_id TEXT NOT NULL,
        status TEXT NOT NULL,
        execution_time_ms INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE output_tables (
        output_id TEXT PRIMARY KEY,
        blob_key TEXT NOT NULL,
        user_id TEXT NOT NULL,
        card_id TEXT,
        created_at TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE dashboards (
        id TEXT PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        owner_id TEXT NOT NULL REFERENCES users(id),
        current_version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX dashboards_by_owner ON dashboards (owner_id, created_at);
    CREATE TABLE dashboard_versions (
        dashboard_id TEXT NOT NULL REFERENCES dashboards(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        document TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (dashboard_id, version)
    );
    CREATE TABLE shares (
        dashboard_id TEXT NOT NULL REFERENCES dashboards(id) ON DELETE CASCADE,
        user_id TEXT NOT NULL REFERENCES users(id),
        permission TEXT NOT NULL CHECK (permission IN ('view', 'edit')),
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (dashboard_id, user_id)
    );
    CREATE INDEX shares_by_user ON shares (user_id, created_at);
    """,
    """
    ALTER TABLE result_cache ADD COLUMN variant TEXT NOT NULL DEFAULT '';
    ALTER TABLE result_cache ADD COLUMN output_ids TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX result_cache_by_variant ON result_cache (variant, created_at);
    ALTER TABLE output_tables ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE output_tables ADD COLUMN last_used TEXT NOT NULL DEFAULT '';
    ALTER TABLE output_tables ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
    UPDATE output_tables SET last_used = created_at;
    CREATE INDEX output_tables_by_user ON output_tables (user_id, last_used);
    """,
    """
    ALTER TABLE users ADD COLUMN locale TEXT CHECK (locale IN ('ja', 'en'));
    """,
    """
    CREATE TABLE audit_events (
        key TEXT PRIMARY KEY,
        id TEXT NOT NULL,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        user_id TEXT,
        fields TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX audit_events_by_user ON audit_events (user_id, key);
    CREATE INDEX audit_events_by_event ON audit_events (event, key);
    CREATE INDEX audit_events_by_expiry ON audit_events (expires_at);
    """,
    """
    CREATE TABLE idempotent_answers (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        status INTEGER NOT NULL,
        headers TEXT NOT NULL,
        body TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX idempotent_answers_by_expiry ON idempotent_answers (expires_at);
    """,
    """
    ALTER TABLE users ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN password_change_required INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE sign_in_sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        rotation INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX sign_in_sessions_by_expiry ON sign_in_sessions (expires_at);
    CREATE TABLE personal_tokens (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        generation INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX personal_tokens_by_user ON personal_tokens (user_id, created_at);
    """,
    """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        version INTEGER NOT NULL,
        expires_at REAL NOT NULL,
        done INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX leases_by_expiry ON leases (expires_at);
    """,
    # The catalogue the lists page through (storage/catalog.py): one row per card, dashboard and dataset,
    # its facets (tags, a card's datasets) with the sort keys copied, and its search text under a trigram
    # index (case folded already: bi_fold). Every list is a range of one index.
    """
    ALTER TABLE card_versions ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE catalog (
        row INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        owner_id TEXT NOT NULL,
        title TEXT NOT NULL,
        search TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (kind, id)
    );
    CREATE INDEX catalog_by_updated ON catalog (kind, updated_at, id);
    CREATE INDEX catalog_by_title ON catalog (kind, title, id);
    CREATE INDEX catalog_by_owner_updated ON catalog (kind, owner_id, updated_at, id);
    CREATE INDEX catalog_by_owner_title ON catalog (kind, owner_id, title, id);
    CREATE TABLE catalog_facets (
        row INTEGER NOT NULL REFERENCES catalog(row) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        facet TEXT NOT NULL,
        value TEXT NOT NULL,
        owner_id TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        title TEXT NOT NULL,
        id TEXT NOT NULL,
        PRIMARY KEY (row, facet, value)
    );
    CREATE INDEX catalog_facets_by_updated ON catalog_facets (kind, facet, value, updated_at, id);
    CREATE INDEX catalog_facets_by_title ON catalog_facets (kind, facet, value, title, id);
    CREATE INDEX catalog_facets_by_owner_updated ON catalog_facets (kind, facet, value, owner_id, updated_at, id);
    CREATE INDEX catalog_facets_by_owner_title ON catalog_facets (kind, facet, value, owner_id, title, id);
    CREATE VIRTUAL TABLE catalog_text USING fts5(text, tokenize = 'trigram');
    INSERT INTO catalog (kind, id, owner_id, title, search, updated_at)
        SELECT 'card', c.id, c.owner_id, v.title, bi_fold(v.title), c.updated_at
        FROM cards c JOIN card_versions v ON v.card_id = c.id AND v.version = c.current_version;
    INSERT INTO catalog (kind, id, owner_id, title, search, updated_at)
        SELECT 'dashboard', d.id, d.owner_id, json_extract(v.document, '$.title'),
               bi_fold(json_extract(v.document, '$.title') || char(10)
                       || coalesce(json_extract(v.document, '$.description'), '')), d.updated_at
        FROM dashboards d JOIN dashboard_versions v ON v.dashboard_id = d.id AND v.version = d.current_version;
    INSERT INTO catalog (kind, id, owner_id, title, search, updated_at)
        SELECT 'dataset', id, owner_id, name, bi_fold(name), updated_at FROM datasets;
    INSERT OR IGNORE INTO catalog_facets (row, kind, facet, value, owner_id, updated_at, title, id)
        SELECT k.row, k.kind, 'dataset', j.value, k.owner_id, k.updated_at, k.title, k.id
        FROM catalog k JOIN cards c ON k.kind = 'card' AND c.id = k.id
        JOIN card_versions v ON v.card_id = c.id AND v.version = c.current_version, json_each(v.datasets) j;
    INSERT INTO catalog_text (rowid, text) SELECT row, search FROM catalog;
    """,
    """
    ALTER TABLE dataset_versions ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
    """,
    # A cached result's outputs blob is charged to a user beside their tables (services/output_tables.py).
    """
    ALTER TABLE output_tables ADD COLUMN result_key TEXT;
    """,
    # Users and a dashboard's shares page newest first, each a range of one index (versions: their primary key).
    """
    CREATE INDEX users_by_created ON users (created_at, id);
    CREATE INDEX shares_by_dashboard ON shares (dashboard_id, created_at, user_id);
    """,
    # A renamed dataset keeps its earlier names, which load_dataset still resolves (a JSON array, oldest first).
    """
    ALTER TABLE datasets ADD COLUMN aliases TEXT NOT NULL DEFAULT '[]';
    """,
    # A version names the keyed request that wrote it (services/idempotency.py): a retry knows its own save.
    """
    ALTER TABLE dataset_versions ADD COLUMN request_mark TEXT NOT NULL DEFAULT '';
    ALTER TABLE card_versions ADD COLUMN request_mark TEXT NOT NULL DEFAULT '';
    ALTER TABLE dashboard_versions ADD COLUMN request_mark TEXT NOT NULL DEFAULT '';
    """,
    # A list shows each entry's summary, never a document (storage/catalog.py); the cards of each dashboard's
    # current version, so that a card's access check reads only the dashboards that hold it.
    """
    ALTER TABLE catalog ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
    UPDATE catalog SET summary = (SELECT bi_card_summary(v.title, v.datasets, v.tags, v.parameters, v.created_by)
                                  FROM cards c JOIN card_versions v ON v.card_id = c.id AND v.version = c.current_version
                                  WHERE c.id = catalog.id) WHERE kind = 'card' AND id IN (SELECT id FROM cards);
    UPDATE catalog SET summary = (SELECT bi_dashboard_summary(v.document, v.created_by)
                                  FROM dashboards d JOIN dashboard_versions v
                                  ON v.dashboard_id = d.id AND v.version = d.current_version WHERE d.id = catalog.id)
        WHERE kind = 'dashboard' AND id IN (SELECT id FROM dashboards);
    CREATE TABLE dashboard_cards (
        card_id TEXT NOT NULL,
        dashboard_id TEXT NOT NULL REFERENCES dashboards(id) ON DELETE CASCADE,
        PRIMARY KEY (card_id, dashboard_id)
    );
    CREATE INDEX dashboard_cards_by_dashboard ON dashboard_cards (dashboard_id);
    INSERT OR IGNORE INTO dashboard_cards (card_id, dashboard_id)
        SELECT json_extract(j.value, '$.card'), d.id FROM dashboards d
        JOIN dashboard_versions v ON v.dashboard_id = d.id AND v.version = d.current_version, json_each(v.document, '$.cards') j
        WHERE json_extract(j.value, '$.card') IS NOT NULL;
    """,
    # The dashboards whose current version has a refresh, so that the refresh schedule reads these rows and
    # no document (``Store.refresh_schedules``).
    """
    CREATE TABLE dashboard_refresh (
        dashboard_id TEXT PRIMARY KEY REFERENCES dashboards(id) ON DELETE CASCADE,
        every_seconds INTEGER NOT NULL
    );
    INSERT INTO dashboard_refresh (dashboard_id, every_seconds)
        SELECT d.id, json_extract(v.document, '$.refresh.every_seconds') FROM dashboards d
        JOIN dashboard_versions v ON v.dashboard_id = d.id AND v.version = d.current_version
        WHERE json_extract(v.document, '$.refresh.every_seconds') IS NOT NULL;
    """,
    # Each session's kernel, so that another API task can reattach to it (models.KernelRecord).
    """
    CREATE TABLE kernel_records (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        user_id TEXT NOT NULL,
        agent_url TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        kernel_id TEXT NOT NULL,
        memory_mb INTEGER NOT NULL,
        connection TEXT NOT NULL,
        key_id TEXT NOT NULL,
        sealed_key TEXT NOT NULL,
        datasets TEXT NOT NULL,
        grant TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX kernel_records_by_expiry ON kernel_records (expires_at);
    """,
    # The task that holds each session now: only it may end the session (models.KernelRecord.holder).
    """
    ALTER TABLE kernel_records ADD COLUMN holder TEXT NOT NULL DEFAULT '';
    """,
    # The Jupyter sessions bound to each kernel, listed by user from any task (models.KernelRecord.notebooks).
    """
    ALTER TABLE kernel_records ADD COLUMN notebooks TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX kernel_records_by_user ON kernel_records (user_id, kind);
    """,
)

BLOB_DIR = "blobs"
DATASET_BLOBS = "datasets/"  # the blob keys of dataset versions
DATASET_BLOB_MODE = 0o444  # readable by the kernels the local agent links them into; the 0700 data dir keeps others out
DB_FILE = "bi.sqlite3"
BATCH_KEYS = 400  # keys of one IN query (SQLite allows 32,766 parameters)


class SQLiteStore(Store):
    """SQLite + files. ``open()`` creates the database and blob directory on first start."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    # plumbing ----------------------------------------------------------------
    @property
    def _blob_root(self) -> Path:
        return Path(self.data_dir) / BLOB_DIR

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed or self._executor is None:
            raise StoreClosedError("The store is closed.")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _connect(self) -> None:
        """Open the database (mode 0600, as SQLite then makes its WAL) in the 0700 data directory."""
        data_dir = private_dir(Path(self.data_dir))
        self._blob_root.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            private_file(data_dir / (DB_FILE + suffix), create=not suffix)
        conn = sqlite3.connect(data_dir / DB_FILE, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.create_function("bi_fold", 1, fold, deterministic=True)
        conn.create_function("bi_card_summary", 5, _card_summary_of_row, deterministic=True)
        conn.create_function("bi_dashboard_summary", 2, _dashboard_summary_of_row, deterministic=True)
        self._conn = conn
        self._migrate()

    def _migrate(self) -> None:
        assert self._conn is not None
        current = self._conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            self._conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    def _query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        assert self._conn is not None
        return self._conn.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed at the end of the block, rolled back on any error."""
        assert self._conn is not None
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        """Run statements atomically; return each one's rowcount."""
        with self._atomic() as conn:
            return [conn.execute(sql, params).rowcount for sql, params in statements]

    # lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        await self._run(self._connect)

    async def close(self) -> None:
        if self._closed or self._executor is None:
            self._closed = True
            return
        if self._conn is not None:
            await self._run(self._conn.close)
        self._closed = True
        self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(self._query, "SELECT 1")

    async def create_schema(self, tables: bool = True, buckets: bool = True) -> None:
        await self.open()  # one file holds both

    # users -------------------------------------------------------------------
    async def create_user(self, user: User) -> None:
        def insert() -> None:
            try:
                self._transaction([_insert("users", dataclasses.asdict(user))])
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"A user with the email {user.email} already exists.") from exc

        await self._run(insert)

    async def get_user(self, user_id: str) -> User | None:
        rows = await self._run(self._query, "SELECT * FROM users WHERE id = ?", user_id)
        return _user(rows[0]) if rows else None

    async def get_users(self, user_ids: list[str]) -> list[User | None]:
        rows = await self._run(self._query, f"SELECT * FROM users WHERE id IN ({', '.join('?' * len(user_ids))})",
                               *user_ids) if user_ids else []
        found = {row["id"]: _user(row) for row in rows}
        return [found.get(user_id) for user_id in user_ids]

    async def get_user_by_email(self, email: str) -> User | None:
        rows = await self._run(self._query, "SELECT * FROM users WHERE email = ?", email)
        return _user(rows[0]) if rows else None

    async def page_users(self, query: ListQuery) -> Page[User]:
        return await self._run(self._newest, "users", "TRUE", (), ("created_at", "id"), query.after, query,
                               lambda row: (row["created_at"], row["id"], _user(row)))

    async def update_user(self, user_id: str, changes: dict[str, Any], revoke_tokens: bool = False) -> User | None:
        assignments = [f"{name} = ?" for name in USER_FIELDS if name in changes]
        values = [changes[name] for name in USER_FIELDS if name in changes]
        if revoke_tokens:
            assignments.append("token_generation = token_generation + 1")
        if assignments:
            await self._run(self._transaction, [
                (f"UPDATE users SET {', '.join(assignments)} WHERE id = ?", (*values, user_id))])
        return await self.get_user(user_id)

    # sign-in sessions and personal tokens ------------------------------------
    async def put_sign_in_session(self, session: SignInSession) -> None:
        """Add the session, and drop the sessions that have expired (so they never pile up)."""
        await self._run(self._transaction, [
            ("DELETE FROM sign_in_sessions WHERE expires_at < ?", (utcnow(),)),
            _insert("sign_in_sessions", dataclasses.asdict(session))])

    async def get_sign_in_session(self, session_id: str) -> SignInSession | None:
        rows = await self._run(self._query, "SELECT * FROM sign_in_sessions WHERE id = ?", session_id)
        return SignInSession(**dict(rows[0])) if rows else None

    async def rotate_sign_in_session(self, session_id: str, rotation: int) -> bool:
        counts = await self._run(self._transaction, [(
            "UPDATE sign_in_sessions SET rotation = rotation + 1 WHERE id = ? AND rotation = ?",
            (session_id, rotation))])
        return counts[0] == 1

    async def delete_sign_in_session(self, session_id: str) -> None:
        await self._run(self._transaction, [("DELETE FROM sign_in_sessions WHERE id = ?", (session_id,))])

    async def put_personal_token(self, token: PersonalToken) -> None:
        await self._run(self._transaction, [_insert("personal_tokens", dataclasses.asdict(token))])

    async def get_personal_token(self, token_id: str) -> PersonalToken | None:
        rows = await self._run(self._query, "SELECT * FROM personal_tokens WHERE id = ?", token_id)
        return PersonalToken(**dict(rows[0])) if rows else None

    async def list_personal_tokens(self, user_id: str) -> list[PersonalToken]:
        rows = await self._run(self._query, "SELECT * FROM personal_tokens WHERE user_id = ? "
                                            "ORDER BY created_at, id", user_id)
        return [PersonalToken(**dict(row)) for row in rows]

    async def delete_personal_token(self, token_id: str) -> None:
        await self._run(self._transaction, [("DELETE FROM personal_tokens WHERE id = ?", (token_id,))])

    # versioned records (datasets, cards) -------------------------------------
    def _add_version(self, kind: Versioned, record_id: str, number: int, created_at: str,
                     expected_current: int, insert: tuple[str, tuple[Any, ...]],
                     *also: tuple[str, tuple[Any, ...]]) -> None:
        """Check the head is at ``expected_current``, make ``number`` current, run ``insert`` (and ``also``):
        at once."""
        kind.check_follows(number, expected_current)
        with self._atomic() as conn:
            row = conn.execute(f"SELECT current_version FROM {kind.table} WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                raise kind.gone()
            if row[0] != expected_current:
                raise kind.stale(row[0], expected_current)
            conn.execute(f"UPDATE {kind.table} SET current_version = ?, updated_at = ? WHERE id = ?",
                         (number, created_at, record_id))
            for statement in (insert, *also):
                conn.execute(*statement)

    async def _head(self, kind: Versioned, record_id: str) -> sqlite3.Row | None:
        rows = await self._run(self._query, f"SELECT * FROM {kind.table} WHERE id = ?", record_id)
        return rows[0] if rows else None

    async def _heads(self, kind: Versioned, owner_id: str | None) -> list[sqlite3.Row]:
        """Head rows of ``owner_id``, or all; newest first, ties by id."""
        where, params = ("", ()) if owner_id is None else (" WHERE owner_id = ?", (owner_id,))
        return await self._run(
            self._query, f"SELECT * FROM {kind.table}{where} ORDER BY created_at DESC, id", *params)

    async def _versions_named(self, kind: Versioned, keys: list[tuple[str, int]],
                              record: Callable[[sqlite3.Row], T]) -> list[T | None]:
        """The versions of ``keys`` (record id, number) in their order, None where missing: one SELECT of the
        primary key."""
        rows = await self._run(
            self._query, f"SELECT v.* FROM (VALUES {', '.join('(?, ?)' for _ in keys)}) k JOIN {kind.versions_table} v "
                         f"ON v.{kind.key} = k.column1 AND v.version = k.column2", *(part for key in keys for part in key)
        ) if keys else []
        found = {(row[kind.key], row["version"]): record(row) for row in rows}
        return [found.get(key) for key in keys]

    async def _page_versions(self, kind: Versioned, record_id: str, query: ListQuery,
                             record: Callable[[sqlite3.Row], T], columns: str = "*") -> Page[T]:
        """A page of a record's versions, newest first: a range of the versions' primary key (of their
        ``columns`` only)."""
        below = after_number(query)
        after = (below, record_id) if below is not None else None
        return await self._run(self._newest, kind.versions_table, f"{kind.key} = ?", (record_id,),
                               ("version", kind.key), after, query,
                               lambda row: (number_key(row["version"]), record_id, record(row)), columns)

    def _newest(self, table: str, where: str, params: tuple[Any, ...], order: tuple[str, str],
                after: tuple[Any, ...] | None, query: ListQuery,
                keyed: Callable[[sqlite3.Row], tuple[str, str, T]], columns: str = "*") -> Page[T]:
        """The page of ``query`` of the rows of ``table`` that ``where`` picks (their ``columns``), by the columns
        ``order`` descending (the newest first) after ``after``: one index range of at most ``limit + 1`` rows; and
        the total."""
        key, tie = order
        condition = where + (f" AND ({key}, {tie}) < (?, ?)" if after is not None else "")
        rows = self._query(f"SELECT {columns} FROM {table} WHERE {condition} ORDER BY {key} DESC, {tie} DESC LIMIT ?",
                           *params, *(after or ()), query.limit + 1)
        page = take([keyed(row) for row in rows], query)
        total = self._query(f"SELECT count(*) FROM {table} WHERE {where}", *params)[0][0]
        return Page(page.items, page.next, total)

    async def _versions(self, kind: Versioned, record_id: str,
                        number: int | None = None) -> list[sqlite3.Row]:
        """Version rows of a record, oldest first; only version ``number`` if given."""
        where = f"{kind.key} = ?"
        params: tuple[str | int, ...] = (record_id,)
        if number is not None:
            where, params = where + " AND version = ?", params + (number,)
        return await self._run(
            self._query, f"SELECT * FROM {kind.versions_table} WHERE {where} ORDER BY version", *params)

    # datasets ----------------------------------------------------------------
    async def create_dataset(self, dataset: Dataset, version: DatasetVersion) -> None:
        def insert() -> None:
            try:
                self._transaction([_insert("datasets", _dataset_row(dataset)),
                                   _insert("dataset_versions", _dataset_version_row(version)),
                                   *_catalog_put(dataset_entry(dataset), new=True)])
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"You already have a dataset named {dataset.name!r}.") from exc

        await self._run(insert)

    async def add_dataset_version(self, version: DatasetVersion, expected_current: int) -> None:
        await self._run(self._add_version, DATASETS, version.dataset_id, version.version,
                        version.created_at, expected_current,
                        _insert("dataset_versions", _dataset_version_row(version)),
                        *_catalog_touch(DATASET, version.dataset_id, version.created_at))

    async def get_dataset(self, dataset_id: str) -> Dataset | None:
        row = await self._head(DATASETS, dataset_id)
        return _dataset(dict(row)) if row else None

    async def list_datasets(self, owner_id: str | None = None) -> list[Dataset]:
        return [_dataset(dict(row)) for row in await self._heads(DATASETS, owner_id)]

    async def get_dataset_version(self, dataset_id: str, version: int) -> DatasetVersion | None:
        rows = await self._versions(DATASETS, dataset_id, version)
        return _dataset_version(rows[0]) if rows else None

    async def get_dataset_versions(self, keys: list[tuple[str, int]]) -> list[DatasetVersion | None]:
        return await self._versions_named(DATASETS, keys, _dataset_version)

    async def page_dataset_versions(self, dataset_id: str, query: ListQuery) -> Page[DatasetVersion]:
        return await self._page_versions(DATASETS, dataset_id, query, _dataset_version)

    async def list_dataset_versions(self, dataset_id: str) -> list[DatasetVersion]:
        return [_dataset_version(row) for row in await self._versions(DATASETS, dataset_id)]

    async def rename_dataset(self, dataset_id: str, name: str, expected_name: str) -> Dataset:
        def rename() -> Dataset:
            with self._atomic() as conn:
                row = conn.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
                if row is None:
                    raise DATASETS.gone()
                dataset = _dataset(dict(row))
                if dataset.name != expected_name:
                    raise ConflictError(f"The dataset was renamed to {dataset.name!r} meanwhile.",
                                        {"name": dataset.name})
                renamed = dataset.renamed(name)
                try:
                    conn.execute("UPDATE datasets SET name = ?, aliases = ? WHERE id = ?",
                                 (renamed.name, _json(list(renamed.aliases)), dataset_id))
                except sqlite3.IntegrityError as exc:
                    raise ConflictError(f"You already have a dataset named {name!r}.", {"field": "name"},
                                        code="dataset_name_taken") from exc
                for statement in _catalog_put(dataset_entry(renamed), new=False):
                    conn.execute(*statement)
                return renamed

        return await self._run(rename)

    async def delete_dataset(self, dataset_id: str) -> list[DatasetVersion]:
        versions = await self.list_dataset_versions(dataset_id)
        await self._run(self._transaction, [*_catalog_delete(DATASET, dataset_id),
                                            ("DELETE FROM datasets WHERE id = ?", (dataset_id,))])
        return versions

    # cards -------------------------------------------------------------------
    async def create_card(self, card: Card, version: CardVersion) -> None:
        def insert() -> None:
            try:
                self._transaction([_insert("cards", dataclasses.asdict(card)),
                                   _insert("card_versions", _card_version_row(version)),
                                   *_catalog_put(card_entry(card, version), new=True)])
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"A card with the id {card.id} already exists.") from exc

        await self._run(insert)

    async def add_card_version(self, version: CardVersion, expected_current: int) -> None:
        await self._run(self._add_version, CARDS, version.card_id, version.version,
                        version.created_at, expected_current,
                        _insert("card_versions", _card_version_row(version)),
                        *_catalog_put(card_entry(_unowned_card(version), version), new=False))

    async def get_card(self, card_id: str) -> Card | None:
        row = await self._head(CARDS, card_id)
        return Card(**dict(row)) if row else None

    async def list_cards(self, owner_id: str | None = None) -> list[Card]:
        return [Card(**dict(row)) for row in await self._heads(CARDS, owner_id)]

    async def get_card_version(self, card_id: str, version: int) -> CardVersion | None:
        rows = await self._versions(CARDS, card_id, version)
        return _card_version(rows[0]) if rows else None

    async def get_card_versions(self, keys: list[tuple[str, int]]) -> list[CardVersion | None]:
        return await self._versions_named(CARDS, keys, _card_version)

    async def page_card_versions(self, card_id: str, query: ListQuery) -> Page[VersionStamp]:
        return await self._page_versions(CARDS, card_id, query, _stamp, "version, title, created_at, created_by")

    async def list_card_versions(self, card_id: str) -> list[CardVersion]:
        return [_card_version(row) for row in await self._versions(CARDS, card_id)]

    async def delete_card(self, card_id: str, head: Card | None = None) -> None:
        await self._run(self._transaction, [*_catalog_delete(CARD, card_id),
                                            ("DELETE FROM cards WHERE id = ?", (card_id,))])

    # dashboards ----------------------------------------------------------------
    async def create_dashboard(self, dashboard: Dashboard, version: DashboardVersion) -> None:
        def insert() -> None:
            try:
                self._transaction([_insert("dashboards", dataclasses.asdict(dashboard)),
                                   _insert("dashboard_versions", _dashboard_version_row(version)),
                                   *_catalog_put(dashboard_entry(dashboard, version), new=True),
                                   *_dashboard_cards(version), *_dashboard_refresh(version)])
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"A dashboard with the uid {dashboard.uid!r} already exists.") from exc

        await self._run(insert)

    async def add_dashboard_version(self, version: DashboardVersion, expected_current: int) -> None:
        await self._run(self._add_version, DASHBOARDS, version.dashboard_id, version.version,
                        version.created_at, expected_current,
                        _insert("dashboard_versions", _dashboard_version_row(version)),
                        *_catalog_put(dashboard_entry(_unowned_dashboard(version), version), new=False),
                        *_dashboard_cards(version), *_dashboard_refresh(version))

    async def get_dashboard(self, dashboard_id: str) -> Dashboard | None:
        row = await self._head(DASHBOARDS, dashboard_id)
        return Dashboard(**dict(row)) if row else None

    async def get_dashboard_by_uid(self, uid: str) -> Dashboard | None:
        rows = await self._run(self._query, "SELECT * FROM dashboards WHERE uid = ?", uid)
        return Dashboard(**dict(rows[0])) if rows else None

    async def list_dashboards(self, owner_id: str | None = None) -> list[Dashboard]:
        return [Dashboard(**dict(row)) for row in await self._heads(DASHBOARDS, owner_id)]

    async def dashboards_with_card(self, card_id: str) -> list[Dashboard]:
        rows = await self._run(self._query, "SELECT d.* FROM dashboard_cards c JOIN dashboards d ON d.id = c.dashboard_id "
                                            "WHERE c.card_id = ? ORDER BY d.id", card_id)
        return [Dashboard(**dict(row)) for row in rows]

    async def refresh_schedules(self) -> list[RefreshSchedule]:
        rows = await self._run(self._query, "SELECT r.dashboard_id, r.every_seconds, d.created_at FROM dashboard_refresh r "
                                            "JOIN dashboards d ON d.id = r.dashboard_id ORDER BY r.dashboard_id")
        return [RefreshSchedule(**dict(row)) for row in rows]

    async def get_dashboard_version(self, dashboard_id: str, version: int) -> DashboardVersion | None:
        rows = await self._versions(DASHBOARDS, dashboard_id, version)
        return _dashboard_version(rows[0]) if rows else None

    async def get_dashboard_versions(self, keys: list[tuple[str, int]]) -> list[DashboardVersion | None]:
        return await self._versions_named(DASHBOARDS, keys, _dashboard_version)

    async def page_dashboard_versions(self, dashboard_id: str, query: ListQuery) -> Page[VersionStamp]:
        return await self._page_versions(DASHBOARDS, dashboard_id, query, _stamp, "version, created_at, created_by")

    async def list_dashboard_versions(self, dashboard_id: str) -> list[DashboardVersion]:
        return [_dashboard_version(row) for row in await self._versions(DASHBOARDS, dashboard_id)]

    async def delete_dashboard(self, dashboard_id: str, head: Dashboard | None = None) -> None:
        await self._run(self._transaction, [*_catalog_delete(DASHBOARD, dashboard_id),
                                            ("DELETE FROM dashboards WHERE id = ?", (dashboard_id,))])

    # shares --------------------------------------------------------------------
    async def put_share(self, share: Share) -> None:
        await self._run(self._transaction, [_upsert("shares", share)])

    async def delete_share(self, dashboard_id: str, user_id: str) -> bool:
        counts = await self._run(self._transaction, [
            ("DELETE FROM shares WHERE dashboard_id = ? AND user_id = ?", (dashboard_id, user_id))])
        return counts[0] > 0

    async def list_shares(self, dashboard_id: str) -> list[Share]:
        rows = await self._run(self._query, "SELECT * FROM shares WHERE dashboard_id = ? ORDER BY created_at, user_id",
                               dashboard_id)
        return [Share(**dict(row)) for row in rows]

    async def page_shares(self, dashboard_id: str, query: ListQuery) -> Page[Share]:
        return await self._run(self._newest, "shares", "dashboard_id = ?", (dashboard_id,), ("created_at", "user_id"),
                               query.after, query, lambda row: (row["created_at"], row["user_id"], Share(**dict(row))))

    async def get_share(self, dashboard_id: str, user_id: str) -> Share | None:
        rows = await self._run(self._query, "SELECT * FROM shares WHERE dashboard_id = ? AND user_id = ?",
                               dashboard_id, user_id)
        return Share(**dict(rows[0])) if rows else None

    async def list_user_shares(self, user_id: str) -> list[Share]:
        rows = await self._run(self._query, "SELECT * FROM shares WHERE user_id = ? ORDER BY created_at, dashboard_id",
                               user_id)
        return [Share(**dict(row)) for row in rows]

    # result cache ------------------------------------------------------------
    async def get_cached_result(self, key: str) -> CachedResult | None:
        rows = await self._run(self._query, "SELECT * FROM result_cache WHERE key = ?", key)
        return _cached_result(rows[0]) if rows else None

    async def put_cached_result(self, result: CachedResult, fence: Lease | None = None) -> None:
        row = {**dataclasses.asdict(result), "output_ids": _json(list(result.output_ids))}

        def put() -> None:
            with self._atomic() as conn:
                if fence is not None:
                    self._check_held(conn, fence)
                conn.execute(*_replace("result_cache", row))
        await self._run(put)

    async def list_cached_results(self, variant: str) -> list[CachedResult]:
        rows = await self._run(self._query, "SELECT * FROM result_cache WHERE variant = ? "
                                            "ORDER BY created_at DESC, key DESC", variant)
        return [_cached_result(row) for row in rows]

    async def delete_cached_result(self, key: str) -> None:
        await self._run(self._transaction, [("DELETE FROM result_cache WHERE key = ?", (key,))])

    # kernel records ----------------------------------------------------------
    async def put_kernel_record(self, record: KernelRecord) -> None:
        row = dataclasses.asdict(record)
        del row["notebooks"]  # kept: only set_kernel_notebooks writes them
        upsert = (f"INSERT INTO kernel_records ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                  f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in row)}")
        await self._run(self._transaction, [
            ("DELETE FROM kernel_records WHERE expires_at < ?", (utcnow(),)), (upsert, tuple(row.values()))])

    async def get_kernel_record(self, record_id: str) -> KernelRecord | None:
        rows = await self._run(self._query, "SELECT * FROM kernel_records WHERE id = ? AND expires_at >= ?",
                               record_id, utcnow())
        return KernelRecord(**dict(rows[0])) if rows else None

    async def list_kernel_records(self, user_id: str, kind: str) -> list[KernelRecord]:
        rows = await self._run(self._query, "SELECT * FROM kernel_records WHERE user_id = ? AND kind = ? "
                                            "AND expires_at >= ? ORDER BY created_at, id", user_id, kind, utcnow())
        return [KernelRecord(**dict(row)) for row in rows]

    async def set_kernel_notebooks(self, record_id: str, notebooks: str) -> bool:
        [updated] = await self._run(self._transaction, [(
            "UPDATE kernel_records SET notebooks = ? WHERE id = ? AND expires_at >= ?", (notebooks, record_id, utcnow()))])
        return bool(updated)

    async def delete_kernel_record(self, record_id: str, holder: str) -> bool:
        return await self._run(self._delete_kernel_record, record_id, holder)

    def _delete_kernel_record(self, record_id: str, holder: str) -> bool:
        with self._atomic() as conn:
            if conn.execute("DELETE FROM kernel_records WHERE id = ? AND holder = ?", (record_id, holder)).rowcount:
                return True
            return conn.execute("SELECT 1 FROM kernel_records WHERE id = ? AND expires_at >= ?",
                                (record_id, utcnow())).fetchone() is None

    # leases ------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, until: float) -> Lease | None:
        def acquire() -> Lease | None:
            now = time.time()
            with self._atomic() as conn:
                row = conn.execute("SELECT version, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
                if row is not None and row["expires_at"] > now:
                    return None
                lease = Lease(name, holder, (row["version"] if row else 0) + 1, until)
                conn.execute(*_replace("leases", {**dataclasses.asdict(lease), "done": 0}))
                conn.execute("DELETE FROM leases WHERE expires_at < ?", (now - LEASE_KEPT_SECONDS,))
                return lease
        return await self._run(acquire)

    async def renew_lease(self, lease: Lease, until: float) -> Lease:
        def renew() -> None:
            with self._atomic() as conn:
                self._check_held(conn, lease)
                conn.execute("UPDATE leases SET expires_at = ? WHERE name = ?", (until, lease.name))
        await self._run(renew)
        return dataclasses.replace(lease, expires_at=until)

    async def finish_lease(self, lease: Lease, until: float) -> None:
        def finish() -> None:
            with self._atomic() as conn:
                self._check_held(conn, lease)
                conn.execute("UPDATE leases SET expires_at = ?, done = 1 WHERE name = ?", (until, lease.name))
        await self._run(finish)

    async def get_lease(self, name: str) -> Lease | None:
        rows = await self._run(self._query, "SELECT * FROM leases WHERE name = ?", name)
        return Lease(**{**dict(rows[0]), "done": bool(rows[0]["done"])}) if rows else None

    @staticmethod
    def _check_held(conn: sqlite3.Connection, lease: Lease) -> None:
        """In a write transaction: ``LeaseLostError`` unless ``lease`` is still held as it was taken."""
        row = conn.execute("SELECT version, expires_at, done FROM leases WHERE name = ?", (lease.name,)).fetchone()
        if row is None or row["version"] != lease.version or row["done"] or row["expires_at"] <= time.time():
            raise LeaseLostError(f"lease {lease.name} version {lease.version} is no longer held")

    # output tables -----------------------------------------------------------
    async def put_output_table(self, table: OutputTable) -> None:
        await self._run(self._transaction, [_upsert("output_tables", table)])

    async def get_output_table(self, output_id: str) -> OutputTable | None:
        rows = await self._run(self._query, "SELECT * FROM output_tables WHERE output_id = ?", output_id)
        return _output_table(rows[0]) if rows else None

    async def list_output_tables(self, user_id: str) -> list[OutputTable]:
        rows = await self._run(self._query, "SELECT * FROM output_tables WHERE user_id = ? "
                                            "ORDER BY last_used, output_id", user_id)
        return [_output_table(row) for row in rows]

    async def update_output_table(self, output_id: str, last_used: str | None = None,
                                  pinned: bool | None = None) -> None:
        changes = {name: value for name, value in (("last_used", last_used), ("pinned", pinned)) if value is not None}
        if changes:
            assignments = ", ".join(f"{name} = ?" for name in changes)
            await self._run(self._transaction, [(f"UPDATE output_tables SET {assignments} WHERE output_id = ?",
                                                 (*changes.values(), output_id))])

    async def delete_output_table(self, output_id: str) -> None:
        await self._run(self._transaction, [("DELETE FROM output_tables WHERE output_id = ?", (output_id,))])

    # audit trail -------------------------------------------------------------
    async def put_audit_events(self, events: list[AuditEvent]) -> None:
        await self._run(self._transaction, [
            ("DELETE FROM audit_events WHERE expires_at <= ?", (int(time.time()),)),
            *(("INSERT INTO audit_events (key, id, at, event, user_id, fields, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (event.key, event.id, event.at, event.event, event.user_id,
                json.dumps(event.fields, ensure_ascii=False), self.audit_expiry(event))) for event in events),
        ])

    async def list_audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        where: list[str] = ["expires_at > ?"]
        params: list[Any] = [int(time.time())]
        for condition, value in (("key >= ?", query.since), ("key < ?", query.until), ("key < ?", query.before),
                                 ("user_id = ?", query.user_id), ("event = ?", query.event)):
            if value is not None:
                where.append(condition)
                params.append(value)
        rows = await self._run(self._query, f"SELECT * FROM audit_events WHERE {' AND '.join(where)} "
                                            "ORDER BY key DESC LIMIT ?", *params, query.limit)
        return [AuditEvent(row["id"], row["at"], row["event"], row["user_id"], json.loads(row["fields"]))
                for row in rows]

    # idempotent answers ------------------------------------------------------
    async def put_idempotent_answer(self, answer: IdempotentAnswer) -> None:
        await self._run(self._transaction, [
            ("DELETE FROM idempotent_answers WHERE expires_at < ?", (utcnow(),)),
            _upsert("idempotent_answers", answer)])

    async def get_idempotent_answer(self, key: str, now: str) -> IdempotentAnswer | None:
        rows = await self._run(self._query, "SELECT * FROM idempotent_answers WHERE key = ? AND expires_at >= ?",
                               key, now)
        return IdempotentAnswer(**dict(rows[0])) if rows else None

    # pages of the catalogue --------------------------------------------------
    async def page_cards(self, query: ListQuery) -> Page[Listed[Card]]:
        return await self._run(self._page, CARD, query, lambda head, summary, _: Listed(Card(**head), summary))

    async def page_dashboards(self, query: ListQuery) -> Page[Listed[Dashboard]]:
        return await self._run(self._page, DASHBOARD, query,
                               lambda head, summary, shared_as: Listed(Dashboard(**head), summary, shared_as))

    async def page_datasets(self, query: ListQuery) -> Page[Dataset]:
        return await self._run(self._page, DATASET, query, lambda head, *_: _dataset(head))

    def _page(self, kind: str, query: ListQuery, record: ItemMaker[T]) -> Page[T]:
        """One query per scope, each reading at most ``limit + 1`` rows in index order, merged; and the total
        (of a search: while at most ``SEARCH_TOTAL_MAX`` match)."""
        keyed = []
        total = 0
        for scope in dict.fromkeys(query.scopes):
            sql, params = _page_sql(kind, query, scope, count=False)
            keyed += [(row["sort_key"], row["id"],
                       record({k: row[k] for k in row.keys() if k not in ("sort_key", "summary", "shared_as")},
                              json.loads(row["summary"]), row["shared_as"]))
                      for row in self._query(sql, *params)]
            sql, params = _page_sql(kind, query, scope, count=True)
            total += self._query(sql, *params)[0][0]
        page = take(ordered(keyed, query.sort), query)
        return Page(page.items, page.next, None if query.search and total > SEARCH_TOTAL_MAX else total)

    # blobs -------------------------------------------------------------------
    def _blob_file(self, key: str) -> Path:
        path = (self._blob_root / key).resolve()
        if not path.is_relative_to(self._blob_root.resolve()):
            raise NotFoundError(f"No blob {key!r}.")
        return path

    async def put_blob(self, key: str, source: Path) -> None:
        def copy() -> None:
            target = self._blob_file(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(source, partial)
            os.chmod(partial, DATASET_BLOB_MODE if key.startswith(DATASET_BLOBS) else 0o440)
            os.replace(partial, target)

        await asyncio.to_thread(copy)

    async def blob_path(self, key: str) -> Path:
        path = self._blob_file(key)
        if not await asyncio.to_thread(path.is_file):
            raise NotFoundError(f"No blob {key!r}.")
        return path

    async def delete_blob(self, key: str) -> None:
        await asyncio.to_thread(self._blob_file(key).unlink, missing_ok=True)

    async def list_blobs(self, prefix: str) -> list[tuple[str, float]]:
        def walk() -> list[tuple[str, float]]:
            root = self._blob_root.resolve()
            directory = self._blob_file(blob_prefix(prefix))
            if not directory.is_dir():
                return []
            return sorted((str(path.relative_to(root)), path.stat().st_mtime) for path in directory.rglob("*")
                          if path.is_file() and not path.name.endswith(".partial"))

        return await asyncio.to_thread(walk)

    async def list_headless(self) -> list[tuple[str, str]]:
        """Deletions cascade in one transaction here: only a database changed by hand has any."""
        found: list[tuple[str, str]] = []
        for kind in (DATASETS, CARDS, DASHBOARDS):
            rows = await self._run(self._query, f"SELECT DISTINCT {kind.key} FROM {kind.versions_table} WHERE "
                                                f"{kind.key} NOT IN (SELECT id FROM {kind.table})")
            found.extend((kind.noun, row[0]) for row in rows)
        rows = await self._run(self._query, "SELECT DISTINCT dashboard_id FROM shares WHERE dashboard_id NOT IN "
                                            "(SELECT id FROM dashboards)")
        return found + [("share", row[0]) for row in rows]

    async def catalogue_gaps(self) -> list[CatalogueGap]:
        """Records and their entries are written in one transaction here: only a database changed by hand has any."""
        gaps: list[CatalogueGap] = []
        for kind in (DATASETS, CARDS, DASHBOARDS):
            for problem, sql in (
                    ("unlisted", f"SELECT id FROM {kind.table} WHERE id NOT IN (SELECT id FROM catalog WHERE kind = ?)"),
                    ("listed_orphan", f"SELECT id FROM catalog WHERE kind = ? AND id NOT IN (SELECT id FROM {kind.table})")):
                gaps += [CatalogueGap(problem, kind.noun, row[0]) for row in await self._run(self._query, sql, kind.noun)]
        return sorted(gaps, key=lambda gap: (gap.kind, gap.id))

    async def relist(self, gap: CatalogueGap) -> None:
        entry: CatalogEntry | None = None
        if gap.kind == DATASET:
            dataset = await self.get_dataset(gap.id)
            entry = dataset_entry(dataset) if dataset else None
        elif gap.kind == CARD:
            card = await self.get_card(gap.id)
            card_version = await self.get_card_version(card.id, card.current_version) if card else None
            entry = card_entry(card, card_version) if card and card_version else None
        else:
            dashboard = await self.get_dashboard(gap.id)
            version = await self.get_dashboard_version(dashboard.id, dashboard.current_version) if dashboard else None
            entry = dashboard_entry(dashboard, version) if dashboard and version else None
        await self._run(self._transaction, [*_catalog_delete(gap.kind, gap.id),
                                            *(_catalog_put(entry, new=True) if entry else [])])

    # batches -------------------------------------------------------------------
    async def get_cards(self, card_ids: Collection[str]) -> list[Card]:
        return [Card(**dict(row)) for row in await self._run(self._rows_of, "cards", ("id",), [(i,) for i in card_ids])]

    def _rows_of(self, table: str, columns: tuple[str, ...], keys: list[tuple[Any, ...]]) -> list[sqlite3.Row]:
        """The rows of ``table`` whose ``columns`` hold one of ``keys``: one ``IN`` query per ``BATCH_KEYS``."""
        rows: list[sqlite3.Row] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_KEYS):
            chunk = unique[start:start + BATCH_KEYS]
            values = ", ".join(["(" + ", ".join("?" * len(columns)) + ")"] * len(chunk))
            rows += self._query(f"SELECT * FROM {table} WHERE ({', '.join(columns)}) IN (VALUES {values})",
                                *(value for key in chunk for value in key))
        return rows


def _insert(table: str, row: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """An INSERT of ``row``'s values into the columns of the same names."""
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    return f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())


def _dataset_row(dataset: Dataset) -> dict[str, Any]:
    return {**dataclasses.asdict(dataset), "aliases": _json(list(dataset.aliases))}


def _dataset(row: dict[str, Any]) -> Dataset:
    return Dataset(**{**row, "aliases": tuple(json.loads(row.get("aliases") or "[]"))})


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _dataset_version_row(version: DatasetVersion) -> dict[str, Any]:
    row = dataclasses.asdict(version)
    row["columns"] = _json([[c.name, c.type] for c in version.columns])
    return row


def _dataset_version(row: sqlite3.Row) -> DatasetVersion:
    fields = dict(row)
    fields["columns"] = tuple(Column(name, type_) for name, type_ in json.loads(fields["columns"]))
    return DatasetVersion(**fields)


def _card_version_row(version: CardVersion) -> dict[str, Any]:
    row = dataclasses.asdict(version)
    row["datasets"] = _json(list(version.datasets))
    row["parameters"] = _json(list(version.parameters))
    row["tags"] = _json(list(version.tags))
    return row


def _card_version(row: sqlite3.Row) -> CardVersion:
    fields = dict(row)
    fields["datasets"] = tuple(json.loads(fields["datasets"]))
    fields["parameters"] = tuple(json.loads(fields["parameters"]))
    fields["tags"] = tuple(json.loads(fields["tags"]))
    return CardVersion(**fields)


def _dashboard_version_row(version: DashboardVersion) -> dict[str, Any]:
    return {**dataclasses.asdict(version), "document": _json(version.document)}


def _dashboard_version(row: sqlite3.Row) -> DashboardVersion:
    return DashboardVersion(**{**dict(row), "document": json.loads(row["document"])})


def _upsert(table: str, record: Any) -> tuple[str, tuple[Any, ...]]:
    """``INSERT OR REPLACE`` of a dataclass record whose fields are the table's columns."""
    return _replace(table, dataclasses.asdict(record))


def _replace(table: str, row: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """``INSERT OR REPLACE`` of ``row``'s values into the columns of the same names."""
    return (f"INSERT OR REPLACE INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()))


def _user(row: sqlite3.Row) -> User:
    return User(**{**dict(row), "active": bool(row["active"]),
                   "password_change_required": bool(row["password_change_required"])})


def _cached_result(row: sqlite3.Row) -> CachedResult:
    return CachedResult(**{**dict(row), "output_ids": tuple(json.loads(row["output_ids"]))})


def _output_table(row: sqlite3.Row) -> OutputTable:
    return OutputTable(**{**dict(row), "pinned": bool(row["pinned"])})


# the catalogue ---------------------------------------------------------------
Statement = tuple[str, tuple[Any, ...]]
CATALOG_ROW = "(SELECT row FROM catalog WHERE kind = ? AND id = ?)"


def _catalog_put(entry: CatalogEntry, new: bool) -> list[Statement]:
    """Statements that write ``entry`` (a new one, or over the record's entry, whose owner stays)."""
    key = (entry.kind, entry.id)
    statements: list[Statement]
    summary = _json(entry.summary)
    if new:
        statements = [("INSERT INTO catalog (kind, id, owner_id, title, search, updated_at, summary) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (*key, entry.owner_id, entry.title, entry.search,
                                                        entry.updated_at, summary))]
    else:
        statements = [(f"DELETE FROM catalog_text WHERE rowid = {CATALOG_ROW}", key),
                      (f"DELETE FROM catalog_facets WHERE row = {CATALOG_ROW}", key),
                      ("UPDATE catalog SET title = ?, search = ?, updated_at = ?, summary = ? WHERE kind = ? AND id = ?",
                       (entry.title, entry.search, entry.updated_at, summary, *key))]
    statements.append(("INSERT INTO catalog_text (rowid, text) SELECT row, search FROM catalog "
                       "WHERE kind = ? AND id = ?", key))
    statements += [("INSERT OR IGNORE INTO catalog_facets (row, kind, facet, value, owner_id, updated_at, title, id) "
                    "SELECT row, kind, ?, ?, owner_id, updated_at, title, id FROM catalog WHERE kind = ? AND id = ?",
                    (facet, value, *key)) for facet, value in entry.facets]
    return statements


def _stamp(row: sqlite3.Row) -> VersionStamp:
    return VersionStamp(**dict(row))


def _dashboard_cards(version: DashboardVersion) -> list[Statement]:
    """Statements that make the dashboard's rows of ``dashboard_cards`` those of ``version`` (its new current one)."""
    return [("DELETE FROM dashboard_cards WHERE dashboard_id = ?", (version.dashboard_id,)),
            *(("INSERT OR IGNORE INTO dashboard_cards (card_id, dashboard_id) VALUES (?, ?)",
               (card_id, version.dashboard_id)) for card_id in sorted(card_ids(version.document)))]


def _dashboard_refresh(version: DashboardVersion) -> list[Statement]:
    """Statements that make the dashboard's row of ``dashboard_refresh`` that of ``version`` (its new current one)."""
    every = refresh_seconds(version.document)
    return [("DELETE FROM dashboard_refresh WHERE dashboard_id = ?", (version.dashboard_id,)),
            *([("INSERT INTO dashboard_refresh (dashboard_id, every_seconds) VALUES (?, ?)",
                (version.dashboard_id, every))] if every is not None else [])]


def _card_summary_of_row(title: str, datasets: str, tags: str, parameters: str, created_by: str) -> str:
    """``bi_card_summary``: a card version row's summary (the migration that added summaries)."""
    return _json(card_summary(CardVersion("", 0, title, "", tuple(json.loads(datasets)),
                                          tuple(json.loads(parameters)), "", created_by, tuple(json.loads(tags)))))


def _dashboard_summary_of_row(document: str, created_by: str) -> str:
    """``bi_dashboard_summary``: a dashboard version row's summary."""
    return _json(dashboard_summary(DashboardVersion("", 0, json.loads(document), "", created_by)))


def _catalog_touch(kind: str, record_id: str, updated_at: str) -> list[Statement]:
    """Statements that move a record's entry to ``updated_at`` (a dataset's new version)."""
    return [("UPDATE catalog SET updated_at = ? WHERE kind = ? AND id = ?", (updated_at, kind, record_id)),
            (f"UPDATE catalog_facets SET updated_at = ? WHERE row = {CATALOG_ROW}", (updated_at, kind, record_id))]


def _catalog_delete(kind: str, record_id: str) -> list[Statement]:
    return [(f"DELETE FROM catalog_text WHERE rowid = {CATALOG_ROW}", (kind, record_id)),
            ("DELETE FROM catalog WHERE kind = ? AND id = ?", (kind, record_id))]


def _unowned_card(version: CardVersion) -> Card:
    """The head a new version's entry is made from; an update keeps the entry's owner."""
    return Card(version.card_id, "", version.version, "", version.created_at)


def _unowned_dashboard(version: DashboardVersion) -> Dashboard:
    return Dashboard(version.dashboard_id, "", "", version.version, "", version.created_at)


HEAD_TABLES = {CARD: "cards", DASHBOARD: "dashboards", DATASET: "datasets"}


def _page_sql(kind: str, query: ListQuery, scope: Scope, count: bool) -> Statement:
    """The SQL of one scope of a page (``count``: of its total): a range of one index of the catalogue,
    ``limit + 1`` rows at most (a search reads the trigram index, or every entry of the kind below 3
    characters; the shared scope reads the user's shares and sorts them, as the AWS store does)."""
    facet = ("tag", query.tag) if query.tag is not None else (
        ("dataset", query.dataset_id) if query.dataset_id is not None else None)
    joins: list[str] = []
    where: list[str] = []
    params: list[Any] = []
    if facet is None:
        source, text = "catalog d", "d"
        where.append("d.kind = ?")
        params.append(kind)
    else:
        source, text = "catalog_facets d", "c"
        where += ["d.kind = ?", "d.facet = ?", "d.value = ?"]
        params += [kind, *facet]
    if scope.kind == "owner":
        where.append("d.owner_id = ?")
        params.append(scope.user_id)
    elif scope.kind == "shared":  # from the user's shares (a few) out, not the whole list in its order
        source = f"shares s CROSS JOIN {source}"
        where += ["s.user_id = ?", "s.dashboard_id = d.id", "d.owner_id != ?"]
        params += [scope.user_id, scope.user_id]
    if query.owner_id is not None:
        where.append("d.owner_id = ?")
        params.append(query.owner_id)
    if query.search:
        if len(query.search) >= 3:
            where.append("d.row IN (SELECT rowid FROM catalog_text WHERE catalog_text MATCH ?)")
            params.append('"' + query.search.replace('"', '""') + '"')
        else:
            if facet is not None:
                joins.append("JOIN catalog c ON c.row = d.row")
            where.append(f"{text}.search LIKE ? ESCAPE '\\'")
            params.append("%" + query.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    column, direction = ("updated_at", "DESC") if query.sort == "updated" else ("title", "ASC")
    if count:
        if query.search:  # stop counting past SEARCH_TOTAL_MAX: a common term matches most of the catalogue
            return (f"SELECT count(*) FROM (SELECT 1 FROM {source} {' '.join(joins)} WHERE {' AND '.join(where)} "
                    "LIMIT ?)", (*params, SEARCH_TOTAL_MAX + 1))
        return f"SELECT count(*) FROM {source} {' '.join(joins)} WHERE {' AND '.join(where)}", tuple(params)
    if query.after is not None:
        where.append(f"(d.{column}, d.id) {'<' if direction == 'DESC' else '>'} (?, ?)")
        params += list(query.after)
    shared_as = "s.permission" if scope.kind == "shared" else "NULL"
    sql = (f"SELECT h.*, d.{column} AS sort_key, (SELECT summary FROM catalog WHERE row = d.row) AS summary, "
           f"{shared_as} AS shared_as "
           f"FROM {source} {' '.join(joins)} "
           f"JOIN {HEAD_TABLES[kind]} h ON h.id = d.id WHERE {' AND '.join(where)} "
           f"ORDER BY d.{column} {direction}, d.id {direction} LIMIT ?")
    return sql, (*params, query.limit + 1)
