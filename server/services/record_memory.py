"""Cards, datasets and dashboards, and their versions, as recent requests read them, kept in this task's memory, so
that viewing or running a card (a cache hit above all) or opening or re-running a dashboard costs no store round trip
for the records it reads.

A version never changes once stored. A record (a card's or dataset's owner, name, current version; a dashboard's
owner and current version) changes with every save, rename and deletion, and the service that changed it calls
``changed(kind, id)`` (around the write: ``changing``, also when its outcome is unknown): the record
and its versions are forgotten here at once and, through the bus (``record.changed``), on every task before
the next request there. As the result memory (``result_memory.py``): a task whose bus is down neither reads
nor fills this memory (it might miss another task's changes), and forgets everything when the bus connects
again; a read that overlapped a change is not kept; an entry is kept at most ``seconds``, within
``max_bytes`` (least recently used out first). Without a bus (``listen`` not called) every read goes to the
store. A change is made from the store's record, never from what is kept here (the version it names is checked
against the stored one).

What decides rights is never only here: an owner never changes (a card's, a dashboard's), and who else may see a
dashboard or card is read from the dashboards' shares on every request (``DashboardService.access``,
``card_access``); a user's role comes from the user record (``user_cache.py``, dropped on every task at each change
of a user).
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, Literal, TypeVar

from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from ..bus import Bus, Envelope
from ..limits import RECORD_MEMORY_BYTES
from ..models import Card, CardVersion, Dashboard, DashboardVersion, Dataset, DatasetVersion, User
from ..storage.base import Store
from .user_cache import UserCache

CHANGED = "record.changed"
Kind = Literal["card", "dataset", "dashboard"]
T = TypeVar("T")


class RecordMemory(LoggingConfigurable):
    seconds = Float(300.0, min=0.0, help="Seconds a card or dataset record, or a version, is kept in this task's "
                    "memory at most (0: read the store every time).").tag(config=True)
    max_bytes = Integer(RECORD_MEMORY_BYTES, min=0, help="Bytes of card and dataset records and versions (their "
                        "repr) kept in this task's memory.").tag(config=True)

    def __init__(self, store: Store, users: UserCache | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.users = users
        self.bus: Bus | None = None
        self.bytes = 0
        self._kept: collections.OrderedDict[tuple[str, str, int], tuple[float, int, Any]] = collections.OrderedDict()
        self._parts: dict[tuple[str, str], set[int]] = {}  # (kind, id) -> parts kept (0: the record, n: version n)
        self._changes = 0  # changes heard so far: a read that overlapped one is not kept

    def listen(self, bus: Bus) -> None:
        """Keep records, told of changes on every task over ``bus`` (before ``bus.start()``)."""
        self.bus = bus
        bus.subscribe(CHANGED, self._on_changed)
        bus.reconnected.append(self.clear)

    # reads -------------------------------------------------------------------
    async def card(self, card_id: str) -> Card | None:
        return await self._read("card", card_id, 0, lambda: self.store.get_card(card_id))

    async def card_version(self, card_id: str, number: int) -> CardVersion | None:
        return await self._read("card", card_id, number, lambda: self.store.get_card_version(card_id, number))

    async def dataset(self, dataset_id: str) -> Dataset | None:
        return await self._read("dataset", dataset_id, 0, lambda: self.store.get_dataset(dataset_id))

    async def dataset_version(self, dataset_id: str, number: int) -> DatasetVersion | None:
        return await self._read("dataset", dataset_id, number,
                                lambda: self.store.get_dataset_version(dataset_id, number))

    async def datasets(self, dataset_ids: list[str]) -> list[Dataset | None]:
        """The datasets of ``dataset_ids``, in their order (None: none such): those kept, the rest in one batch read."""
        return await self._read_many("dataset", [(dataset_id, 0) for dataset_id in dataset_ids],
                                     lambda keys: self.store.get_datasets([dataset_id for dataset_id, _ in keys]))

    async def dataset_versions(self, keys: list[tuple[str, int]]) -> list[DatasetVersion | None]:
        """The versions named by (dataset id, number), in their order: those kept, the rest in one batch read."""
        return await self._read_many("dataset", keys, self.store.get_dataset_versions)

    async def dashboard(self, dashboard_id: str) -> Dashboard | None:
        return await self._read("dashboard", dashboard_id, 0, lambda: self.store.get_dashboard(dashboard_id))

    async def dashboard_version(self, dashboard: Dashboard) -> DashboardVersion | None:
        """``dashboard``'s current version (as its record, just read, names it)."""
        return await self._read("dashboard", dashboard.id, dashboard.current_version,
                                lambda: self.store.get_dashboard_version(dashboard.id, dashboard.current_version))

    async def dashboard_versions(self, dashboards: list[Dashboard]) -> list[DashboardVersion | None]:
        """The current version of each of ``dashboards``, in their order: those kept, the rest in one batch read."""
        return await self._read_many("dashboard", [(d.id, d.current_version) for d in dashboards],
                                     self.store.get_dashboard_versions)

    async def users_named(self, user_ids: list[str]) -> list[User | None]:
        """The users of ``user_ids`` as last read (``UserCache.kept``), the rest in one batch read, in their order."""
        kept = {user_id: self.users.kept(user_id) for user_id in user_ids} if self.users is not None else {}
        missing = [user_id for user_id in dict.fromkeys(user_ids) if kept.get(user_id) is None]
        found = dict(zip(missing, await self.store.get_users(missing), strict=True)) if missing else {}
        return [kept.get(user_id) or found.get(user_id) for user_id in user_ids]

    async def cards(self, card_ids: Collection[str]) -> list[Card]:
        """The cards of ``card_ids`` that exist (in no particular order): those kept, the rest in one batch read."""
        async def load(keys: list[tuple[str, int]]) -> list[Card | None]:
            found = {card.id: card for card in await self.store.get_cards([card_id for card_id, _ in keys])}
            return [found.get(card_id) for card_id, _ in keys]

        cards = await self._read_many("card", [(card_id, 0) for card_id in card_ids], load)
        return [card for card in cards if card is not None]

    async def card_versions(self, keys: list[tuple[str, int]]) -> list[CardVersion | None]:
        """The versions named by (card id, number), in their order: those kept, the rest in one batch read."""
        return await self._read_many("card", keys, self.store.get_card_versions)

    async def user(self, user_id: str) -> User | None:
        """The user as last read (``UserCache.latest``), or from the store without a user cache."""
        return await (self.users.latest(user_id) if self.users is not None else self.store.get_user(user_id))

    async def _read(self, kind: Kind, record_id: str, part: int, load: Callable[[], Awaitable[T | None]]) -> T | None:
        key = (kind, record_id, part)
        listening = self.bus is not None and self.bus.connected and self.seconds > 0
        kept = self._kept.get(key) if listening else None
        if kept is not None and kept[0] > time.monotonic():
            self._kept.move_to_end(key)
            found: T = kept[2]
            return found
        changes = self._changes
        value = await load()
        if value is not None and listening and changes == self._changes:
            self._keep(key, value)
        return value

    async def _read_many(self, kind: Kind, keys: list[tuple[str, int]],
                         load: Callable[[list[tuple[str, int]]], Awaitable[list[T | None]]]) -> list[T | None]:
        """``_read`` for many parts (``load`` reads those not kept, in one call, in their order)."""
        listening = self.bus is not None and self.bus.connected and self.seconds > 0
        now = time.monotonic()
        found: dict[tuple[str, int], T | None] = {}
        for record_id, part in keys:
            kept = self._kept.get((kind, record_id, part)) if listening else None
            if kept is not None and kept[0] > now:
                self._kept.move_to_end((kind, record_id, part))
                found[(record_id, part)] = kept[2]
        missing = list(dict.fromkeys(key for key in keys if key not in found))
        changes = self._changes
        loaded = await load(missing) if missing else []
        for (record_id, part), value in zip(missing, loaded, strict=True):
            found[(record_id, part)] = value
            if value is not None and listening and changes == self._changes:
                self._keep((kind, record_id, part), value)
        return [found[key] for key in keys]

    def _keep(self, key: tuple[str, str, int], value: object) -> None:
        size = len(repr(value))
        if size > self.max_bytes:
            return
        self._forget(key)
        self._kept[key] = (time.monotonic() + self.seconds, size, value)
        self._parts.setdefault(key[:2], set()).add(key[2])
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._forget(next(iter(self._kept)))

    # changes -----------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def changing(self, kind: Kind, record_id: str) -> AsyncIterator[None]:
        """Around a write of the record ``kind``/``record_id``: ``changed`` afterwards, whether the write is known to
        have landed or not (one whose outcome is unknown may have changed it)."""
        try:
            yield
        finally:
            await self.changed(kind, record_id)

    async def changed(self, kind: Kind, record_id: str) -> None:
        """The record ``kind``/``record_id`` was changed or deleted on this task: forget it here, then everywhere."""
        self._drop(kind, record_id)
        if self.bus is not None:
            await self.bus.publish(CHANGED, {"kind": kind, "id": record_id})

    def clear(self) -> None:
        """Forget everything (the bus was down: changes on other tasks may have been missed)."""
        self._changes += 1
        self._kept.clear()
        self._parts.clear()
        self.bytes = 0

    def _on_changed(self, envelope: Envelope) -> None:
        self._drop(str(envelope.body["kind"]), str(envelope.body["id"]))

    def _drop(self, kind: str, record_id: str) -> None:
        self._changes += 1
        for part in list(self._parts.get((kind, record_id), ())):
            self._forget((kind, record_id, part))

    def _forget(self, key: tuple[str, str, int]) -> None:
        kept = self._kept.pop(key, None)
        if kept is None:
            return
        self.bytes -= kept[1]
        parts = self._parts.get(key[:2])
        if parts is not None:
            parts.discard(key[2])
            if not parts:
                del self._parts[key[:2]]
