"""What the lists of cards, dashboards and datasets are read from: one entry per record, the same in every store.

An entry holds what a list sorts, filters and searches on: the owner, the title (a dataset's name), the
folded search text (title and description), the time of the last change and the facets a list filters
on (``tag`` for cards and dashboards, ``dataset`` for the datasets a card reads), and the ``summary`` a list shows
of it (``LIST_ITEM_BYTES`` at most: never a document, code or parameters). Stores write it in the same transaction
as the record it describes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..limits import LIST_DESCRIPTION_CHARS
from ..models import Card, CardVersion, Dashboard, DashboardVersion, Dataset, Permission
from ..paging import ListQuery, fold, ordered, sort_key

CARD, DASHBOARD, DATASET = "card", "dashboard", "dataset"
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    kind: str
    id: str
    owner_id: str
    title: str
    search: str
    updated_at: str
    facets: tuple[tuple[str, str], ...] = ()  # (facet, value): ("tag", "sales"), ("dataset", id)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Listed(Generic[T]):
    """A record as a list page has it: its head, its entry's ``summary`` and, on a page of a ``shared`` scope,
    the permission its share grants the reader (``shared_as``)."""

    record: T
    summary: dict[str, Any]
    shared_as: Permission | None = None


ItemMaker = Callable[[dict[str, Any], dict[str, Any], Permission | None], T]
"""How a store makes a page's item: of the record's head fields, its entry's summary and the permission a share
grants the reader (None outside a shared scope)."""


@dataclasses.dataclass(frozen=True)
class CatalogueGap:
    """Where the catalogue disagrees with a record (``bi fsck``): ``unlisted``, a record whose entry is missing
    or out of date; ``listed_orphan``, the entry of a record that is gone. ``stray``: the store's keys of list
    items the record no longer has (deleted by ``Store.relist``)."""

    problem: str
    kind: str
    id: str
    stray: tuple[tuple[str, str], ...] = ()


def card_entry(card: Card, version: CardVersion) -> CatalogEntry:
    facets = tuple(("tag", tag) for tag in version.tags) + tuple(("dataset", d) for d in version.datasets)
    return CatalogEntry(CARD, card.id, card.owner_id, version.title, fold(version.title),
                        version.created_at, facets, card_summary(version))


def dashboard_entry(dashboard: Dashboard, version: DashboardVersion) -> CatalogEntry:
    document = version.document
    title = str(document.get("title", ""))
    text = "\n".join([title, str(document.get("description", ""))])
    facets = tuple(("tag", str(tag)) for tag in dict.fromkeys(document.get("tags", ())))
    return CatalogEntry(DASHBOARD, dashboard.id, dashboard.owner_id, title, fold(text), version.created_at, facets,
                        dashboard_summary(version))


def card_summary(version: CardVersion) -> dict[str, Any]:
    """What a list shows of a card's current version: not its code or parameters (their count)."""
    return {"title": version.title, "datasets": list(version.datasets), "tags": list(version.tags),
            "parameter_count": len(version.parameters), "updated_by": version.created_by}


def dashboard_summary(version: DashboardVersion) -> dict[str, Any]:
    """What a list shows of a dashboard's current version: its title, description (cut to
    ``LIST_DESCRIPTION_CHARS``), tags and counts, not its document."""
    document = version.document
    description = str(document.get("description", ""))
    if len(description) > LIST_DESCRIPTION_CHARS:
        description = description[:LIST_DESCRIPTION_CHARS - 1] + "…"
    return {"title": str(document.get("title", "")), "description": description,
            "tags": [str(tag) for tag in document.get("tags", ())], "card_count": len(document.get("cards", ())),
            "parameter_count": len(document.get("parameters", ())), "updated_by": version.created_by}


def dataset_entry(dataset: Dataset) -> CatalogEntry:
    return CatalogEntry(DATASET, dataset.id, dataset.owner_id, dataset.name, fold(dataset.name), dataset.updated_at)


def matching(entries: list[tuple[CatalogEntry, T]], query: ListQuery, shared: set[str]) -> list[tuple[str, str, T]]:
    """The ``(sort key, id, record)`` of the entries in a scope of ``query`` that pass its filters, in its order."""
    def visible(entry: CatalogEntry) -> bool:
        return any(scope.kind == "all" or (scope.kind == "owner" and entry.owner_id == scope.user_id)
                   or (scope.kind == "shared" and entry.id in shared and entry.owner_id != scope.user_id)
                   for scope in query.scopes)

    def passes(entry: CatalogEntry) -> bool:
        return ((query.owner_id is None or entry.owner_id == query.owner_id)
                and (query.tag is None or ("tag", query.tag) in entry.facets)
                and (query.dataset_id is None or ("dataset", query.dataset_id) in entry.facets)
                and (not query.search or query.search in entry.search))

    return ordered([(sort_key(query.sort, entry.updated_at, entry.title), entry.id, record)
                    for entry, record in entries if visible(entry) and passes(entry)], query.sort)
