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
from pathlib import Path

from traitlets import MetaHasTraits, Unicode
from traitlets.config import LoggingConfigurable

from ..models import (CachedResult, Card, CardVersion, Dashboard, DashboardVersion, Dataset, DatasetVersion,
                      OutputTable, Share, User)
from ..paging import ListQuery, Page

# The user fields a user may change on themselves (``PATCH /api/me``).
PROFILE_FIELDS = ("name", "locale")


class _StoreMeta(abc.ABCMeta, MetaHasTraits):
    """Lets a traitlets configurable have abstract methods."""


class Store(LoggingConfigurable, metaclass=_StoreMeta):
    """Abstract store. ``data_dir`` holds local state (the SQLite file, blob cache, temp files)."""

    data_dir = Unicode(help="Directory for local state; set by the application.").tag(config=False)

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

    @abc.abstractmethod
    async def get_user_by_email(self, email: str) -> User | None: ...

    @abc.abstractmethod
    async def list_users(self) -> list[User]:
        """All users, oldest first."""

    @abc.abstractmethod
    async def update_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace a user's hash (rehash on login when the KDF parameters change)."""

    @abc.abstractmethod
    async def update_profile(self, user_id: str, changes: dict[str, str]) -> None:
        """Set the ``PROFILE_FIELDS`` in ``changes`` (name, locale); a missing user stays missing."""

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

    @abc.abstractmethod
    async def list_datasets(self, owner_id: str | None = None) -> list[Dataset]:
        """Datasets of ``owner_id``, or all when ``None``; newest first."""

    @abc.abstractmethod
    async def get_dataset_version(self, dataset_id: str, version: int) -> DatasetVersion | None: ...

    @abc.abstractmethod
    async def list_dataset_versions(self, dataset_id: str) -> list[DatasetVersion]:
        """Versions of a dataset, oldest first."""

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

    @abc.abstractmethod
    async def list_card_versions(self, card_id: str) -> list[CardVersion]:
        """Versions of a card, oldest first."""

    @abc.abstractmethod
    async def delete_card(self, card_id: str) -> None:
        """Delete the card and its versions; a missing card is not an error."""

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
    async def get_dashboard_version(self, dashboard_id: str, version: int) -> DashboardVersion | None: ...

    @abc.abstractmethod
    async def list_dashboard_versions(self, dashboard_id: str) -> list[DashboardVersion]:
        """Versions of a dashboard, oldest first."""

    @abc.abstractmethod
    async def delete_dashboard(self, dashboard_id: str) -> None:
        """Delete the dashboard, its versions and its shares; a missing one is not an error."""

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
    async def list_user_shares(self, user_id: str) -> list[Share]:
        """What is shared with ``user_id``, oldest first."""

    # pages of the catalogue (``paging``, ``storage/catalog.py``) -----------------
    @abc.abstractmethod
    async def page_cards(self, query: ListQuery) -> Page[Card]:
        """One page of cards; reads at most ``limit + 1`` entries per scope of ``query`` (outside search)."""

    @abc.abstractmethod
    async def page_dashboards(self, query: ListQuery) -> Page[Dashboard]:
        """One page of dashboards, as ``page_cards``."""

    @abc.abstractmethod
    async def page_datasets(self, query: ListQuery) -> Page[Dataset]:
        """One page of datasets, as ``page_cards``."""

    # result cache ------------------------------------------------------------
    @abc.abstractmethod
    async def get_cached_result(self, key: str) -> CachedResult | None: ...

    @abc.abstractmethod
    async def put_cached_result(self, result: CachedResult) -> None:
        """Store ``result`` under its key; a result already there for the key is replaced."""

    @abc.abstractmethod
    async def list_cached_results(self, variant: str) -> list[CachedResult]:
        """The results of one ``variant`` (card and parameter values), newest first."""

    @abc.abstractmethod
    async def delete_cached_result(self, key: str) -> None:
        """Delete the record (not its blob); a missing one is not an error."""

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
