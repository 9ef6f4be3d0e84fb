"""Running saved cards, answered from an exact result cache when nothing that matters changed.

A card version runs with the dataset rights of its author, whoever asks for the run (a viewer,
the schedule, new data): one that names a dataset its author may not read fails with
``dataset_not_readable`` before anything runs or is looked up in the cache.

The cache key is a digest of the card's code, the version's author, the version of every dataset it
reads, the parameter values and the kernel image version (DESIGN §9). A new dataset version, an edit of
the code or a kernel upgrade changes the key, so a cached result is never stale; a result is served
only to runs of the same author's code on the same data. A miss runs the
card in a fresh kernel of the caller (destroyed afterwards) and caches results that finished (ok,
or a card error) once the tables of their DataFrame outputs are stored; timeouts, truncated output,
dead kernels and tables that did not reach the store are not cached. A cached result whose outputs
blob or tables are gone is a miss. A run is answered once it has run, and cached just after (in the
background, the id of its outputs' record, ``result_id``, chosen up front): a lookup of its key waits for
its storing, and so do its record's readers (``OutputTables.storing``). A store that fails leaves no record
behind and is logged (``card_result_not_stored``); a run under a lease (``fence``) is cached before its
answer, which must say whether the lease was lost. Cached outputs are a
JSON blob (the object store), indexed in the store's cache table. Recent hits are also kept in this task's memory
(``result_memory.py``), read after the caller's rights and the key were established as for every run.

Every result carries its freshness (``FRESHNESS``): when it was computed (``computed_at``), why
(``reason``: ``edit`` for a run of new code or new parameter values, ``schedule``, ``new_data``,
``forced`` for a re-run past the cache), the card version and the dataset versions it read. They are
set by the run, stored with the outputs and copied unchanged on cache hits; results stored before they
existed say ``unknown`` (their ``computed_at`` is when they were stored).

Runs take turns per user (``RunTurns``: a waiting run's ``told`` hears its place in line), and identical
runs under way at once are one kernel run whose result every caller gets (``SharedRuns``).

Entries of one card and parameter values (a variant) that differ in code, data or kernel version
are superseded: the newest ``results_per_variant`` are kept, older ones are deleted with the
tables their outputs page from (record first, then blobs); a forced run replaces its key's entry.
Every distinct parameter value is a variant of its own, so what bounds the cache is the quota: an
entry's outputs blob is charged to the user whose action caused the run (a viewer, the schedule's
dashboard owner), in the same quota as their output tables (``OutputTables.keep_result``); at the
quota the least recently stored or served go first, entry and all, never a dashboard tile's current
output (the hub pins its ``result_id``). The entry's ``output_ids`` name that blob's record (the last
one) beside its tables, so an entry whose blob was evicted is a miss.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import tempfile
import uuid
from pathlib import Path
from typing import Any
from collections.abc import Awaitable, Callable, Iterable

from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from .. import json_io
from ..bus import Bus
from ..errors import DatasetNotReadableError, InvalidRequestError, LeaseLostError, NotFoundError
from ..execution.pool import KernelPool
from ..limits import CACHED_RESULTS_PER_VARIANT, CARD_RUNS_PER_USER, RESULT_MEMORY_BYTES
from ..logs import get_logger
from ..models import CachedResult, Card, CardVersion, Dataset, DatasetVersion, Lease, User, utcnow
from .audit import record
from ..storage.base import Store
from .cards import CardService
from .datasets import may_read, named_files
from .output_tables import OutputTables, output_ids
from .record_memory import RecordMemory
from .result_memory import ResultMemory
from .run_turns import RunTurns, SharedRuns, Told

CACHEABLE = ("ok", "error")
REASONS = ("edit", "schedule", "new_data", "forced")
FRESHNESS = ("computed_at", "reason", "card_version", "dataset_versions")
UNKNOWN = "unknown"  # the reason of a result stored before results said theirs

log = get_logger("bi.card_runs")


def bind_parameters(declared: tuple[dict[str, Any], ...], given: dict[str, Any]) -> dict[str, Any]:
    """The value of every declared parameter: the given one (checked against its type) or the default."""
    known = {p["name"]: p for p in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InvalidRequestError(f"The card has no parameter {', '.join(unknown)}; it has "
                                  f"{', '.join(known) or 'none'}.", {"unknown": unknown})
    values = {}
    for name, parameter in known.items():
        value = given.get(name, parameter.get("default"))
        _check(parameter, value)
        values[name] = value
    return values


def _check(parameter: dict[str, Any], value: Any) -> None:
    name, kind = parameter["name"], parameter["type"]
    if value is None:
        raise InvalidRequestError(f"Give a value for the parameter {name!r} (it has no default).")
    ok = {"text": lambda v: isinstance(v, str),
          "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
          "date": _is_date,
          "choice": lambda v: v in parameter.get("choices", ())}[kind](value)
    if not ok:
        expected = {"text": "a string", "number": "a number", "date": "a date as YYYY-MM-DD",
                    "choice": f"one of {parameter.get('choices')}"}[kind]
        raise InvalidRequestError(f"The parameter {name!r} must be {expected}, not {value!r}.", {"parameter": name})


def _is_date(value: Any) -> bool:
    try:
        return isinstance(value, str) and dt.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def parameter_cell(values: dict[str, Any]) -> str:
    """Python that binds each parameter to its value (literals only: ``repr`` of str, int, float)."""
    return "".join(f"{name} = {value!r}\n" for name, value in values.items())


def cache_key(version: CardVersion, datasets: list[tuple[str, int]], values: dict[str, Any],
              image_version: str | None) -> str:
    material = {"code": version.code, "author": version.created_by, "datasets": sorted(datasets),
                "parameters": values, "image": image_version}
    return _digest(material)


def variant_of(card_id: str, values: dict[str, Any]) -> str:
    """Names a card and parameter values: the cache entries that supersede each other."""
    return _digest({"card": card_id, "parameters": values})


def _digest(material: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class CardData:
    """The datasets a card version names, as one reader may load them."""

    files: list[tuple[str, Path]]  # the name and Parquet file of each one the reader may read
    versions: list[tuple[str, int]]  # their ids and current versions
    unreadable: list[Dataset]  # those the reader may not read


@dataclasses.dataclass(frozen=True)
class ReadAhead:
    """What a caller read at once for several runs (a dashboard's tiles): the authors of their card versions and
    the datasets those read, each with its current version. A run takes from it what it needs, and reads the rest."""

    users: dict[str, User]
    datasets: dict[str, tuple[Dataset, DatasetVersion | None]]


async def read_ahead(records: RecordMemory, versions: Iterable[CardVersion]) -> ReadAhead:
    """The authors and datasets of ``versions``: at most three batch reads, two one after the other, however many
    (none for what this task's memory keeps)."""
    versions = list(versions)
    users, datasets = await asyncio.gather(
        records.users_named(list(dict.fromkeys(version.created_by for version in versions))),
        records.datasets(list(dict.fromkeys(d for version in versions for d in version.datasets))))
    heads = [dataset for dataset in datasets if dataset is not None]
    current = await records.dataset_versions([(dataset.id, dataset.current_version) for dataset in heads])
    return ReadAhead({user.id: user for user in users if user is not None},
                     {d.id: (d, v) for d, v in zip(heads, current, strict=True)})


async def card_data(records: RecordMemory, reader: User | None, version: CardVersion,
                    ahead: ReadAhead | None = None) -> CardData:
    """The datasets ``version`` names, parted by whether ``reader`` (None: nobody) may read them."""
    data = CardData([], [], [])
    readable: list[tuple[Dataset, Path]] = []
    for dataset_id in version.datasets:
        dataset, record = ahead.datasets.get(dataset_id, (None, None)) if ahead else (None, None)
        if dataset is None:  # not read ahead (or deleted): read it now (or take it from this task's memory)
            dataset = await records.dataset(dataset_id)
            record = await records.dataset_version(dataset_id, dataset.current_version) if dataset else None
        if dataset is None or record is None:
            raise NotFoundError(f"A dataset this card reads ({dataset_id}) was deleted; edit the card.",
                                {"dataset_id": dataset_id}, code="dataset_deleted")
        if reader is None or not may_read(reader, dataset):
            data.unreadable.append(dataset)
        else:
            readable.append((dataset, await records.store.blob_path(record.blob_key)))
            data.versions.append((dataset_id, dataset.current_version))
    data.files.extend(named_files(readable))
    return data


async def author_data(records: RecordMemory, version: CardVersion, ahead: ReadAhead | None = None) -> CardData:
    """What a run of ``version`` loads: every dataset it names, with the rights of its author;
    ``DatasetNotReadableError`` if they may not read one."""
    author = (ahead.users.get(version.created_by) if ahead else None) or await records.user(version.created_by)
    data = await card_data(records, author, version, ahead)
    if data.unreadable:
        dataset = data.unreadable[0]
        raise DatasetNotReadableError(
            f"Version {version.version} of this card was saved by {author.name if author else 'a removed user'},"
            f" who may not read the dataset {dataset.name!r} it loads, and a card runs with the dataset rights"
            " of whoever saved its version. Ask the dataset's owner to save the card, or take the dataset out.",
            {"card_id": version.card_id, "version": version.version, "author_id": version.created_by,
             "dataset_id": dataset.id, "dataset": dataset.name})
    return data


class CardRunner(LoggingConfigurable):
    results_per_variant = Integer(CACHED_RESULTS_PER_VARIANT, min=1, help="Result cache entries kept per card and "
                                  "parameter values; older ones and their tables are deleted.").tag(config=True)
    runs_per_user = Integer(CARD_RUNS_PER_USER, min=1, help="Card runs one user has under way at once; more wait "
                            "their turn (they do not count against the user's interactive sessions).").tag(config=True)

    memory_bytes = Integer(RESULT_MEMORY_BYTES, min=0, help="Bytes of recent cached results (serialised) kept in "
                           "this task's memory for the next hits (0: none).").tag(config=True)
    memory_seconds = Float(300.0, min=0.0, help="Seconds a cached result is kept in memory at most.").tag(config=True)

    def __init__(self, store: Store, cards: CardService, pool: KernelPool, tables: OutputTables, bus: Bus,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.cards = cards
        self.pool = pool
        self.tables = tables
        self.memory = ResultMemory(bus, self.memory_bytes, self.memory_seconds)
        tables.deleted.append(self.memory.dropped)
        self.turns = RunTurns(self.runs_per_user)
        self.shared = SharedRuns()
        self.finished: list[Callable[[str, dict[str, Any], dict[str, Any]], None]] = []  # (card_id, values, result)
        self._storing: dict[str, asyncio.Task[None]] = {}  # cache key -> the latest store of its result under way

    async def run(self, user: User, card_id: str, parameters: dict[str, Any], force: bool = False,
                  fence: Lease | None = None, announce: bool = True, reason: str | None = None,
                  told: Told | None = None, shown: tuple[Card, CardVersion] | None = None,
                  ahead: ReadAhead | None = None) -> dict[str, Any]:
        """``{"status", "outputs", "cached", "execution_time_ms", "truncated"}`` and the freshness fields of
        the card's current version; ``force`` runs it even when a result is cached (a scheduled refresh, a
        re-run). ``reason`` says why a run happens (default: ``forced`` with ``force``, else ``edit``);
        ``told`` hears the run's place in line while it waits. Under a ``fence`` (a lease) the result is
        cached only while the lease is held: ``LeaseLostError`` otherwise. ``announce``: tell the
        ``finished`` listeners (the caller shows the result itself if not). ``shown``: the card and its
        current version as read by a caller that established ``user`` may view it (a dashboard showing it):
        its access is not checked again; ``ahead``: its author and datasets, as read for several runs."""
        card, version, values, data, key = await self._prepare(user, card_id, parameters, shown, ahead)
        result = None if force else await self._cached(key)
        if result is None:
            why = reason or ("forced" if force else "edit")
            joined = self.shared.running(key)  # an identical run is under way: its result is this one's
            result, lost = await self.shared.run(key, lambda hears: self._execute(
                user, version, values, data, key, fence, why, hears), told)
            if lost and fence is not None:
                raise LeaseLostError(fence.name)
            if joined:  # not run for this caller: as good as a cache hit (and audited as one)
                result = {**result, "cached": True}
        await record(self.store, "card_executed", card_id=card.id, user_id=user.id, execution_time_ms=result["execution_time_ms"],
              cached=result["cached"], status=result["status"])
        for listener in self.finished if announce else ():
            listener(card.id, values, result)
        return result

    async def cached(self, user: User, card_id: str, parameters: dict[str, Any],
                     shown: tuple[Card, CardVersion] | None = None,
                     ahead: ReadAhead | None = None) -> dict[str, Any] | None:
        """The cached result of running the card now, or None: never runs it (``shown``, ``ahead`` as for ``run``)."""
        *_, key = await self._prepare(user, card_id, parameters, shown, ahead)
        return await self._cached(key)

    async def _prepare(self, user: User, card_id: str, parameters: dict[str, Any],
                       shown: tuple[Card, CardVersion] | None = None, ahead: ReadAhead | None = None) -> tuple[
            Card, CardVersion, dict[str, Any], CardData, str]:
        card, version = shown or await self.cards.get_visible(user, card_id)
        values = bind_parameters(version.parameters, parameters)
        data = await author_data(self.cards.records, version, ahead)
        return card, version, values, data, cache_key(version, data.versions, values, self.pool.image_version)

    async def _cached(self, key: str) -> dict[str, Any] | None:
        await self._stored(key)
        result = self.memory.get(key)
        if result is not None:  # its tables' use was marked when it was read from the store (minutes ago at most)
            return result
        drops = self.memory.drops
        cached = await self.store.get_cached_result(key)
        records = await self.tables.records(cached.output_ids) if cached is not None and cached.output_ids else None
        if cached is None or records is None:
            return None  # without output_ids: an entry from before results were charged (run again)
        try:
            stored = json.loads((await self.store.blob_path(cached.blob_key)).read_bytes())
        except NotFoundError:
            return None
        if isinstance(stored, list):  # stored before results carried their freshness
            stored = {"outputs": stored, "computed_at": cached.created_at, "reason": UNKNOWN, "card_version": None,
                      "dataset_versions": None}
        await self.tables.served(records[-1])
        result = {"status": cached.status, "outputs": stored["outputs"], "cached": True,
                  "execution_time_ms": cached.execution_time_ms, "truncated": False,
                  "result_id": cached.output_ids[-1], **{name: stored[name] for name in FRESHNESS}}
        self.memory.put(key, result, cached.output_ids, drops)
        return result

    async def _execute(self, user: User, version: CardVersion, values: dict[str, Any], data: CardData, key: str,
                       fence: Lease | None, reason: str, told: Told) -> tuple[dict[str, Any], bool]:
        """The result of a run in a fresh kernel, and whether caching it failed for a lost ``fence``."""
        async with self.turns.turn(user.id, told):
            session = await self.pool.open(user, data.files, interactive=False)
            try:
                result = await session.execute(version.code, card_id=version.card_id,  # a timeout: 408
                                               prelude=parameter_cell(values))
            finally:  # the answer does not wait for the kernel's destruction
                await self.pool.close_session(session, "card_run_finished", wait=False)
        fresh = {"computed_at": utcnow(), "reason": reason, "card_version": version.version,
                 "dataset_versions": dict(data.versions)}
        answer = {"status": result.status, "outputs": result.outputs, "cached": False,
                  "execution_time_ms": result.execution_time_ms, "truncated": result.truncated, **fresh}
        if result.status not in CACHEABLE or result.truncated or result.kernel_restarted:
            return answer, False
        result_id = uuid.uuid4().hex
        store = functools.partial(self._store, key, user, version.card_id, values, result.status, result.outputs,
                                  result.execution_time_ms, fresh, fence, result_id)
        if fence is None:
            self._store_later(key, result_id, store)
            return {**answer, "result_id": result_id}, False
        await self._stored(key)
        try:
            stored = await store(None)
        except LeaseLostError:
            return answer, True
        return {**answer, "result_id": result_id} if stored else answer, False

    async def _stored(self, key: str) -> None:
        """Wait for the storing of ``key``'s result under way, if any."""
        storing = self._storing.get(key)
        if storing is not None:
            await asyncio.wait([storing])

    def _store_later(self, key: str, result_id: str, store: Callable[[asyncio.Future[bool] | None],
                                                                   Awaitable[bool]]) -> None:
        """Run ``store`` in the background, after the one of ``key`` under way; until its record is settled, the
        readers of ``result_id`` wait."""
        settled: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.tables.storing(result_id, settled)
        task = asyncio.get_running_loop().create_task(
            self._store_after(self._storing.get(key), key, result_id, store, settled))
        self._storing[key] = task
        task.add_done_callback(lambda _: self._storing.pop(key) if self._storing.get(key) is task else None)

    async def _store_after(self, before: asyncio.Task[None] | None, key: str, result_id: str,
                           store: Callable[[asyncio.Future[bool] | None], Awaitable[bool]],
                           settled: asyncio.Future[bool]) -> None:
        if before is not None:
            await asyncio.wait([before])
        try:
            await store(settled)
        except Exception as exc:
            log.error("card_result_not_stored", key=key, result_id=result_id, error=repr(exc))
        finally:
            if not settled.done():
                settled.set_result(False)

    async def settled(self) -> None:
        """Wait for the stores under way (before the store closes; a test's look at what is stored)."""
        while self._storing:
            await asyncio.wait(list(self._storing.values()))

    async def _store(self, key: str, user: User, card_id: str, values: dict[str, Any], status: str,
                     outputs: list[dict[str, Any]], execution_time_ms: int, fresh: dict[str, Any],
                     fence: Lease | None, result_id: str, settled: asyncio.Future[bool] | None) -> bool:
        """Cache the result once the tables of its outputs are stored, its outputs blob charged to ``user`` as the
        record ``result_id``: whether it was (not when a table did not reach the store). ``settled`` hears
        whether that record stays once it is known. On a failure the record is deleted (and the tables, for a lost
        lease): an orphan blob may stay, never a record that points at nothing."""
        if not await self.tables.stored(output_ids(outputs)):
            return False
        blob_key = f"results/{key}/{uuid.uuid4().hex}.json"  # blob keys are never overwritten
        with tempfile.NamedTemporaryFile("wb", suffix=".json") as file:
            file.write(json_io.dumps({"outputs": outputs, **fresh}))
            file.flush()
            size = file.tell()
            await self.store.put_blob(blob_key, Path(file.name))
        needed = (*output_ids(outputs), result_id)
        variant = variant_of(card_id, values)
        try:
            await self.tables.keep_result(result_id, blob_key, size, user.id, card_id, key)
            replaced = await self.store.get_cached_result(key)
            await self.store.put_cached_result(CachedResult(key, blob_key, card_id, status, execution_time_ms,
                                                            utcnow(), variant, needed), fence)
        except BaseException as exc:
            if settled is not None:
                settled.set_result(False)
            # the tables stay (charged to the user) for whoever was shown them, unless nobody was: a lost lease
            await self.tables.delete(needed if isinstance(exc, LeaseLostError) else (result_id,))
            raise
        if settled is not None:
            settled.set_result(True)
        if replaced is not None:
            await self._forget(replaced)
        for older in (await self.store.list_cached_results(variant))[self.results_per_variant:]:
            if older.key != key:
                await self.store.delete_cached_result(older.key)
                await self._forget(older)
        return True

    async def _forget(self, result: CachedResult) -> None:
        """Delete the blob and tables of a result whose record is gone (deleted or replaced)."""
        await self.store.delete_blob(result.blob_key)
        await self.tables.delete(result.output_ids)
