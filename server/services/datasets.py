"""Datasets: CSV uploads become immutable Parquet versions; owners (and admins) see and page them.

``may_read`` is the one rule of dataset rights. Card code reads data with the rights of the author of
the card version that runs (``services/card_runs.py``): sharing a card never shares its datasets.

An upload arrives as a temporary file. It is converted to Parquet in a worker
thread, the Parquet blob is stored, then the record that points to it; only when the
record is known never to be stored (the store refused it) is the blob removed; a record whose
write may still land keeps it (``store_writes.settle``). The temporary files are always
deleted; what a crash or a kill left in the temporary directory is swept at start and stop.

A deletion removes the records, then the blobs (every one under the dataset's prefix); one cut
short finishes when repeated, as deleting a dataset that is gone does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pyarrow.parquet as pq
from traitlets import Integer
from traitlets.config import LoggingConfigurable

from kernels.arrow_rows import cut_long_values, rows_of

from ..csv_import import ImportResult, convert_csv_to_parquet
from ..errors import ConflictError, InvalidRequestError, NotFoundError, StorageQuotaError
from ..limits import (CSV_COLUMNS, DATASET_ALIASES, DATASET_QUOTA_BYTES, IMPORT_RETRY_SECONDS, IMPORTS_RUNNING, IMPORTS_WAITING,
                      PREVIEW_VALUES)
from ..logs import get_logger
from .audit import record
from .record_memory import RecordMemory
from ..models import Dataset, DatasetVersion, User, utcnow
from ..paging import ListQuery, Page, Scope
from ..private_files import empty_dir, private_dir
from ..storage.base import Store
from ..storage.catalog import DATASET, CatalogueGap
from .idempotency import mark, new_id, ours, replayed
from .slots import Slots
from .store_writes import settle

MAX_NAME_LENGTH = 100
QUOTA_LARGEST_SHOWN = 3  # datasets a storage quota error names as the ones to delete
DATASET_ID = re.compile(r"[0-9a-f]{32}")  # what uuid4().hex makes: the only ids whose blobs a deletion lists

log = get_logger("bi.datasets")

Usage = list[tuple[int, int, Dataset]]  # (stored bytes, versions, dataset) of what an owner stores, largest first


def megabytes(size: int) -> str:
    """``12.3 MB``: a size as a person reads it."""
    return f"{size / (1024 * 1024):.1f} MB"


def validate_name(name: str) -> str:
    """A dataset name as cards will write it in ``load_dataset(name)``."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidRequestError(f"A dataset name needs 1 to {MAX_NAME_LENGTH} characters.",
                                  {"field": "name"})
    if any(ch in "/\\" or not ch.isprintable() for ch in name):
        raise InvalidRequestError("A dataset name cannot contain slashes or control characters.",
                                  {"field": "name"})
    return name


def named_files(files: list[tuple[Dataset, Path]]) -> list[tuple[str, Path]]:
    """The names under which a kernel places ``files``: each dataset's name, then its earlier names (a renamed
    dataset's aliases) where no dataset of ``files`` is called so; one file per name, the first one's."""
    placed: dict[str, Path] = {}
    for dataset, path in files:
        placed.setdefault(dataset.name, path)
    for dataset, path in files:
        for alias in dataset.aliases:
            placed.setdefault(alias, path)
    return list(placed.items())


def may_read(user: User, dataset: Dataset) -> bool:
    """Whether ``user`` may read ``dataset``: its owner and admins may."""
    return dataset.owner_id == user.id or user.role == "admin"


class DatasetService(LoggingConfigurable):
    max_upload_bytes = Integer(100 * 1024 * 1024, help="Largest CSV upload in bytes (413 past it).").tag(config=True)
    max_concurrent_imports = Integer(IMPORTS_RUNNING, help="CSV conversions running at once.").tag(config=True)
    max_waiting_imports = Integer(
        IMPORTS_WAITING, help="Uploads waiting for a conversion; past them a 429 with Retry-After.").tag(config=True)
    max_columns = Integer(CSV_COLUMNS, help="Most columns of an uploaded CSV (422 past it).").tag(config=True)
    max_preview_rows = Integer(1000, help="Largest page of the preview endpoint.").tag(config=True)
    storage_quota_bytes = Integer(DATASET_QUOTA_BYTES, help="Bytes of stored datasets (every version) each user may "
                                  "own; an upload past it is refused (413).").tag(config=True)

    def __init__(self, store: Store, tmp_dir: Path, records: RecordMemory | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.tmp_dir = tmp_dir
        self.records = records or RecordMemory(store, parent=self)  # datasets, cards as recently read
        self.import_slots = Slots(
            self.max_concurrent_imports, self.max_waiting_imports, IMPORT_RETRY_SECONDS, "imports_busy",
            f"The server is converting as many CSV files as it can; upload again in {IMPORT_RETRY_SECONDS} seconds.")
        self.new_version: list[Callable[[str, int], None]] = []  # told (dataset_id, number) of every new version

    def new_upload_path(self) -> Path:
        """A fresh temporary path for an incoming upload, in a directory only we can read."""
        private_dir(self.tmp_dir)
        return self.tmp_dir / f"upload-{uuid.uuid4().hex}.csv"

    def sweep_uploads(self) -> None:
        """Remove every temporary file (none is in use: call at start and after the last request)."""
        removed = empty_dir(self.tmp_dir)
        if removed:
            log.info("upload_files_swept", count=len(removed), tmp_dir=str(self.tmp_dir))

    # writes ------------------------------------------------------------------
    async def create(self, owner: User, name: str, upload: Path, encoding: str | None, delimiter: str | None,
                     usage: Usage | None = None) -> tuple[Dataset, DatasetVersion, ImportResult]:
        """A new dataset of ``owner``'s from ``upload``, within their quota (their ``usage``, if read already)."""
        name = validate_name(name)
        dataset_id = new_id("dataset")
        usage = usage if usage is not None else await self.usage(owner.id)
        named = [dataset for _, _, dataset in usage if dataset.name == name]
        first = await self._own(named[0], 1) if named and named[0].id == dataset_id else None
        if named and first is None:
            raise ConflictError(
                f"You already have a dataset named {name!r}; upload a new version of it instead.",
                {"field": "name"})
        version, result = await self._import(dataset_id, 1, owner, owner.id, upload, encoding, delimiter, first,
                                             usage)
        if first is not None:
            dataset = named[0]
        else:
            dataset = Dataset(id=dataset_id, owner_id=owner.id, name=name, current_version=1,
                              created_at=version.created_at, updated_at=version.created_at)
            await self._commit(version, self.store.create_dataset(dataset, version))
        await record(self.store, "dataset_created", dataset_id=dataset_id, owner_id=owner.id, name=name,
              rows=version.row_count, bytes=version.bytes)
        return dataset, version, result

    async def add_version(self, user: User, dataset_id: str, upload: Path, encoding: str | None,
                          delimiter: str | None, usage: Usage | None = None) -> tuple[Dataset, DatasetVersion,
                                                                                      ImportResult]:
        """A new version of the dataset from ``upload``, within its owner's quota (their ``usage``, if read)."""
        dataset = await self.get_visible(user, dataset_id)
        first = await self._own(dataset, dataset.current_version) if replayed() else None
        number = first.version if first else dataset.current_version + 1
        version, result = await self._import(dataset.id, number, user, dataset.owner_id, upload, encoding, delimiter,
                                             first, usage)
        async with self.records.changing("dataset", dataset.id):  # before new-data runs read it
            if first is None:
                await self._commit(version, self.store.add_dataset_version(version, dataset.current_version))
        for listener in self.new_version:
            listener(dataset.id, number)
        await record(self.store, "dataset_version_created", dataset_id=dataset.id, version=number, owner_id=dataset.owner_id,
              user_id=user.id, rows=version.row_count)
        return dataclasses.replace(dataset, current_version=number, updated_at=version.created_at), version, result

    async def rename(self, user: User, dataset_id: str, name: str) -> Dataset:
        """Call the dataset ``name``; ``load_dataset`` still finds it under the names it had (its aliases)."""
        dataset = await self.get_visible(user, dataset_id)
        name = validate_name(name)
        if name == dataset.name:
            return dataset
        if len(dataset.renamed(name).aliases) > DATASET_ALIASES:
            raise InvalidRequestError(
                f"The dataset has had {DATASET_ALIASES} names already, each kept so that cards loading it by an"
                " earlier one keep working; upload it as a new dataset under the new name instead.",
                {"field": "name", "limit": DATASET_ALIASES}, code="dataset_aliases_full")
        async with self.records.changing("dataset", dataset.id):
            renamed = await self.store.rename_dataset(dataset.id, name, dataset.name)
        await record(self.store, "dataset_renamed", dataset_id=dataset.id, owner_id=dataset.owner_id,
                     user_id=user.id, name=name, old_name=dataset.name)
        return renamed

    async def delete(self, user: User, dataset_id: str) -> None:
        """Delete the dataset, or finish a deletion cut short: what is gone already is no error."""
        try:
            dataset: Dataset | None = await self.get_visible(user, dataset_id)
        except NotFoundError:
            if not DATASET_ID.fullmatch(dataset_id) or await self.store.get_dataset(dataset_id) is not None:
                raise
            dataset = None
        async with self.records.changing("dataset", dataset_id):
            versions = await self.store.delete_dataset(dataset_id)
        keys = {version.blob_key for version in versions}
        keys.update(key for key, _ in await self.store.list_blobs(f"datasets/{dataset_id}/"))
        await asyncio.gather(*(self.store.delete_blob(key) for key in sorted(keys)))  # each a call, at once
        if dataset is not None:
            await record(self.store, "dataset_deleted", dataset_id=dataset.id, owner_id=dataset.owner_id,
                         user_id=user.id)

    async def _own(self, dataset: Dataset, number: int) -> DatasetVersion | None:
        """Version ``number`` of ``dataset`` if an earlier attempt of this keyed request stored it (its answer
        lost: ``idempotency.mark``)."""
        version = await self.store.get_dataset_version(dataset.id, number)
        if version is None or not ours(version.request_mark):
            return None
        await self.store.relist(CatalogueGap("unlisted", DATASET, dataset.id))  # the earlier attempt may not have listed it
        return version

    async def _import(self, dataset_id: str, number: int, user: User, owner_id: str, upload: Path,
                      encoding: str | None, delimiter: str | None, first: DatasetVersion | None = None,
                      usage: Usage | None = None) -> tuple[DatasetVersion, ImportResult]:
        """Convert ``upload`` and store it as version ``number``, within ``owner_id``'s storage quota (its
        ``usage``, read once): the CSV must fit before it is converted (Parquet is rarely larger), its Parquet
        file after. With ``first`` (the version an earlier attempt stored) the upload is only converted, for what
        its answer says."""
        parquet = upload.with_suffix(".parquet")
        size = upload.stat().st_size
        try:
            if first is None:
                usage = await self.check_quota(owner_id, size, usage)
            async with self.import_slots.hold():
                result = await asyncio.to_thread(convert_csv_to_parquet, upload, parquet, encoding=encoding,
                                                 delimiter=delimiter, max_columns=self.max_columns)
            if first is not None:
                return first, result
            stored = parquet.stat().st_size
            await self.check_quota(owner_id, stored, usage)
            key = f"datasets/{dataset_id}/v{number}-{uuid.uuid4().hex[:12]}.parquet"
            await self.store.put_blob(key, parquet)
        finally:
            parquet.unlink(missing_ok=True)
        version = DatasetVersion(
            dataset_id=dataset_id, version=number, blob_key=key, row_count=result.row_count,
            columns=result.columns, bytes=size, encoding=result.encoding,
            delimiter=result.delimiter, created_at=utcnow(), created_by=user.id, stored_bytes=stored,
            request_mark=mark())
        return version, result

    async def usage(self, owner_id: str) -> Usage:
        """(stored bytes, versions, dataset) of each dataset ``owner_id`` owns, the largest first: their list, then
        every version of them in one batch read (versions are numbered from 1 and deleted only with their dataset)."""
        datasets = await self.store.list_datasets(owner_id)
        keys = [(dataset.id, number) for dataset in datasets for number in range(1, dataset.current_version + 1)]
        sizes: dict[str, list[int]] = {dataset.id: [] for dataset in datasets}
        for version in await self.store.get_dataset_versions(keys):
            if version is not None:
                sizes[version.dataset_id].append(version.charged_bytes)
        return sorted(((sum(sizes[d.id]), len(sizes[d.id]), d) for d in datasets), key=lambda entry: -entry[0])

    async def check_quota(self, owner_id: str, adding: int, usage: Usage | None = None) -> Usage:
        """``StorageQuotaError`` unless ``adding`` more bytes keep the datasets ``owner_id`` owns within the quota
        (their ``usage`` if read already); the usage.

        Its details name what is used, the limit and the largest datasets (what to delete).
        """
        sizes = usage if usage is not None else await self.usage(owner_id)
        used = sum(size for size, _, _ in sizes)
        limit = self.storage_quota_bytes
        if used + adding <= limit:
            return sizes
        shown = sizes[:QUOTA_LARGEST_SHOWN]
        advice = ("Delete datasets you no longer need (a dataset is deleted with all its versions), largest first: "
                  + ", ".join(f"{d.name!r} ({megabytes(size)}, {count} versions)" for size, count, d in shown) + "."
                  if shown else "Upload a smaller file.")
        largest = [{"id": d.id, "name": d.name, "stored_bytes": size, "versions": count} for size, count, d in shown]
        raise StorageQuotaError(
            f"This upload needs about {megabytes(adding)}, but the datasets already take {megabytes(used)} of "
            f"the {megabytes(limit)} their owner may store. {advice}",
            {"used": used, "limit": limit, "adding": adding, "largest": largest})

    async def _commit(self, version: DatasetVersion, write: Any) -> None:
        """Await the record write; once it is known never to land, remove the blob it would have pointed to."""
        async def landed() -> bool:
            stored = await self.store.get_dataset_version(version.dataset_id, version.version)
            return stored is not None and stored.blob_key == version.blob_key

        await settle(write, landed, lambda: self.store.delete_blob(version.blob_key),
                     dataset_id=version.dataset_id, blob_key=version.blob_key)

    # reads -------------------------------------------------------------------
    async def list_visible(self, user: User) -> list[tuple[Dataset, DatasetVersion]]:
        owner = None if user.role == "admin" else user.id
        datasets = await self.store.list_datasets(owner)
        versions = await self.store.get_dataset_versions([(d.id, d.current_version) for d in datasets])
        return [(d, v) for d, v in zip(datasets, versions, strict=True) if v is not None]

    async def page_visible(self, user: User, query: ListQuery) -> Page[tuple[Dataset, DatasetVersion]]:
        """A page of the datasets ``user`` may read (their own; an admin all), with their current versions."""
        scopes = (Scope("all"),) if user.role == "admin" else (Scope("owner", user.id),)
        page = await self.store.page_datasets(dataclasses.replace(query, scopes=scopes))
        versions = await self.store.get_dataset_versions([(d.id, d.current_version) for d in page.items])
        return Page([(d, v) for d, v in zip(page.items, versions, strict=True) if v is not None],
                    page.next, page.total)

    async def get_visible(self, user: User, dataset_id: str) -> Dataset:
        """The dataset if ``user`` owns it or is an admin; to anyone else it does not exist."""
        dataset = await self.store.get_dataset(dataset_id)
        if dataset is None or not may_read(user, dataset):
            raise NotFoundError("No such dataset.")
        return dataset

    async def get_version(self, user: User, dataset_id: str, number: int | None = None) -> DatasetVersion:
        dataset = await self.get_visible(user, dataset_id)
        version = await self.store.get_dataset_version(
            dataset.id, dataset.current_version if number is None else number)
        if version is None:
            raise NotFoundError(f"The dataset has no version {number}.")
        return version

    async def files_of(self, user: User, dataset_ids: list[str]) -> list[tuple[str, Path]]:
        """The local Parquet files of the datasets' current versions under the names a kernel places them
        (``named_files``); ``NotFoundError`` for one ``user`` may not read."""
        files = []
        for dataset_id in dataset_ids:
            dataset = await self.get_visible(user, dataset_id)
            version = await self.get_version(user, dataset_id)
            files.append((dataset, await self.store.blob_path(version.blob_key)))
        return named_files(files)

    async def parquet_files(self, user: User) -> tuple[list[tuple[str, Path]], tuple[str, ...]]:
        """Every dataset ``user`` can see, as ``files_of`` gives them (their own first, one per name), and
        the ids of those datasets."""
        files: list[tuple[Dataset, Path]] = []
        names: set[str] = set()
        for dataset, version in sorted(await self.list_visible(user), key=lambda dv: dv[0].owner_id != user.id):
            if dataset.name not in names:
                names.add(dataset.name)
                files.append((dataset, await self.store.blob_path(version.blob_key)))
        return named_files(files), tuple(dataset.id for dataset, _ in files)

    async def versions(self, user: User, dataset_id: str, query: ListQuery) -> Page[DatasetVersion]:
        """A page of the dataset's versions, newest first."""
        dataset = await self.get_visible(user, dataset_id)
        return await self.store.page_dataset_versions(dataset.id, query)

    async def preview(self, user: User, dataset_id: str, number: int | None, offset: int,
                      limit: int) -> dict[str, Any]:
        """Rows ``offset`` to ``offset + limit`` of a version, as JSON-safe lists.

        A page holds at most ``PREVIEW_VALUES`` values (``limit`` shrinks for wide datasets) and text
        values of at most ``PREVIEW_CELL_CHARS`` characters (``cut_long_values``): longer ones are cut, end in "…" and are
        listed in ``truncated_cells`` as [row, column] of the page.
        """
        version = await self.get_version(user, dataset_id, number)
        limit = max(1, min(limit, PREVIEW_VALUES // max(len(version.columns), 1)))
        path = await self.store.blob_path(version.blob_key)
        rows, truncated = await asyncio.to_thread(read_rows, path, offset, limit)
        return {"dataset_id": dataset_id, "version": version.version, "offset": offset,
                "limit": limit, "total_rows": version.row_count,
                "columns": [c.name for c in version.columns], "rows": rows, "truncated_cells": truncated}


def read_rows(path: Path, offset: int, limit: int) -> tuple[list[list[Any]], list[list[int]]]:
    """Read only the row groups that hold the wanted rows, long text cut (and where)."""
    parquet = pq.ParquetFile(path)
    start = 0
    rows: list[list[Any]] = []
    truncated: list[list[int]] = []
    for index in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(index).num_rows
        if start + size > offset and start < offset + limit:
            lo = max(offset - start, 0)
            table = parquet.read_row_group(index).slice(lo, offset + limit - start - lo)
            table, cut = cut_long_values(table)
            truncated.extend([row + len(rows), column] for row, column in cut)
            rows.extend(rows_of(table))
        start += size
        if start >= offset + limit:
            break
    return rows, truncated
