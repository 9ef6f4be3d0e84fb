"""The one storage interface every backend implements.

Metadata lives in the table store, blobs (Parquet files, large outputs) in the
object store. Callers write a blob before the record that points to it and
delete records before their blobs, so a crash leaves at most an orphan blob,
never a dangling record. Writes that can race are conditional: they raise
``ConflictError`` instead of overwriting.

Every method is a coroutine; backends run their blocking client code in
threads so the event loop never waits on disk or network.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import dataclasses
import datetime as dt
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from traitlets import Integer, MetaHasTraits, Unicode, default
from traitlets.config import LoggingConfigurable

from ..environment import setting
from ..errors import NotFoundError
from ..limits import AUDIT_RETENTION_DAYS, PAGE_SIZE_MAX
from ..models import (AuditEvent, AuditQuery, CachedResult, Card, CardVersion, Dashboard, DashboardVersion, Dataset,
                      DatasetVersion, IdempotentAnswer, KernelRecord, Lease, OutputTable, PersonalToken,
                      RefreshSchedule, Share, SignInSession, User, VersionStamp)
from ..paging import ListQuery, Page, Scope
from .catalog import CatalogueGap, Listed

# An expired lease's record (and so its version count) is deleted this long after it expired.
LEASE_KEPT_SECONDS = 86400
# Cards read per page when an index is walked to its end (``dashboards_reading``).
INDEX_PAGE = 100

# The user fields a user may change on themselves (``PATCH /api/me``).
PROFILE_FIELDS = ("name", "locale")
# The user fields ``update_user`` sets (the id, email, creation time and token generation stay).
USER_FIELDS = ("name", "locale", "role", "active", "password_hash", "password_change_required")


# The API request a store call serves (its request id), set by the API handler: idempotency tokens
# the store sends (DynamoDB's ClientRequestToken) derive from it and the write.
request_scope: contextvars.ContextVar[str] = contextvars.ContextVar("request_scope", default="")


@dataclasses.dataclass(frozen=True)
class SharesPage:
    """A page of a dashboard's shares with their grantees (None: a user since deleted), as ``read_shares_page``
    reads it with the dashboard (None: there is none) and its reader's own share."""

    dashboard: Dashboard | None
    own: Share | None
    page: Page[tuple[Share, User | None]]


def blob_prefix(prefix: str) -> str:
    """``prefix`` if it names a directory of plain names (``datasets/<id>/``); ``NotFoundError`` if not."""
    parts = prefix.split("/")
    if parts[-1] != "" or any(part in ("", ".", "..") or "\0" in part for part in parts[:-1]):
        raise NotFoundError(f"No blobs under {prefix!r}.")
    return prefix


class _StoreMeta(abc.ABCMeta, MetaHasTraits):
    """Lets a traitlets configurable have abstract methods."""


class Store(LoggingConfigurable, metaclass=_StoreMeta):
    """Abstract store. ``data_dir`` holds local state (the SQLite file, blob cache, temp files)."""

    data_dir = Unicode(help="Directory for local state; set by the application.").tag(config=False)
    audit_retention_days = Integer(AUDIT_RETENTION_DAYS, min=1, help="Days audit events are kept "
                                   "(BI_AUDIT_RETENTION_DAYS); older ones are deleted (DynamoDB: TTL).").tag(config=True)

    @default("audit_retention_days")
    def _default_audit_retention_days(self) -> int:
        return int(setting("BI_AUDIT_RETENTION_DAYS", str(AUDIT_RETENTION_DAYS)))

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.failed: list[Callable[[str], None]] = []  # told why each call failed after its retries
        self.retried: list[Callable[[str], None]] = []  # told the service of each failed attempt the SDK retries

    # lifecycle ---------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and create local files on first use. Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. Idempotent; later calls raise ``StoreClosedError``."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """One cheap call that proves the store answers (readiness checks); raises if it does not."""

    @abc.abstractmethod
    async def create_schema(self, tables: bool = True, buckets: bool = True) -> None:
        """Create tables and buckets (either alone, if asked) if missing. Idempotent (``bi init-tables``)."""

    # users -------------------------------------------------------------------
    @abc.abstractmethod
    async def create_user(self, user: User) -> None:
        """Add a user. ``ConflictError`` if the email is taken."""

    @abc.abstractmethod
    async def get_user(self, user_id: str) -> User | None: ...

    async def get_users(self, user_ids: list[str]) -> list[User | None]:
        """The users of ``user_ids``, in order (None where missing): what a page names, read in one go where
        the backend can (DynamoDB: BatchGetItem)."""
        return list(await asyncio.gather(*(self.get_user(user_id) for user_id in user_ids)))

    @abc.abstractmethod
    async def get_user_by_email(self, email: str) -> User | None: ...

    @abc.abstractmethod
    async def page_users(self, query: ListQuery) -> Page[User]:
        """One page of users, newest first (ties by id); reads at most ``limit + 1``."""

    async def list_users(self) -> list[User]:
        """Every user, newest first, page after page (an existence check needs only ``page_users``)."""
        users: list[User] = []
        query = ListQuery((), limit=PAGE_SIZE_MAX)
        while True:
            page = await self.page_users(query)
            users += page.items
            if page.next is None:
                return users
            query = dataclasses.replace(query, after=page.next)

    @abc.abstractmethod
    async def update_user(self, user_id: str, changes: dict[str, Any], revoke_tokens: bool = False) -> User | None:
        """Set the ``USER_FIELDS`` in ``changes`` and, with ``revoke_tokens``, raise the user's
        ``token_generation`` by one, in one write; the user afterwards, or None (nothing written)
        if there is no such user."""

    async def update_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace a user's hash (rehash on login when the KDF parameters change)."""
        await self.update_user(user_id, {"password_hash": password_hash})

    async def update_profile(self, user_id: str, changes: dict[str, str]) -> None:
        """Set the ``PROFILE_FIELDS`` in ``changes`` (name, locale); a missing user stays missing."""
        await self.update_user(user_id, {name: changes[name] for name in PROFILE_FIELDS if name in changes})

    # sign-in sessions and personal tokens ------------------------------------
    @abc.abstractmethod
    async def put_sign_in_session(self, session: SignInSession) -> None:
        """Add a session (a new sign-in)."""

    @abc.abstractmethod
    async def get_sign_in_session(self, session_id: str) -> SignInSession | None: ...

    @abc.abstractmethod
    async def rotate_sign_in_session(self, session_id: str, rotation: int) -> bool:
        """Move the session from ``rotation`` to the next; False (nothing written) if it is gone or has
        already moved on, so that two refreshes with one token never both succeed."""

    @abc.abstractmethod
    async def delete_sign_in_session(self, session_id: str) -> None:
        """End a session; a missing one is not an error."""

    @abc.abstractmethod
    async def put_personal_token(self, token: PersonalToken) -> None:
        """Add a personal access token."""

    @abc.abstractmethod
    async def get_personal_token(self, token_id: str) -> PersonalToken | None: ...

    @abc.abstractmethod
    async def list_personal_tokens(self, user_id: str) -> list[PersonalToken]:
        """The user's personal access tokens, oldest first (a query, never a scan)."""

    @abc.abstractmethod
    async def delete_personal_token(self, token_id: str) -> None:
        """Delete a personal access token; a missing one is not an error."""

    # datasets ----------------------------------------------------------------
    @abc.abstractmethod
    async def create_dataset(self, dataset: Dataset, version: DatasetVersion) -> None:
        """Add a dataset with its first version. ``ConflictError`` if the owner has one of that name."""

    @abc.abstractmethod
    async def add_dataset_version(self, version: DatasetVersion, expected_current: int) -> None:
        """Add ``version`` (numbered ``expected_current + 1``) and make it current.

        ``ConflictError`` if the dataset's current version is no longer ``expected_current``;
        ``NotFoundError`` if the dataset is gone.
        """

    @abc.abstractmethod
    async def get_dataset(self, dataset_id: str) -> Dataset | None: ...

    async def get_datasets(self, dataset_ids: list[str]) -> list[Dataset | None]:
        """The datasets of ``dataset_ids``, as ``get_users``."""
        return list(await asyncio.gather(*(self.get_dataset(dataset_id) for dataset_id in dataset_ids)))

    @abc.abstractmethod
    async def list_datasets(self, owner_id: str | None = None) -> list[Dataset]:
        """Datasets of ``owner_id``, or all when ``None``; newest first."""

    @abc.abstractmethod
    async def get_dataset_version(self, dataset_id: str, version: int) -> DatasetVersion | None: ...

    async def get_dataset_versions(self, keys: list[tuple[str, int]]) -> list[DatasetVersion | None]:
        """The versions named by (dataset id, number), as ``get_users``."""
        return list(await asyncio.gather(*(self.get_dataset_version(*key) for key in keys)))

    @abc.abstractmethod
    async def page_dataset_versions(self, dataset_id: str, query: ListQuery) -> Page[DatasetVersion]:
        """One page of the dataset's versions, newest first; reads at most ``limit + 1``."""

    @abc.abstractmethod
    async def list_dataset_versions(self, dataset_id: str) -> list[DatasetVersion]:
        """Versions of a dataset, oldest first."""

    @abc.abstractmethod
    async def rename_dataset(self, dataset_id: str, name: str, expected_name: str) -> Dataset:
        """Call the dataset ``name``, its name ``expected_name`` kept as an alias (``Dataset.renamed``), and return
        it. ``ConflictError`` if it is no longer called ``expected_name``, or (code ``dataset_name_taken``) if its
        owner has another dataset called ``name``; ``NotFoundError`` if it is gone."""

    @abc.abstractmethod
    async def delete_dataset(self, dataset_id: str) -> list[DatasetVersion]:
        """Delete the dataset's records (not its blobs) and return the versions it had."""

    # cards -------------------------------------------------------------------
    @abc.abstractmethod
    async def create_card(self, card: Card, version: CardVersion) -> None:
        """Add a card with its first version. ``ConflictError`` if the id is taken."""

    @abc.abstractmethod
    async def add_card_version(self, version: CardVersion, expected_current: int) -> None:
        """Add ``version`` (numbered ``expected_current + 1``) and make it current.

        ``ConflictError`` (with ``current_version`` in its details when known) if the card's
        current version is no longer ``expected_current``; ``NotFoundError`` if the card is gone.
        """

    @abc.abstractmethod
    async def get_card(self, card_id: str) -> Card | None: ...

    @abc.abstractmethod
    async def list_cards(self, owner_id: str | None = None) -> list[Card]:
        """Cards of ``owner_id``, or all when ``None``; newest first."""

    @abc.abstractmethod
    async def get_card_version(self, card_id: str, version: int) -> CardVersion | None: ...

    async def get_card_versions(self, keys: list[tuple[str, int]]) -> list[CardVersion | None]:
        """The versions named by (card id, number), as ``get_users``."""
        return list(await asyncio.gather(*(self.get_card_version(*key) for key in keys)))

    @abc.abstractmethod
    async def page_card_versions(self, card_id: str, query: ListQuery) -> Page[VersionStamp]:
        """One page of the card's versions (stamps: no code or parameters are read), newest first; reads at most
        ``limit + 1``."""

    @abc.abstractmethod
    async def list_card_versions(self, card_id: str) -> list[CardVersion]:
        """Versions of a card, oldest first."""

    @abc.abstractmethod
    async def delete_card(self, card_id: str, head: Card | None = None) -> None:
        """Delete the card and its versions; a missing card is not an error. ``head``: the card as the caller read
        it (what points at it, its owner, never changes), so that it is not read again."""

    # dashboards ----------------------------------------------------------------
    @abc.abstractmethod
    async def create_dashboard(self, dashboard: Dashboard, version: DashboardVersion) -> None:
        """Add a dashboard with its first version. ``ConflictError`` if its uid is taken."""

    @abc.abstractmethod
    async def add_dashboard_version(self, version: DashboardVersion, expected_current: int) -> None:
        """As ``add_card_version``, for a dashboard."""

    @abc.abstractmethod
    async def get_dashboard(self, dashboard_id: str) -> Dashboard | None: ...

    @abc.abstractmethod
    async def get_dashboard_by_uid(self, uid: str) -> Dashboard | None: ...

    @abc.abstractmethod
    async def list_dashboards(self, owner_id: str | None = None) -> list[Dashboard]:
        """Dashboards of ``owner_id``, or all when ``None``; newest first."""

    @abc.abstractmethod
    async def dashboards_with_card(self, card_id: str) -> list[Dashboard]:
        """The dashboards whose current version holds the card (an index kept with every save, never a read of
        every document). On DynamoDB, where the index is written beside the save, a dashboard may be named that no
        longer holds it: callers check the current version."""

    async def dashboards_reading(self, dataset_id: str) -> list[Dashboard]:
        """The dashboards that hold a card whose current version reads ``dataset_id``: the catalogue's dataset
        facet and ``dashboards_with_card``, never a read of every document. Either index may name one too many:
        callers check the current versions."""
        found: dict[str, Dashboard] = {}
        query = ListQuery((Scope("all"),), limit=INDEX_PAGE, dataset_id=dataset_id)
        while True:
            page = await self.page_cards(query)
            for listed in page.items:
                for dashboard in await self.dashboards_with_card(listed.record.id):
                    found.setdefault(dashboard.id, dashboard)
            if page.next is None:
                return sorted(found.values(), key=lambda dashboard: dashboard.id)
            query = dataclasses.replace(query, after=page.next)

    @abc.abstractmethod
    async def refresh_schedules(self) -> list[RefreshSchedule]:
        """Every dashboard whose current version has a refresh (an index kept with every save, never a read of
        every document). On DynamoDB one may be named whose refresh was just removed: callers check the current
        version when a round is due."""

    @abc.abstractmethod
    async def get_dashboard_version(self, dashboard_id: str, version: int) -> DashboardVersion | None: ...

    async def get_dashboard_versions(self, keys: list[tuple[str, int]]) -> list[DashboardVersion | None]:
        """The versions named by (dashboard id, number), as ``get_users``."""
        return list(await asyncio.gather(*(self.get_dashboard_version(*key) for key in keys)))

    @abc.abstractmethod
    async def page_dashboard_versions(self, dashboard_id: str, query: ListQuery) -> Page[VersionStamp]:
        """One page of the dashboard's versions (stamps: no document is read), newest first; reads at most
        ``limit + 1``."""

    @abc.abstractmethod
    async def list_dashboard_versions(self, dashboard_id: str) -> list[DashboardVersion]:
        """Versions of a dashboard, oldest first."""

    @abc.abstractmethod
    async def delete_dashboard(self, dashboard_id: str, head: Dashboard | None = None) -> None:
        """Delete the dashboard, its versions and its shares; a missing one is not an error. ``head``: as for
        ``delete_card`` (its owner and uid never change)."""

    # shares --------------------------------------------------------------------
    @abc.abstractmethod
    async def put_share(self, share: Share) -> None:
        """Grant ``share``, replacing the grantee's earlier permission on that dashboard."""

    @abc.abstractmethod
    async def delete_share(self, dashboard_id: str, user_id: str) -> bool:
        """Revoke; False if there was nothing to revoke."""

    @abc.abstractmethod
    async def list_shares(self, dashboard_id: str) -> list[Share]:
        """The dashboard's shares, oldest first."""

    @abc.abstractmethod
    async def page_shares(self, dashboard_id: str, query: ListQuery) -> Page[Share]:
        """One page of the dashboard's shares, the newest grant first (ties by user id); reads at most
        ``limit + 1``."""

    @abc.abstractmethod
    async def get_share(self, dashboard_id: str, user_id: str) -> Share | None:
        """What the dashboard grants ``user_id``, if it is shared with them."""

    async def read_shares_page(self, dashboard_id: str, reader_id: str, query: ListQuery) -> SharesPage:
        """A page of the dashboard's shares (``page_shares``) with their grantees, and what decides whether
        ``reader_id`` may read it: the dashboard's record and the reader's own share."""
        page, dashboard, own = await asyncio.gather(self.page_shares(dashboard_id, query),
                                                    self.get_dashboard(dashboard_id), self.get_share(dashboard_id, reader_id))
        grantees = await self.get_users([share.user_id for share in page.items])
        return SharesPage(dashboard, own, Page(list(zip(page.items, grantees, strict=True)), page.next, page.total))

    @abc.abstractmethod
    async def list_user_shares(self, user_id: str) -> list[Share]:
        """What is shared with ``user_id``, oldest first."""

    # pages of the catalogue (``paging``, ``storage/catalog.py``) -----------------
    @abc.abstractmethod
    async def page_cards(self, query: ListQuery) -> Page[Listed[Card]]:
        """One page of cards, each with its entry's summary (never its versions); reads at most ``limit + 1``
        entries per scope of ``query`` (outside search)."""

    @abc.abstractmethod
    async def page_dashboards(self, query: ListQuery) -> Page[Listed[Dashboard]]:
        """One page of dashboards, as ``page_cards``."""

    @abc.abstractmethod
    async def page_datasets(self, query: ListQuery) -> Page[Dataset]:
        """One page of datasets, as ``page_cards``."""

    # result cache ------------------------------------------------------------
    @abc.abstractmethod
    async def get_cached_result(self, key: str) -> CachedResult | None: ...

    @abc.abstractmethod
    async def put_cached_result(self, result: CachedResult, fence: Lease | None = None) -> None:
        """Store ``result`` under its key; a result already there for the key is replaced. With a
        ``fence``, only while that lease is still held (same version, unexpired, not finished):
        ``LeaseLostError`` otherwise, and nothing is written."""

    @abc.abstractmethod
    async def list_cached_results(self, variant: str) -> list[CachedResult]:
        """The results of one ``variant`` (card and parameter values), newest first."""

    @abc.abstractmethod
    async def delete_cached_result(self, key: str) -> None:
        """Delete the record (not its blob); a missing one is not an error."""

    # leases ------------------------------------------------------------------
    @abc.abstractmethod
    async def acquire_lease(self, name: str, holder: str, until: float) -> Lease | None:
        """Take the lease ``name`` for ``holder`` until ``until`` (epoch seconds), with the next version,
        if nobody holds it: never taken, or expired. None if it is held or finished and unexpired."""

    @abc.abstractmethod
    async def renew_lease(self, lease: Lease, until: float) -> Lease:
        """Keep holding ``lease`` until ``until``; ``LeaseLostError`` if it expired or has another version."""

    @abc.abstractmethod
    async def finish_lease(self, lease: Lease, until: float) -> None:
        """Mark the work under ``lease`` done: nobody takes the lease again before ``until``.
        ``LeaseLostError`` (and nothing written) if it is no longer held."""

    @abc.abstractmethod
    async def get_lease(self, name: str) -> Lease | None:
        """The lease ``name`` as stored (held, finished or expired), or None."""

    # kernel records ----------------------------------------------------------
    @abc.abstractmethod
    async def put_kernel_record(self, record: KernelRecord) -> None:
        """Add or replace the record of a session's kernel (``record.id``: the session's), keeping the
        ``notebooks`` it has (a new one has none)."""

    @abc.abstractmethod
    async def get_kernel_record(self, record_id: str) -> KernelRecord | None:
        """The record, or None if there is none or it expired."""

    @abc.abstractmethod
    async def list_kernel_records(self, user_id: str, kind: str) -> list[KernelRecord]:
        """The user's unexpired records of ``kind`` (on DynamoDB from an index: one written a moment ago
        may be missing)."""

    @abc.abstractmethod
    async def set_kernel_notebooks(self, record_id: str, notebooks: str) -> bool:
        """Replace the record's ``notebooks``; False (nothing written) if there is no such unexpired record."""

    @abc.abstractmethod
    async def delete_kernel_record(self, record_id: str, holder: str) -> bool:
        """Forget the record (its session closed) if ``holder`` holds it, or it is missing (True); False, and
        nothing deleted, if another task holds it now."""

    # output tables -----------------------------------------------------------
    @abc.abstractmethod
    async def put_output_table(self, table: OutputTable) -> None: ...

    @abc.abstractmethod
    async def get_output_table(self, output_id: str) -> OutputTable | None: ...

    @abc.abstractmethod
    async def list_output_tables(self, user_id: str) -> list[OutputTable]:
        """The tables charged to ``user_id``, least recently used first (a query, never a scan)."""

    @abc.abstractmethod
    async def update_output_table(self, output_id: str, last_used: str | None = None,
                                  pinned: bool | None = None) -> None:
        """Set the table's ``last_used`` and/or ``pinned``; a missing table stays missing."""

    @abc.abstractmethod
    async def delete_output_table(self, output_id: str) -> None:
        """Delete the record (not its blob); a missing one is not an error."""

    # audit trail -------------------------------------------------------------
    def audit_expiry(self, event: AuditEvent) -> int:
        """When ``event`` expires, in seconds since the epoch: ``audit_retention_days`` after its time."""
        at = dt.datetime.fromisoformat(event.at.replace("Z", "+00:00"))
        return int((at + dt.timedelta(days=self.audit_retention_days)).timestamp())

    async def put_audit_event(self, event: AuditEvent) -> None:
        """Append ``event``; it is deleted ``audit_retention_days`` after its time. Never updated."""
        await self.put_audit_events([event])

    @abc.abstractmethod
    async def put_audit_events(self, events: list[AuditEvent]) -> None:
        """Append ``events`` (as ``put_audit_event``), in as few calls as the store allows."""

    @abc.abstractmethod
    async def list_audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        """The events ``query`` asks for, newest (greatest key) first, at most ``query.limit`` (a Query by
        time, user or event, never a Scan); expired ones are left out."""

    # idempotent answers ------------------------------------------------------
    @abc.abstractmethod
    async def put_idempotent_answer(self, answer: IdempotentAnswer) -> None:
        """Keep ``answer`` under its key until it expires (replacing one there); expired ones may go now."""

    @abc.abstractmethod
    async def get_idempotent_answer(self, key: str, now: str) -> IdempotentAnswer | None:
        """The answer kept under ``key``, unless it expired before ``now``."""

    # blobs -------------------------------------------------------------------
    @abc.abstractmethod
    async def put_blob(self, key: str, source: Path) -> None:
        """Store the file ``source`` under ``key``, streaming it. Keys are never overwritten."""

    @abc.abstractmethod
    async def blob_path(self, key: str) -> Path:
        """A local, read-only path to the blob (fetched into a cache when remote).

        ``NotFoundError`` if there is no such blob.
        """

    @abc.abstractmethod
    async def delete_blob(self, key: str) -> None:
        """Delete a blob; a missing one is not an error."""

    @abc.abstractmethod
    async def list_blobs(self, prefix: str) -> list[tuple[str, float]]:
        """The blobs under ``prefix`` (which names a directory: it ends in ``/``), sorted by key: each key
        with when it was stored (seconds since the epoch). ``NotFoundError`` for a prefix with an empty,
        ``.``, ``..`` or NUL part (``blob_prefix``)."""

    # batches: many records in one round trip (a page's versions, a dashboard's cards) -------
    @abc.abstractmethod
    async def get_cards(self, card_ids: Collection[str]) -> list[Card]:
        """The cards of ``card_ids`` that exist, in no particular order."""

    # repair --------------------------------------------------------------------
    @abc.abstractmethod
    async def catalogue_gaps(self) -> list[CatalogueGap]:
        """Where the catalogue (the lists) disagrees with the records: records without their entry (or with an
        out-of-date one), entries of records that are gone (a write or deletion cut short)."""

    @abc.abstractmethod
    async def relist(self, gap: CatalogueGap) -> None:
        """Make the catalogue agree with the record of ``gap`` as it is now (write its entry, or delete it)."""

    @abc.abstractmethod
    async def list_headless(self) -> list[tuple[str, str]]:
        """Records whose head is gone but whose versions are not (a deletion cut short): (noun, id) each,
        for ``delete_dataset``, ``delete_card`` or ``delete_dashboard`` to finish; and ("share",
        dashboard id) for shares of a dashboard that is gone."""
