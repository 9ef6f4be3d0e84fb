"""The embedded store: one SQLite file for records and a directory for blobs, under ``data_dir``.

All SQLite work runs on one dedicated thread, so the connection is never shared
between threads and writes are serialised. The schema is versioned with
``PRAGMA user_version``; each entry of ``MIGRATIONS`` moves it one step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import ConflictError, NotFoundError, StoreClosedError
from ..models import Column, Dataset, DatasetVersion, User
from .base import Store

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
)

BLOB_DIR = "blobs"
DB_FILE = "bi.sqlite3"


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
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self._blob_root.mkdir(exist_ok=True)
        conn = sqlite3.connect(Path(self.data_dir) / DB_FILE, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
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

    def _transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        """Run statements atomically; return each one's rowcount."""
        assert self._conn is not None
        counts = []
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                counts.append(self._conn.execute(sql, params).rowcount)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return counts

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

    async def create_schema(self) -> None:
        await self.open()

    # users -------------------------------------------------------------------
    async def create_user(self, user: User) -> None:
        def insert() -> None:
            try:
                self._transaction([(
                    "INSERT INTO users (id, email, name, role, password_hash, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (user.id, user.email, user.name, user.role, user.password_hash, user.created_at),
                )])
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"A user with the email {user.email} already exists.") from exc

        await self._run(insert)

    async def get_user(self, user_id: str) -> User | None:
        rows = await self._run(self._query, "SELECT * FROM users WHERE id = ?", user_id)
        return User(**dict(rows[0])) if rows else None

    async def get_user_by_email(self, email: str) -> User | None:
        rows = await self._run(self._query, "SELECT * FROM users WHERE email = ?", email)
        return User(**dict(rows[0])) if rows else None

    async def list_users(self) -> list[User]:
        rows = await self._run(self._query, "SELECT * FROM users ORDER BY created_at, id")
        return [User(**dict(row)) for row in rows]

    async def update_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._run(self._transaction, [
            ("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)),
        ])

    # datasets ----------------------------------------------------------------
    async def create_dataset(self, dataset: Dataset, version: DatasetVersion) -> None:
        def insert() -> None:
            try:
                self._transaction([
                    ("INSERT INTO datasets (id, owner_id, name, current_version, created_at, updated_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
                     (dataset.id, dataset.owner_id, dataset.name, dataset.current_version,
                      dataset.created_at, dataset.updated_at)),
                    _insert_version(version),
                ])
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"You already have a dataset named {dataset.name!r}.") from exc

        await self._run(insert)

    async def add_dataset_version(self, version: DatasetVersion, expected_current: int) -> None:
        def insert() -> None:
            assert self._conn is not None
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    "SELECT current_version FROM datasets WHERE id = ?", (version.dataset_id,)
                ).fetchone()
                if row is None:
                    raise NotFoundError("The dataset no longer exists.")
                if row[0] != expected_current or version.version != expected_current + 1:
                    raise ConflictError(
                        f"The dataset is at version {row[0]}, not {expected_current}; reload and retry.")
                self._conn.execute(
                    "UPDATE datasets SET current_version = ?, updated_at = ? WHERE id = ?",
                    (version.version, version.created_at, version.dataset_id))
                self._conn.execute(*_insert_version(version))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

        await self._run(insert)

    async def get_dataset(self, dataset_id: str) -> Dataset | None:
        rows = await self._run(self._query, "SELECT * FROM datasets WHERE id = ?", dataset_id)
        return Dataset(**dict(rows[0])) if rows else None

    async def list_datasets(self, owner_id: str | None = None) -> list[Dataset]:
        if owner_id is None:
            rows = await self._run(self._query, "SELECT * FROM datasets ORDER BY created_at DESC, id")
        else:
            rows = await self._run(
                self._query,
                "SELECT * FROM datasets WHERE owner_id = ? ORDER BY created_at DESC, id", owner_id)
        return [Dataset(**dict(row)) for row in rows]

    async def get_dataset_version(self, dataset_id: str, version: int) -> DatasetVersion | None:
        rows = await self._run(
            self._query, "SELECT * FROM dataset_versions WHERE dataset_id = ? AND version = ?",
            dataset_id, version)
        return _version_from_row(rows[0]) if rows else None

    async def list_dataset_versions(self, dataset_id: str) -> list[DatasetVersion]:
        rows = await self._run(
            self._query, "SELECT * FROM dataset_versions WHERE dataset_id = ? ORDER BY version",
            dataset_id)
        return [_version_from_row(row) for row in rows]

    async def delete_dataset(self, dataset_id: str) -> list[DatasetVersion]:
        versions = await self.list_dataset_versions(dataset_id)
        await self._run(self._transaction, [("DELETE FROM datasets WHERE id = ?", (dataset_id,))])
        return versions

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
            os.chmod(partial, 0o440)
            os.replace(partial, target)

        await asyncio.to_thread(copy)

    async def blob_path(self, key: str) -> Path:
        path = self._blob_file(key)
        if not await asyncio.to_thread(path.is_file):
            raise NotFoundError(f"No blob {key!r}.")
        return path

    async def delete_blob(self, key: str) -> None:
        await asyncio.to_thread(self._blob_file(key).unlink, missing_ok=True)


def _insert_version(v: DatasetVersion) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO dataset_versions (dataset_id, version, blob_key, row_count, columns, bytes,"
        " encoding, delimiter, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (v.dataset_id, v.version, v.blob_key, v.row_count,
         json.dumps([[c.name, c.type] for c in v.columns], ensure_ascii=False),
         v.bytes, v.encoding, v.delimiter, v.created_at, v.created_by),
    )


def _version_from_row(row: sqlite3.Row) -> DatasetVersion:
    fields = dict(row)
    fields["columns"] = tuple(Column(name, type_) for name, type_ in json.loads(fields["columns"]))
    return DatasetVersion(**fields)
