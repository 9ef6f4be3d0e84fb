"""Running saved cards, answered from an exact result cache when nothing that matters changed.

The cache key is a digest of the card's code, the version of every dataset it reads, the
parameter values and the kernel image version (DESIGN §9). A new dataset version, an edit of
the code or a kernel upgrade changes the key, so a cached result is never stale and nothing needs
expiring. A miss runs the card in a fresh kernel of the caller (destroyed afterwards) and caches
results that finished (ok, or a card error); timeouts, truncated output and dead kernels are
not cached. Cached outputs are a JSON blob (the object store), indexed in the store's cache table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Callable

from traitlets.config import LoggingConfigurable

from .. import json_io
from ..errors import InvalidRequestError, NotFoundError
from ..execution.pool import KernelPool
from ..logs import audit
from ..models import CachedResult, Card, CardVersion, User, utcnow
from ..storage.base import Store
from .cards import CardService

CACHEABLE = ("ok", "error")


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
    material = {"code": version.code, "datasets": sorted(datasets), "parameters": values, "image": image_version}
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def dataset_files(store: Store, version: CardVersion) -> tuple[list[tuple[str, Path]], list[tuple[str, int]]]:
    """The Parquet file of each dataset the card reads, by name, and their (id, current version).

    Access to the card is access to its datasets: no further check here.
    """
    files, versions = [], []
    for dataset_id in version.datasets:
        dataset = await store.get_dataset(dataset_id)
        record = dataset and await store.get_dataset_version(dataset_id, dataset.current_version)
        if dataset is None or record is None:
            raise NotFoundError(f"A dataset this card reads ({dataset_id}) was deleted; edit the card.")
        files.append((dataset.name, await store.blob_path(record.blob_key)))
        versions.append((dataset_id, dataset.current_version))
    return files, versions


class CardRunner(LoggingConfigurable):
    def __init__(self, store: Store, cards: CardService, pool: KernelPool, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.cards = cards
        self.pool = pool
        self.finished: list[Callable[[str, dict[str, Any], dict[str, Any]], None]] = []  # (card_id, values, result)

    async def run(self, user: User, card_id: str, parameters: dict[str, Any], force: bool = False) -> dict[str, Any]:
        """``{"status", "outputs", "cached", "execution_time_ms"}`` of the card's current version;
        ``force`` runs it even when a result is cached (a scheduled refresh)."""
        card, version, values, files, key = await self._prepare(user, card_id, parameters)
        result = None if force else await self._cached(key)
        if result is None:
            result = await self._execute(user, version, values, files, key)
        audit("card_executed", card_id=card.id, user_id=user.id, execution_time_ms=result["execution_time_ms"],
              cached=result["cached"], status=result["status"])
        for listener in self.finished:
            listener(card.id, values, result)
        return result

    async def cached(self, user: User, card_id: str, parameters: dict[str, Any]) -> dict[str, Any] | None:
        """The cached result of running the card now, or None: never runs it."""
        *_, key = await self._prepare(user, card_id, parameters)
        return await self._cached(key)

    async def _prepare(self, user: User, card_id: str, parameters: dict[str, Any]) -> tuple[
            Card, CardVersion, dict[str, Any], list[tuple[str, Path]], str]:
        card, version = await self.cards.get_visible(user, card_id)
        values = bind_parameters(version.parameters, parameters)
        files, dataset_versions = await dataset_files(self.store, version)
        return card, version, values, files, cache_key(version, dataset_versions, values, self.pool.image_version)

    async def _cached(self, key: str) -> dict[str, Any] | None:
        cached = await self.store.get_cached_result(key)
        if cached is None:
            return None
        outputs = json.loads((await self.store.blob_path(cached.blob_key)).read_bytes())
        return {"status": cached.status, "outputs": outputs, "cached": True,
                "execution_time_ms": cached.execution_time_ms}

    async def _execute(self, user: User, version: CardVersion, values: dict[str, Any],
                       files: list[tuple[str, Path]], key: str) -> dict[str, Any]:
        session = await self.pool.open(user, files)
        try:
            if values:
                await session.execute(parameter_cell(values))
            result = await session.execute(version.code, card_id=version.card_id)  # a timeout: 408
        finally:
            await self.pool.close_session(session, "card_run_finished")
        if result.status in CACHEABLE and not (result.truncated or result.kernel_restarted):
            await self._store(key, version.card_id, result.status, result.outputs, result.execution_time_ms)
        return {"status": result.status, "outputs": result.outputs, "cached": False,
                "execution_time_ms": result.execution_time_ms}

    async def _store(self, key: str, card_id: str, status: str, outputs: list[dict[str, Any]],
                     execution_time_ms: int) -> None:
        blob_key = f"results/{key}.json"
        with tempfile.NamedTemporaryFile("wb", suffix=".json") as file:
            file.write(json_io.dumps(outputs))
            file.flush()
            await self.store.put_blob(blob_key, Path(file.name))
        await self.store.put_cached_result(CachedResult(key, blob_key, card_id, status, execution_time_ms, utcnow()))
