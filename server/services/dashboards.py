"""Dashboards: versioned documents (``dashboards_spec``) of cards on a grid, shared by email.

Who may do what is decided in ``DashboardService.access``: the owner and admins everything;
a share grants ``view`` (see it, run its cards with parameters) or ``edit`` (also change its
layout and cards); a restore brings back someone else's card only if it is on it now; to everyone else the
dashboard does not exist (404). Sharing a dashboard shares its cards and nothing else (a card
version reads data with its author's rights, ``services/card_runs.py``): ``card_access`` is the
card service's ``shares`` seam.

A document is stored with every card as a reference ``{"key", "card": <card uid>}``: a card
written inline (title, code, dataset names) becomes a saved card of the writer's, or a new
version of the card already under that key. ``export`` inlines them again, with dataset names
instead of ids, so that a document moves between servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Collection
from typing import Any

from traitlets.config import LoggingConfigurable

import dashboards_spec

from ..errors import (BIError, InvalidRequestError, NotFoundError, PermissionDeniedError, PreconditionRequiredError,
                      UnprocessableError, ConflictError)
from .audit import record
from ..limits import ACCESS_READ_AHEAD
from ..models import (Card, CardVersion, Dashboard, DashboardVersion, Dataset, Permission, Share, User, VersionStamp,
                      card_ids, normalise_email, utcnow)
from ..paging import ListQuery, Page, Scope
from ..storage.base import Store
from ..storage.catalog import DASHBOARD, CatalogueGap, Listed
from .cards import RANK, Access, CardService
from .datasets import DatasetService, may_read
from .idempotency import mark, new_id, own_edit, replayed
from .store_writes import known_not_done, settle

Tiles = dict[str, tuple[Card, CardVersion]]  # a dashboard's cards and their current versions, by card id


class DashboardService(LoggingConfigurable):
    def __init__(self, store: Store, cards: CardService, datasets: DatasetService, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.cards = cards
        self.datasets = datasets
        self.revoked: list[Any] = []  # callbacks (dashboard_id, user_id) told of every revoked share
        cards.shares = self.card_access

    # access --------------------------------------------------------------------
    async def access(self, user: User, dashboard: Dashboard) -> Access | None:
        if dashboard.owner_id == user.id or user.role == "admin":
            return "owner"
        return _shared_access(await self.store.get_share(dashboard.id, user.id))

    async def authorize(self, user: User, dashboard_id: str, needed: Access = "view") -> tuple[Dashboard, Access]:
        """The dashboard and ``user``'s access if it is at least ``needed``; 404 with none, 403 with too little.
        Its record comes from this task's memory for a view (``record`` ), from the store for a change (which
        names the version it was edited from)."""
        dashboard = await (self.record(dashboard_id) if needed == "view" else self.store.get_dashboard(dashboard_id))
        granted = self._granted(await self.access(user, dashboard) if dashboard is not None else None, needed)
        assert dashboard is not None
        return dashboard, granted

    def _granted(self, granted: Access | None, needed: Access) -> Access:
        if granted is None:
            raise NotFoundError("No such dashboard.")
        if RANK[granted] < RANK[needed]:
            raise PermissionDeniedError(
                "Only the dashboard's owner can do that." if needed == "owner"
                else "You can view this dashboard but not change it.")
        return granted

    async def card_access(self, user: User, card: Card) -> Access | None:
        """The most ``user``'s dashboards grant on ``card``: edit on the cards of their own dashboards
        (an editor may have put theirs there), else what a dashboard shared with them grants. Only the
        dashboards that hold the card are read (the store's index of them), whatever else ``user`` has;
        their current versions are read in one batch, to check they still hold it: at the same time as the shares
        when they are few (``ACCESS_READ_AHEAD``), else only those of the dashboards that grant something."""
        holding = await self.store.dashboards_with_card(card.id)
        shares = asyncio.gather(*(self.store.get_share(dashboard.id, user.id) for dashboard in holding
                                  if dashboard.owner_id != user.id))
        versions: list[DashboardVersion] | None = None
        if len(holding) <= ACCESS_READ_AHEAD:
            found, versions = await asyncio.gather(shares, self._current_versions(holding))
        else:
            found = await shares
        permission: dict[str, Access] = {share.dashboard_id: share.permission for share in found if share is not None}
        permission |= {dashboard.id: "edit" for dashboard in holding if dashboard.owner_id == user.id}
        if versions is None:
            versions = await self._current_versions([dashboard for dashboard in holding if dashboard.id in permission])
        granted = [permission[version.dashboard_id] for version in versions
                   if version.dashboard_id in permission and card.id in card_ids(version.document)]
        return max(granted, key=lambda access: RANK[access], default=None)

    async def _current_versions(self, dashboards: list[Dashboard]) -> list[DashboardVersion]:
        """The current version of each of ``dashboards`` that has one (one batch read)."""
        versions = await self.cards.records.dashboard_versions(dashboards)
        return [version for version in versions if version is not None]

    async def tiles(self, ids: Collection[str]) -> Tiles:
        """The cards of ``ids`` (on a dashboard), each with its current version, by card id (two batch
        reads of those not kept in this task's memory); deleted ones are left out. Whoever may view the dashboard may
        view them (``card_access``)."""
        cards = await self.cards.records.cards(ids)
        return {card.id: (card, version) for card, version in await self.cards.with_versions(cards)}

    # reads -----------------------------------------------------------------------
    async def record(self, dashboard_id: str) -> Dashboard | None:
        """The dashboard's record (owner, current version) as this task's memory keeps it (``record_memory.py``:
        a new version or a deletion on any task drops it everywhere, over the bus), else from the store."""
        return await self.cards.records.dashboard(dashboard_id)

    async def current(self, dashboard_id: str) -> DashboardVersion | None:
        dashboard = await self.record(dashboard_id)
        return await self.cards.records.dashboard_version(dashboard) if dashboard else None

    async def get_visible(self, user: User, dashboard_id: str) -> tuple[Dashboard, DashboardVersion, Access]:
        """The dashboard with its current version, if ``user`` may view it (its access and version read at once; the
        record and version from this task's memory when kept there, the shares from the store)."""
        dashboard = await self.record(dashboard_id)
        if dashboard is None:
            raise NotFoundError("No such dashboard.")
        access, version = await asyncio.gather(self.access(user, dashboard), self.cards.records.dashboard_version(dashboard))
        granted = self._granted(access, "view")
        if version is None:
            raise NotFoundError(f"The dashboard has no version {dashboard.current_version}.")
        return dashboard, version, granted

    async def page_visible(self, user: User, query: ListQuery,
                           shared_only: bool = False) -> Page[tuple[Listed[Dashboard], Access]]:
        """A page of mine (an admin: all) and those shared with me, or of only those shared with me;
        each with its summary (not its document) and my access."""
        if shared_only:
            scopes: tuple[Scope, ...] = (Scope("shared", user.id),)
        elif user.role == "admin":
            scopes = (Scope("all"),)
        else:
            scopes = (Scope("owner", user.id), Scope("shared", user.id))
        page = await self.store.page_dashboards(dataclasses.replace(query, scopes=scopes))
        access: list[Access | None] = ["owner" if d.record.owner_id == user.id or user.role == "admin" else d.shared_as
                                       for d in page.items]
        return Page([(d, a) for d, a in zip(page.items, access, strict=True) if a is not None], page.next, page.total)

    async def versions(self, user: User, dashboard_id: str, query: ListQuery) -> Page[VersionStamp]:
        """A page of the dashboard's versions (stamps, no documents), newest first."""
        dashboard, _ = await self.authorize(user, dashboard_id)
        return await self.store.page_dashboard_versions(dashboard.id, query)

    async def version(self, user: User, dashboard_id: str, number: int) -> DashboardVersion:
        """Version ``number`` of the dashboard, with its document."""
        dashboard, _ = await self.authorize(user, dashboard_id)
        return await self._version_of(dashboard, number)

    async def _version_of(self, dashboard: Dashboard, number: int) -> DashboardVersion:
        version = await self.store.get_dashboard_version(dashboard.id, number)
        if version is None:
            raise NotFoundError(f"The dashboard has no version {number}.")
        return version

    async def export(self, user: User, dashboard_id: str) -> dict[str, Any]:
        """The document with its cards inline and datasets by name: no internal ids."""
        _, version, _ = await self.get_visible(user, dashboard_id)
        document = dict(version.document)
        document["cards"] = [await self._inline(entry) for entry in document["cards"]]
        return document

    async def _inline(self, entry: dict[str, Any]) -> dict[str, Any]:
        card = await self.store.get_card(entry["card"])
        version = await self.store.get_card_version(card.id, card.current_version) if card else None
        if version is None:
            return {"key": entry["key"], "title": "(deleted card)", "code": ""}
        names = []
        for dataset_id in version.datasets:
            dataset = await self.store.get_dataset(dataset_id)
            if dataset is not None:
                names.append(dataset.name)
        inline = {"key": entry["key"], "title": version.title, "code": version.code, "datasets": names}
        if version.parameters:
            inline["parameters"] = [dict(p) for p in version.parameters]
        return inline

    # writes ----------------------------------------------------------------------
    async def create(self, user: User, document: Any) -> tuple[Dashboard, DashboardVersion]:
        document = _checked(document)
        dashboard_id = new_id("dashboard")
        uid = document.setdefault("uid", uuid.uuid4().hex)
        first, taken = await asyncio.gather(self._created(user, dashboard_id) if replayed() else _none(),
                                            self.store.get_dashboard_by_uid(uid))
        if first is not None:
            return first
        if taken is not None:
            raise ConflictError(f"A dashboard with the uid {uid!r} exists; import the document to update it.",
                                {"uid": uid})
        created: list[str] = []
        stored = await self._store_form(user, document, None, created)
        now = utcnow()
        dashboard = Dashboard(id=dashboard_id, uid=uid, owner_id=user.id, current_version=1,
                              created_at=now, updated_at=now)
        version = DashboardVersion(dashboard.id, 1, stored, now, user.id, mark())
        await settle(self.store.create_dashboard(dashboard, version), lambda: self._landed(version),
                     lambda: self._drop_cards(created), dashboard_id=dashboard.id)
        await record(self.store, "dashboard_created", dashboard_id=dashboard.id, owner_id=user.id, uid=uid)
        return dashboard, version

    async def update(self, user: User, dashboard_id: str, expected: int | None,
                     document: Any) -> tuple[Dashboard, DashboardVersion]:
        """Save a new version edited from version ``expected``; 409 if someone saved since."""
        if expected is None:
            await self.authorize(user, dashboard_id, "edit")
            raise PreconditionRequiredError(
                'Name the version you edited: send If-Match: "<version>" or a "version" field.')
        (dashboard, _), previous = await asyncio.gather(self.authorize(user, dashboard_id, "edit"),  # the edited
                                                        self.store.get_dashboard_version(dashboard_id, expected))
        document = _checked(document)
        if document.setdefault("uid", dashboard.uid) != dashboard.uid:
            raise UnprocessableError(f"/uid: this dashboard's uid is {dashboard.uid!r}; a uid never changes.",
                                     {"pointer": "/uid"})
        if expected != dashboard.current_version:
            return await self._saved(user, dashboard, await self._own(dashboard, expected))
        if previous is None:
            raise NotFoundError(f"The dashboard has no version {expected}.")
        created: list[str] = []
        stored = await self._store_form(user, document, previous.document, created)
        return await self._save(user, dashboard, expected, stored, created)

    async def restore(self, user: User, dashboard_id: str, number: int) -> tuple[
            Dashboard, DashboardVersion, list[dict[str, Any]]]:
        """A new version with the document of version ``number``, and the card entries left out of it.

        A card of someone else's comes back only if it is on the current version: whoever took it off
        (the dashboard's owner, or the card's owner, an editor) meant it, and the restorer would run it
        with its author's rights and edit it. Admins restore anything."""
        dashboard, _ = await self.authorize(user, dashboard_id, "edit")
        document = (await self._version_of(dashboard, number)).document
        if user.role == "admin":
            return *await self._save(user, dashboard, dashboard.current_version, document), []
        allowed = card_ids((await self._version_of(dashboard, dashboard.current_version)).document)
        for card_id in card_ids(document) - allowed:
            card = await self.store.get_card(card_id)
            if card is not None and card.owner_id == user.id:
                allowed.add(card_id)
        left_out = [entry for entry in document["cards"] if entry["card"] not in allowed]
        return *await self._save(user, dashboard, dashboard.current_version, _keeping(document, allowed)), left_out

    async def import_document(self, user: User, document: Any) -> tuple[Dashboard, DashboardVersion, bool]:
        """Create the dashboard of the document's uid, or save a new version of it; True if created."""
        document = _checked(document)
        existing = await self.store.get_dashboard_by_uid(document["uid"]) if "uid" in document else None
        if existing is None:
            return (*await self.create(user, document), True)
        try:
            dashboard, _ = await self.authorize(user, existing.id, "edit")
        except NotFoundError:
            raise ConflictError(f"The uid {existing.uid!r} belongs to a dashboard of someone else's; give the"
                                " document another uid to import it as a new dashboard.", {"uid": existing.uid}) from None
        return (*await self.update(user, dashboard.id, dashboard.current_version, document), False)

    async def duplicate(self, user: User, dashboard_id: str, title: str | None) -> tuple[Dashboard, DashboardVersion]:
        """A new dashboard of ``user``'s with the current version's document (a new uid, ``title`` or the same
        title, no shares), each of its cards copied as a new card of ``user``'s (the card's current title,
        code, datasets, parameters and tags); deleted cards are left out. 403 ``duplicate_unreadable`` if a
        card reads a dataset ``user`` may not read: its copy could never run."""
        _, version, _ = await self.get_visible(user, dashboard_id)
        tiles = await self.tiles(card_ids(version.document))
        unreadable = {dataset.name for dataset in await self._datasets({d for _, v in tiles.values() for d in v.datasets})
                      if not may_read(user, dataset)}
        if unreadable:
            raise PermissionDeniedError(
                f"The dashboard's cards read datasets you may not read ({', '.join(sorted(unreadable))}): their copies"
                " could not run. Ask the datasets' owner to duplicate it.",
                {"datasets": sorted(unreadable)}, code="duplicate_unreadable")
        copies: dict[str, str] = {}
        try:
            for card_id, (_, current) in tiles.items():
                copy, _ = await self.cards.create(user, current.title, current.code, list(current.datasets),
                                                  [dict(p) for p in current.parameters], list(current.tags))
                copies[card_id] = copy.id
            document = _keeping(version.document, set(copies))
            document = {**document, "uid": uuid.uuid4().hex, "title": title or document["title"],
                        "cards": [{"key": entry["key"], "card": copies[entry["card"]]} for entry in document["cards"]]}
            dashboard, copied = await self.create(user, document)
        except BIError as exc:
            if known_not_done(exc):  # else the dashboard may land later, pointing at the copies
                await self._drop_cards(list(copies.values()))
            raise
        await record(self.store, "dashboard_duplicated", dashboard_id=dashboard.id, source_id=dashboard_id,
                     user_id=user.id)
        return dashboard, copied

    async def _datasets(self, ids: Collection[str]) -> list[Dataset]:
        """The datasets of ``ids`` that exist."""
        found = await asyncio.gather(*(self.store.get_dataset(dataset_id) for dataset_id in ids))
        return [dataset for dataset in found if dataset is not None]

    async def _save(self, user: User, dashboard: Dashboard, expected: int, stored: dict[str, Any],
                    created: list[str] | None = None) -> tuple[Dashboard, DashboardVersion]:
        """Save ``stored`` as the version after ``expected``; if it is known not saved, delete the cards
        made for it (``created``)."""
        version = DashboardVersion(dashboard.id, expected + 1, stored, utcnow(), user.id, mark())
        try:
            async with self.cards.records.changing("dashboard", dashboard.id):
                await settle(self.store.add_dashboard_version(version, expected), lambda: self._landed(version),
                             lambda: self._drop_cards(created or []), dashboard_id=dashboard.id)
        except ConflictError:
            latest = await self.store.get_dashboard(dashboard.id)
            if latest is None:
                raise NotFoundError("No such dashboard.") from None
            raise _stale(latest, expected) from None
        return await self._saved(user, dashboard, version)

    async def _saved(self, user: User, dashboard: Dashboard,
                     version: DashboardVersion) -> tuple[Dashboard, DashboardVersion]:
        await record(self.store, "dashboard_updated", dashboard_id=dashboard.id, version=version.version, user_id=user.id)
        return dataclasses.replace(dashboard, current_version=version.version,
                                   updated_at=version.created_at), version

    async def _own(self, dashboard: Dashboard, expected: int) -> DashboardVersion:
        """The version after ``expected`` if an earlier attempt of this keyed request saved it (its answer lost:
        ``idempotency.mark``); else the 409 of a stale edit."""
        version = await own_edit(self.store, DASHBOARD, dashboard.id, dashboard.current_version, expected,
                                 self.store.get_dashboard_version)
        if version is None:
            raise _stale(dashboard, expected)
        return version

    async def delete(self, user: User, dashboard_id: str) -> None:
        """Delete the dashboard (head first: then nothing can be added to it), its versions and shares; or
        finish a deletion cut short: a dashboard that is gone is no error. Its shares (whose holders are told) are
        read at the same time as the caller's rights."""
        authorized, shares = await asyncio.gather(self.authorize(user, dashboard_id, "owner"),
                                                  self.store.list_shares(dashboard_id), return_exceptions=True)
        try:
            if isinstance(authorized, BaseException):
                raise authorized
            dashboard: Dashboard | None = authorized[0]
        except NotFoundError:
            if await self.store.get_dashboard(dashboard_id) is not None:
                raise
            dashboard = None
        if isinstance(shares, BaseException):
            raise shares
        async with self.cards.records.changing("dashboard", dashboard_id):
            await self.store.delete_dashboard(dashboard_id, dashboard)
        for share in shares:
            self._tell_revoked(dashboard_id, share.user_id)
        if dashboard is not None:
            await record(self.store, "dashboard_deleted", dashboard_id=dashboard.id, owner_id=dashboard.owner_id,
                         user_id=user.id)

    async def _created(self, user: User, dashboard_id: str) -> tuple[Dashboard, DashboardVersion] | None:
        """The dashboard as an earlier attempt of this keyed request created it (``idempotency.new_id``), if it did."""
        version = await self.store.get_dashboard_version(dashboard_id, 1)
        found = version is not None and version.created_by == user.id
        dashboard = await self.store.get_dashboard(dashboard_id) if found else None
        if dashboard is None or version is None:
            return None
        await self.store.relist(CatalogueGap("unlisted", DASHBOARD, dashboard_id))  # it may not be listed yet
        return dataclasses.replace(dashboard, current_version=1, updated_at=version.created_at), version

    async def _landed(self, version: DashboardVersion) -> bool:
        """Whether ``version`` is stored (read back after a write whose outcome is unknown)."""
        stored = await self.store.get_dashboard_version(version.dashboard_id, version.version)
        return stored is not None and (stored.created_at, stored.created_by) == (version.created_at,
                                                                                 version.created_by)

    async def _drop_cards(self, card_ids: list[str]) -> None:
        """Delete the cards saved for a dashboard version that was not stored."""
        for card_id in card_ids:
            async with self.cards.records.changing("card", card_id):
                await self.store.delete_card(card_id)

    async def _store_form(self, user: User, document: dict[str, Any], previous: dict[str, Any] | None,
                          created: list[str]) -> dict[str, Any]:
        """The document with every card a reference; inline cards saved as cards (new ones added to
        ``created``; all deleted again if a later one fails)."""
        before = {entry["key"]: entry["card"] for entry in (previous or {}).get("cards", [])}
        cards = []
        try:
            for index, entry in enumerate(document["cards"]):
                if "card" in entry:
                    await self._check_reference(user, index, entry["card"], before)
                    cards.append(entry)
                else:
                    card_id = await self._save_inline(user, index, entry, before, created)
                    cards.append({"key": entry["key"], "card": card_id})
        except BIError:
            await self._drop_cards(created)
            raise
        return {**document, "cards": cards}

    async def _check_reference(self, user: User, index: int, card_id: str, before: dict[str, str]) -> None:
        """A card new to the dashboard must be the writer's own: sharing it shares it on."""
        if card_id in before.values():
            return
        card = await self.store.get_card(card_id)
        if card is None or await self.cards.access(user, card) != "owner":
            raise NotFoundError(f"/cards/{index}/card: there is no card {card_id} of yours.",
                                {"pointer": f"/cards/{index}/card"})

    async def _save_inline(self, user: User, index: int, entry: dict[str, Any], before: dict[str, str],
                           created: list[str]) -> str:
        dataset_ids = [await self._dataset_id(user, f"/cards/{index}/datasets/{n}", name)
                       for n, name in enumerate(entry.get("datasets", []))]
        fields = (entry["title"], entry["code"], dataset_ids, entry.get("parameters", []))
        card_id = before.get(entry["key"])
        card = await self.store.get_card(card_id) if card_id else None
        if card and await self.cards.access(user, card) in ("owner", "edit"):
            current = await self.store.get_card_version(card.id, card.current_version)
            if current is not None and (current.title, current.code, list(current.datasets),
                                        [dict(p) for p in current.parameters]) == fields:
                return card.id
            card, _ = await self.cards.update(user, card.id, card.current_version, *fields)
            return card.id
        card, _ = await self.cards.create(user, *fields)
        created.append(card.id)
        return card.id

    async def _dataset_id(self, user: User, pointer: str, name: str) -> str:
        """The id of the dataset named ``name`` (or, when none is, once called so: a document written before a
        rename): the writer's own, else the one they can see."""
        readable = [d for d, _ in await self.datasets.list_visible(user)]
        visible = [d for d in readable if d.name == name] or [d for d in readable if name in d.aliases]
        own = [d for d in visible if d.owner_id == user.id]
        found = own or visible
        if len(found) != 1:
            problem = "several datasets are" if found else "no dataset you can read is"
            raise UnprocessableError(f"{pointer}: {problem} named {name!r}.", {"pointer": pointer})
        return found[0].id

    # shares ----------------------------------------------------------------------
    async def shares(self, user: User, dashboard_id: str, query: ListQuery) -> Page[dict[str, Any]]:
        """A page of the dashboard's shares, the newest grant first, each with the grantee's email and name, to whoever
        may view the dashboard (read with its page: ``Store.read_shares_page``)."""
        read = await self.store.read_shares_page(dashboard_id, user.id, query)
        owner = read.dashboard is not None and (read.dashboard.owner_id == user.id or user.role == "admin")
        self._granted("owner" if owner else _shared_access(read.own) if read.dashboard else None, "view")
        return Page([_share_json(share, grantee) for share, grantee in read.page.items], read.page.next, read.page.total)

    async def unreadable_datasets(self, user: User, dashboard_id: str) -> list[dict[str, Any]]:
        """The datasets the dashboard's cards read that ``user`` may not, each with the keys of those cards:
        a version of such a card that ``user`` saves runs with their rights, so without them."""
        _, version, _ = await self.get_visible(user, dashboard_id)
        found: dict[str, dict[str, Any]] = {}
        for entry in version.document["cards"]:
            card = await self.store.get_card(entry["card"])
            card_version = await self.store.get_card_version(card.id, card.current_version) if card else None
            for dataset_id in card_version.datasets if card_version else ():
                dataset = await self.store.get_dataset(dataset_id)
                if dataset is not None and not may_read(user, dataset):
                    listed = found.setdefault(dataset.id, {"id": dataset.id, "name": dataset.name, "cards": []})
                    listed["cards"].append(entry["key"])
        return list(found.values())

    async def share(self, user: User, dashboard_id: str, email: str, permission: Permission) -> dict[str, Any]:
        """Grant ``permission`` to the user of ``email``: the caller's rights and the grantee are read at once (what
        the grantee's read found is told only to an owner)."""
        authorized, found = await asyncio.gather(self.authorize(user, dashboard_id, "owner"),
                                                 self.store.get_user_by_email(normalise_email(email)),
                                                 return_exceptions=True)
        if isinstance(authorized, BaseException):
            raise authorized
        if isinstance(found, BaseException):
            raise found
        dashboard, grantee = authorized[0], found
        if grantee is None:
            raise UnprocessableError(f"There is no user with the email {email!r}; ask an admin to add them.",
                                     {"pointer": "/email"})
        if grantee.id == dashboard.owner_id:
            raise InvalidRequestError("The owner already has every permission on the dashboard.",
                                      {"pointer": "/email"})
        share = Share(dashboard.id, grantee.id, permission, utcnow(), user.id)
        await self.store.put_share(share)
        await record(self.store, "dashboard_shared", dashboard_id=dashboard.id, shared_with=grantee.id, permission=permission,
              user_id=user.id)
        return _share_json(share, grantee)

    async def revoke(self, user: User, dashboard_id: str, email: str) -> None:
        dashboard, _ = await self.authorize(user, dashboard_id, "owner")
        grantee = await self.store.get_user_by_email(normalise_email(email))
        if grantee is None or not await self.store.delete_share(dashboard.id, grantee.id):
            raise NotFoundError(f"The dashboard is not shared with {email!r}.")
        await record(self.store, "dashboard_unshared", dashboard_id=dashboard.id, shared_with=grantee.id, user_id=user.id)
        self._tell_revoked(dashboard.id, grantee.id)

    def _tell_revoked(self, dashboard_id: str, user_id: str) -> None:
        for callback in self.revoked:
            callback(dashboard_id, user_id)



def _shared_access(share: Share | None) -> Access | None:
    return share.permission if share is not None else None


def _share_json(share: Share, grantee: User | None) -> dict[str, Any]:
    return {"email": grantee.email if grantee else None, "name": grantee.name if grantee else None,
            "user_id": share.user_id, "permission": share.permission, "created_at": share.created_at}


async def _none() -> None:
    return None


def _keeping(document: dict[str, Any], cards: set[str]) -> dict[str, Any]:
    """``document`` with only the cards whose ids are in ``cards``, and their layout cells."""
    kept = [entry for entry in document["cards"] if entry["card"] in cards]
    keys = {entry["key"] for entry in kept}
    return {**document, "cards": kept, "layout": [cell for cell in document["layout"] if cell["card"] in keys]}


def _checked(document: Any) -> dict[str, Any]:
    """``document`` at the current schema version, checked; 422 naming the first problem."""
    try:
        document = dashboards_spec.upgrade(document)
        dashboards_spec.check(document)
    except dashboards_spec.SpecError as exc:
        raise UnprocessableError(str(exc), {"pointer": exc.pointer, "reason": exc.reason}) from None
    return dict(document)


def _stale(dashboard: Dashboard, expected: int) -> ConflictError:
    return ConflictError(
        f"The dashboard is at version {dashboard.current_version}, not {expected}: someone saved it since"
        " you opened it. Reload, reapply your changes and save again.",
        {"current_version": dashboard.current_version})
