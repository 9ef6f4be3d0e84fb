"""Records kept by the stores. Plain frozen dataclasses, the same for every backend."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Literal

Role = Literal["admin", "member"]
ROLES: tuple[Role, ...] = ("admin", "member")
Locale = Literal["ja", "en"]
LOCALES: tuple[Locale, ...] = ("ja", "en")


def utcnow() -> str:
    """Now, as the ISO 8601 UTC string every record uses."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces."""
    return email.strip().lower()


@dataclasses.dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    role: Role
    password_hash: str
    created_at: str
    # The UI language the user chose; None until they choose (the UI follows the browser meanwhile).
    locale: Locale | None = None

    def public(self) -> dict[str, Any]:
        """What the API shows of a user: never the password hash."""
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role,
                "locale": self.locale, "created_at": self.created_at}


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclasses.dataclass(frozen=True)
class DatasetVersion:
    """One immutable upload of a dataset; ``blob_key`` names its Parquet file in the blob store."""

    dataset_id: str
    version: int
    blob_key: str
    row_count: int
    columns: tuple[Column, ...]
    bytes: int
    encoding: str
    delimiter: str
    created_at: str
    created_by: str

    def public(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "row_count": self.row_count,
            "columns": [dataclasses.asdict(c) for c in self.columns],
            "bytes": self.bytes,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A named dataset; ``current_version`` is the number of its newest version."""

    id: str
    owner_id: str
    name: str
    current_version: int
    created_at: str
    updated_at: str


@dataclasses.dataclass(frozen=True)
class CardVersion:
    """One immutable save of a card: its title, code, the dataset ids it reads, its parameters and tags.

    A parameter is ``{"name", "type": "text" | "number" | "date" | "choice", "default"}`` with
    ``"choices"`` for a choice and an optional ``"label"``.
    """

    card_id: str
    version: int
    title: str
    code: str
    datasets: tuple[str, ...]
    parameters: tuple[dict[str, Any], ...]
    created_at: str
    created_by: str
    tags: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "title": self.title,
            "code": self.code,
            "datasets": list(self.datasets),
            "parameters": [dict(p) for p in self.parameters],
            "tags": list(self.tags),
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclasses.dataclass(frozen=True)
class Card:
    """A card; ``current_version`` is the number of its newest version."""

    id: str
    owner_id: str
    current_version: int
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "owner_id": self.owner_id, "created_at": self.created_at,
                "updated_at": self.updated_at}


@dataclasses.dataclass(frozen=True)
class CachedResult:
    """A card run's result, by cache key (``services/card_runs.py``); the outputs are the blob ``blob_key``.

    ``variant`` names the card and parameter values (entries of one variant differ in code, data or
    kernel version; the newest few are kept); ``output_ids`` are the tables its outputs page from.
    """

    key: str
    blob_key: str
    card_id: str
    status: str
    execution_time_ms: int
    created_at: str
    variant: str = ""
    output_ids: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class OutputTable:
    """The whole table behind a DataFrame output (an Arrow stream, the blob ``blob_key``).

    Readable by admins and, for a saved card's run, by whoever may view ``card_id`` now, else by ``user_id``.
    Its ``bytes`` count against ``user_id``'s quota, least recently used (``last_used``) first, unless
    ``pinned``: the current output of a dashboard tile.
    """

    output_id: str
    blob_key: str
    user_id: str
    card_id: str | None
    created_at: str
    bytes: int = 0
    last_used: str = ""
    pinned: bool = False


Permission = Literal["view", "edit"]


@dataclasses.dataclass(frozen=True)
class DashboardVersion:
    """One immutable save of a dashboard: its document (``dashboards_spec``, cards by uid)."""

    dashboard_id: str
    version: int
    document: dict[str, Any]
    created_at: str
    created_by: str

    def public(self) -> dict[str, Any]:
        return {"version": self.version, "document": self.document, "created_at": self.created_at,
                "created_by": self.created_by}


@dataclasses.dataclass(frozen=True)
class Dashboard:
    """A dashboard; ``uid`` is its document's stable uid, ``current_version`` its newest version."""

    id: str
    uid: str
    owner_id: str
    current_version: int
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "uid": self.uid, "owner_id": self.owner_id, "created_at": self.created_at,
                "updated_at": self.updated_at}


@dataclasses.dataclass(frozen=True)
class Share:
    """``user_id`` may view or edit the dashboard (and so run, or change, its cards)."""

    dashboard_id: str
    user_id: str
    permission: Permission
    created_at: str
    created_by: str
