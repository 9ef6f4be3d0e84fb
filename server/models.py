"""Records kept by the stores. Plain frozen dataclasses, the same for every backend."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any, Literal

Role = Literal["admin", "member"]
ROLES: tuple[Role, ...] = ("admin", "member")
Locale = Literal["ja", "en"]
LOCALES: tuple[Locale, ...] = ("ja", "en")


def utcnow() -> str:
    """Now, as the ISO 8601 UTC string every record uses."""
    return iso_time(time.time())


def iso_time(epoch: float) -> str:
    """Epoch seconds as the ISO 8601 UTC string every record uses."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_seconds(timestamp: str) -> int:
    """A record's ISO 8601 UTC time as whole epoch seconds."""
    return int(dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


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
    # A deactivated user can neither sign in nor use any token.
    active: bool = True
    # Tokens carry the generation they were issued in; raising it revokes every one issued before.
    token_generation: int = 0
    # Set by an admin's password reset: the one-time password only lets the user choose a new one.
    password_change_required: bool = False

    def public(self) -> dict[str, Any]:
        """What the API shows of a user: never the password hash."""
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role,
                "locale": self.locale, "active": self.active,
                "password_change_required": self.password_change_required, "created_at": self.created_at}


@dataclasses.dataclass(frozen=True)
class SignInSession:
    """One sign-in of one browser or client: the server side of its refresh token.

    The refresh token names the session and its ``rotation``; each refresh moves the session to the
    next rotation, and a token of an earlier rotation coming back (a stolen copy) ends the session.
    Valid while the user's ``token_generation`` is still ``generation``, until ``expires_at``.
    """

    id: str
    user_id: str
    rotation: int
    generation: int
    created_at: str
    expires_at: str


@dataclasses.dataclass(frozen=True)
class PersonalToken:
    """A personal access token for Jupyter clients; only a hash of its secret is kept.

    Valid while the user's ``token_generation`` is still ``generation``, until ``expires_at``.
    """

    id: str
    user_id: str
    name: str
    secret_hash: str
    generation: int
    created_at: str
    expires_at: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at, "expires_at": self.expires_at}


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
    stored_bytes: int = 0  # its Parquet file; 0 for versions stored before this was recorded
    request_mark: str = ""  # the keyed request that wrote it (``services/idempotency.mark``)

    @property
    def charged_bytes(self) -> int:
        """What the version counts against its owner's dataset storage quota: its Parquet file (the uploaded
        CSV for a version stored before that size was recorded, which is no smaller)."""
        return self.stored_bytes or self.bytes

    def public(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "row_count": self.row_count,
            "columns": [dataclasses.asdict(c) for c in self.columns],
            "bytes": self.bytes,
            "stored_bytes": self.charged_bytes,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }

    def summary(self) -> dict[str, Any]:
        """``public`` with the number of columns in place of the columns: what lists answer."""
        fields = self.public()
        del fields["columns"]
        return {**fields, "column_count": len(self.columns)}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A named dataset; ``current_version`` is the number of its newest version. ``aliases`` are the names it
    had before a rename, oldest first: ``load_dataset`` still finds it under them (a saved card keeps working)."""

    id: str
    owner_id: str
    name: str
    current_version: int
    created_at: str
    updated_at: str
    aliases: tuple[str, ...] = ()

    def renamed(self, name: str) -> Dataset:
        """The dataset called ``name``, its current name kept as its newest alias (``name`` no longer one)."""
        aliases = tuple(alias for alias in dict.fromkeys((*self.aliases, self.name)) if alias != name)
        return dataclasses.replace(self, name=name, aliases=aliases)


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
    request_mark: str = ""  # the keyed request that wrote it (``services/idempotency.mark``)

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
class Lease:
    """The right to do a piece of work that must happen once (a scheduled refresh round, a re-run on new
    data), held by one API task until ``expires_at`` (seconds since the epoch) unless renewed.

    ``version`` goes up by one with every new holder: writes made under the lease are conditional on it
    (a fencing token), so a holder that was paused past the expiry, while another took over, cannot write.
    A finished lease (``done``) stays taken until it expires: the work is not done again before then.
    """

    name: str
    holder: str
    version: int
    expires_at: float
    done: bool = False


@dataclasses.dataclass(frozen=True)
class KernelRecord:
    """A card session's or Jupyter kernel's kernel, as any API task needs it to reattach when the one that
    held it is gone: whose it is, on which agent, and the relay's connection info (``connection``, JSON,
    without its key). Its HMAC key is only here sealed (``kernel_keys``: ``key_id``, ``sealed_key``).
    ``datasets`` (JSON ``[[name, file], ...]``) and ``grant`` (JSON ``{"dataset_ids", "card_id"}``) are what
    the session was opened on; the record is kept until the session closes or ``expires_at``. ``holder`` is
    the task that holds the session now (``KernelRecords.holder``): the last to open or reattach to it, and
    the only one that may end it (``Store.delete_kernel_record``). ``notebooks`` (JSON ``[{"id", "path", "name",
    "type"}, ...]``) are the Jupyter Server sessions bound to a Jupyter kernel, so any task lists them: only
    ``Store.set_kernel_notebooks`` writes them (a record put again keeps them)."""

    id: str  # the session's (a card session's, or a Jupyter kernel's id)
    kind: str  # "card" or "jupyter"
    user_id: str
    agent_url: str
    agent_id: str
    kernel_id: str
    memory_mb: int
    connection: str
    key_id: str
    sealed_key: str
    datasets: str
    grant: str
    created_at: str
    expires_at: str
    holder: str = ""
    notebooks: str = "[]"


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
    ``pinned``: the current output of a dashboard tile. With ``result_key`` the blob is not a table but the
    outputs of that result cache entry, charged the same way (never paged; deleted with the entry).
    """

    output_id: str
    blob_key: str
    user_id: str
    card_id: str | None
    created_at: str
    bytes: int = 0
    last_used: str = ""
    pinned: bool = False
    result_key: str | None = None


Permission = Literal["view", "edit"]


@dataclasses.dataclass(frozen=True)
class VersionStamp:
    """What a list of a card's or dashboard's versions shows of one: its number, who saved it and when, and a
    card version's title; never its code, parameters or document (``GET`` the version for those)."""

    version: int
    created_at: str
    created_by: str
    title: str | None = None

    def public(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}


def card_ids(document: dict[str, Any]) -> set[str]:
    """The ids of the saved cards a dashboard document holds."""
    return {entry["card"] for entry in document.get("cards", []) if "card" in entry}


def refresh_seconds(document: dict[str, Any]) -> int | None:
    """The refresh period of a dashboard document, if it has a refresh."""
    refresh = document.get("refresh")
    return int(refresh["every_seconds"]) if refresh else None


@dataclasses.dataclass(frozen=True)
class RefreshSchedule:
    """A dashboard with a refresh: its rounds start every ``every_seconds`` from ``created_at``."""

    dashboard_id: str
    every_seconds: int
    created_at: str


@dataclasses.dataclass(frozen=True)
class DashboardVersion:
    """One immutable save of a dashboard: its document (``dashboards_spec``, cards by uid)."""

    dashboard_id: str
    version: int
    document: dict[str, Any]
    created_at: str
    created_by: str
    request_mark: str = ""  # the keyed request that wrote it (``services/idempotency.mark``)

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
class IdempotentAnswer:
    """The answer to a create or save sent with an ``Idempotency-Key``: a retry with the key gets it again
    until ``expires_at`` (``handlers/idempotency.py``)."""

    key: str  # a digest of the caller, the method, the path and the key
    fingerprint: str  # a digest of the request body: the same key with another body is refused
    status: int
    headers: str  # JSON: the Location and ETag headers answered
    body: str
    expires_at: str


@dataclasses.dataclass(frozen=True)
class Share:
    """``user_id`` may view or edit the dashboard (and so run, or change, its cards)."""

    dashboard_id: str
    user_id: str
    permission: Permission
    created_at: str
    created_by: str


@dataclasses.dataclass(frozen=True)
class AuditEvent:
    """One entry of the audit trail: ``event`` (``login_success``, ``dashboard_shared``, ...) at ``at``, about
    ``user_id`` (its acting user, or the user it names), with the rest of its keys in ``fields``.

    ``key`` (``<at>#<id>``) orders the trail: it is unique, and sorts as ``at`` does.
    """

    id: str
    at: str
    event: str
    user_id: str | None
    fields: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.at}#{self.id}"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "event": self.event, "user_id": self.user_id, **self.fields}


@dataclasses.dataclass(frozen=True)
class AuditQuery:
    """A page of the trail, newest first: ``since <= at < until``, of one user and/or one event, with keys
    before ``before`` (the last key of the previous page), at most ``limit`` entries."""

    limit: int
    since: str | None = None
    until: str | None = None
    user_id: str | None = None
    event: str | None = None
    before: str | None = None
