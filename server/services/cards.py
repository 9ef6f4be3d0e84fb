"""Cards: titled Python code over datasets, with typed parameters, saved as immutable versions.

Who may do what to a card is decided in one place, ``CardService.access``: the owner and admins
may do everything; ``shares`` (dashboards shared with them) may grant others ``view`` (read and run)
or ``edit`` (also save new versions); to everyone else the card does not exist.

Callers hand in fields of the shapes ``card_schema`` describes; the service checks what a
schema cannot say (unique names, defaults among the choices, real dates, the size of a version).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import keyword
from typing import Any, Literal
from collections.abc import Awaitable, Callable

from traitlets.config import LoggingConfigurable

from ..errors import (ConflictError, InvalidRequestError, NotFoundError, PayloadTooLargeError,
                      PermissionDeniedError, PreconditionRequiredError)
from .audit import record
from ..models import Card, CardVersion, User, VersionStamp, utcnow
from ..paging import ListQuery, Page, Scope
from ..storage.base import Store
from ..storage.catalog import CARD, CatalogueGap, Listed
from .datasets import DatasetService
from .idempotency import mark, new_id, own_edit, replayed
from .store_writes import settle

Access = Literal["owner", "edit", "view"]
Shares = Callable[[User, Card], Awaitable[Access | None]]

RANK: dict[Access, int] = {"view": 1, "edit": 2, "owner": 3}
# A version must fit one DynamoDB item (400 KB) with room for its keys.
MAX_VERSION_BYTES = 350_000


async def no_shares(user: User, card: Card) -> Access | None:
    """No card is shared yet."""
    return None


class CardService(LoggingConfigurable):
    def __init__(self, store: Store, datasets: DatasetService, shares: Shares = no_shares, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.datasets = datasets
        self.records = datasets.records  # cards and versions as recently read (record_memory.py)
        self.shares = shares
        self.saved: list[Callable[[User, str], None]] = []  # told (editor, card_id) of every new version

    async def access(self, user: User, card: Card) -> Access | None:
        """What ``user`` may do to ``card``: ``owner`` (everything), ``edit``, ``view`` or nothing."""
        if card.owner_id == user.id or user.role == "admin":
            return "owner"
        return await self.shares(user, card)

    async def _authorize(self, user: User, card_id: str, needed: Access, fresh: bool = False) -> Card:
        """The card if ``user`` has ``needed`` access; NotFound if they have none, 403 if too little. ``fresh``:
        read from the store (what a write starts from), not from this task's memory."""
        return (await self._granted(user, card_id, needed, fresh))[0]

    async def _granted(self, user: User, card_id: str, needed: Access, fresh: bool = False) -> tuple[Card, Access]:
        """The card and ``user``'s access to it, if that is at least ``needed`` (as ``_authorize``)."""
        card = await (self.store.get_card(card_id) if fresh else self.records.card(card_id))
        granted = await self.access(user, card) if card is not None else None
        if card is None or granted is None:
            raise NotFoundError("No such card.")
        if RANK[granted] < RANK[needed]:
            raise PermissionDeniedError(
                "Only the card's owner can delete it." if needed == "owner"
                else "You can view this card but not change it.")
        return card, granted

    # writes ------------------------------------------------------------------
    async def create(self, user: User, title: str, code: str, datasets: list[str],
                     parameters: list[dict[str, Any]], tags: list[str] | None = None) -> tuple[Card, CardVersion]:
        await self._check_datasets(user, datasets, known=())
        version = _version(new_id("card"), 1, user, title, code, datasets, parameters, tags or [])
        card = Card(id=version.card_id, owner_id=user.id, current_version=1,
                    created_at=version.created_at, updated_at=version.created_at)
        try:
            await settle(self.store.create_card(card, version), lambda: self._landed(version), card_id=card.id)
        except ConflictError:  # its id is taken: by an earlier attempt of this keyed request?
            first = await self._created(user, card.id) if replayed() else None
            if first is None:
                raise
            return first
        await record(self.store, "card_created", card_id=card.id, owner_id=user.id, version=1)
        return card, version

    async def update(self, user: User, card_id: str, expected: int | None, title: str, code: str,
                     datasets: list[str], parameters: list[dict[str, Any]],
                     tags: list[str] | None = None) -> tuple[Card, CardVersion]:
        """Save a new version edited from version ``expected``; 409 if someone saved since. Without
        ``tags`` the version keeps the tags of the current one."""
        if expected is None:
            await self._authorize(user, card_id, "edit")
            raise PreconditionRequiredError(
                'Name the version you edited: send If-Match: "<version>" or a "version" field.')
        card, current = await asyncio.gather(self._authorize(user, card_id, "edit", fresh=True),  # the edited one:
                                             self.records.card_version(card_id, expected))  # current unless stale
        if expected != card.current_version:
            version = await self._own(card, expected)
        else:
            await self._check_datasets(user, datasets, known=current.datasets if current else ())
            kept = list(current.tags) if current and tags is None else tags or []
            version = _version(card.id, expected + 1, user, title, code, datasets, parameters, kept)
            async with self.records.changing("card", card.id):
                try:
                    await settle(self.store.add_card_version(version, expected), lambda: self._landed(version),
                                 card_id=card.id)
                except ConflictError:
                    latest = await self.store.get_card(card.id)
                    if latest is None:
                        raise NotFoundError("No such card.") from None
                    version = await self._own(latest, expected)
        await record(self.store, "card_updated", card_id=card.id, version=version.version, user_id=user.id)
        for listener in self.saved:
            listener(user, card.id)
        return dataclasses.replace(card, current_version=version.version, updated_at=version.created_at), version

    async def delete(self, user: User, card_id: str) -> None:
        """Delete the card, or finish a deletion cut short: a card that is gone is no error."""
        try:
            card = await self._authorize(user, card_id, "owner", fresh=True)
        except NotFoundError:
            if await self.store.get_card(card_id) is not None:
                raise
            async with self.records.changing("card", card_id):
                await self.store.delete_card(card_id)
            return
        async with self.records.changing("card", card.id):
            await self.store.delete_card(card.id, card)
        await record(self.store, "card_deleted", card_id=card.id, owner_id=card.owner_id, user_id=user.id)

    async def _created(self, user: User, card_id: str) -> tuple[Card, CardVersion] | None:
        """The card as an earlier attempt of this keyed request created it (``idempotency.new_id``), if it did."""
        version = await self.store.get_card_version(card_id, 1)
        card = await self.store.get_card(card_id) if version is not None and version.created_by == user.id else None
        if card is None or version is None:
            return None
        await self.store.relist(CatalogueGap("unlisted", CARD, card_id))  # the earlier attempt may not have listed it
        return dataclasses.replace(card, current_version=1, updated_at=version.created_at), version

    async def _own(self, card: Card, expected: int) -> CardVersion:
        """The version after ``expected`` if an earlier attempt of this keyed request saved it (its answer lost:
        ``idempotency.mark``); else the 409 of a stale edit."""
        version = await own_edit(self.store, CARD, card.id, card.current_version, expected,
                                 self.store.get_card_version)
        if version is None:
            raise _stale(card, expected)
        return version

    async def _landed(self, version: CardVersion) -> bool:
        """Whether ``version`` is stored (read back after a write whose outcome is unknown)."""
        stored = await self.store.get_card_version(version.card_id, version.version)
        return stored is not None and (stored.created_at, stored.created_by) == (version.created_at,
                                                                                 version.created_by)

    async def _check_datasets(self, user: User, datasets: list[str], known: tuple[str, ...]) -> None:
        """Datasets new to the card must be visible to ``user``; ones it already reads stay (read at once)."""
        new = [(index, dataset_id) for index, dataset_id in enumerate(datasets) if dataset_id not in known]
        found = await asyncio.gather(*(self.datasets.get_visible(user, dataset_id) for _, dataset_id in new),
                                     return_exceptions=True)
        for (index, dataset_id), dataset in zip(new, found, strict=True):
            if isinstance(dataset, NotFoundError):
                raise NotFoundError(f"There is no dataset {dataset_id} that you can read.",
                                    {"pointer": f"/datasets/{index}", "dataset_id": dataset_id})
            if isinstance(dataset, BaseException):
                raise dataset

    # reads -------------------------------------------------------------------
    async def list_visible(self, user: User) -> list[tuple[Card, CardVersion]]:
        """Cards ``user`` may see (their own; an admin all), newest first, with their current versions."""
        cards = await self.store.list_cards(None if user.role == "admin" else user.id)
        return await self.with_versions(cards)

    async def page_visible(self, user: User, query: ListQuery) -> Page[Listed[Card]]:
        """A page of the cards ``user`` may list (their own; an admin all), each with its summary."""
        scopes = (Scope("all"),) if user.role == "admin" else (Scope("owner", user.id),)
        return await self.store.page_cards(dataclasses.replace(query, scopes=scopes))

    async def with_versions(self, cards: list[Card]) -> list[tuple[Card, CardVersion]]:
        """Each card with its current version (those not kept in one batch read), in the order given; cards without
        one are left out."""
        versions = await self.records.card_versions([(c.id, c.current_version) for c in cards])
        return [(c, v) for c, v in zip(cards, versions, strict=True) if v is not None]

    async def get_visible(self, user: User, card_id: str, needed: Access = "view") -> tuple[Card, CardVersion]:
        """The card and its current version, if ``user`` may view it (or has the ``needed`` access)."""
        card = await self._authorize(user, card_id, needed)
        return card, await self._version_of(card, card.current_version)

    async def get_shown(self, user: User, card_id: str) -> tuple[Card, CardVersion, Access]:
        """The card, its current version and what ``user`` may do to it, if they may view it."""
        card, granted = await self._granted(user, card_id, "view")
        return card, await self._version_of(card, card.current_version), granted

    async def versions(self, user: User, card_id: str, query: ListQuery) -> Page[VersionStamp]:
        """A page of the card's versions, newest first."""
        card = await self._authorize(user, card_id, "view")
        return await self.store.page_card_versions(card.id, query)

    async def version(self, user: User, card_id: str, number: int) -> CardVersion:
        card = await self._authorize(user, card_id, "view")
        return await self._version_of(card, number)

    async def _version_of(self, card: Card, number: int) -> CardVersion:
        version = await self.records.card_version(card.id, number)
        if version is None:
            raise NotFoundError(f"The card has no version {number}.")
        return version


def _stale(card: Card, expected: int) -> ConflictError:
    return ConflictError(
        f"The card is at version {card.current_version}, not {expected}: someone saved it since you"
        " opened it. Reload, reapply your changes and save again.",
        {"current_version": card.current_version})


def _version(card_id: str, number: int, user: User, title: str, code: str, datasets: list[str],
             parameters: list[dict[str, Any]], tags: list[str]) -> CardVersion:
    """A checked new version: what a JSON schema cannot say about the fields is checked here."""
    if not title.strip():
        raise InvalidRequestError("/title: give the card a title.", {"pointer": "/title"})
    _check_parameters(parameters)
    version = CardVersion(card_id=card_id, version=number, title=title, code=code,
                          datasets=tuple(datasets), parameters=tuple(dict(p) for p in parameters),
                          created_at=utcnow(), created_by=user.id, tags=tuple(dict.fromkeys(tags)),
                          request_mark=mark())
    size = len(json.dumps(version.public(), ensure_ascii=False).encode())
    if size > MAX_VERSION_BYTES:
        raise PayloadTooLargeError(
            f"The card takes {size} bytes, more than the {MAX_VERSION_BYTES} a card may have;"
            " shorten its code or its parameters.", {"limit_bytes": MAX_VERSION_BYTES})
    return version


def _check_parameters(parameters: list[dict[str, Any]]) -> None:
    """Names unique and usable as Python variables, choices only on a choice and holding its
    default, dates that exist."""
    seen: set[str] = set()
    for index, parameter in enumerate(parameters):
        name, default = parameter["name"], parameter["default"]
        if name in seen:
            _invalid(index, "name", f"the name {name!r} is used by an earlier parameter; names must differ.",
                     "parameter_name_taken", name=name)
        if keyword.iskeyword(name):
            _invalid(index, "name", f"{name!r} is a Python keyword; choose another name.", "parameter_name_keyword",
                     name=name)
        seen.add(name)
        if parameter["type"] == "choice" and default not in parameter["choices"]:
            _invalid(index, "default", f"the default {default!r} is not one of the choices.",
                     "parameter_default_not_a_choice", name=name)
        if parameter["type"] != "choice" and "choices" in parameter:
            _invalid(index, "choices", "only a parameter of type choice has choices.", "parameter_choices_unexpected",
                     name=name)
        if parameter["type"] == "date":
            try:
                dt.date.fromisoformat(default)
            except ValueError:
                _invalid(index, "default", f"{default!r} is not a calendar date (YYYY-MM-DD).",
                         "parameter_date_invalid", name=name)


def _invalid(index: int, field: str, message: str, code: str, name: str) -> None:
    pointer = f"/parameters/{index}/{field}"
    raise InvalidRequestError(f"{pointer}: {message}", {"pointer": pointer, "name": name}, code=code)
