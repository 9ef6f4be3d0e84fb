"""Dashboard routes: documents with versions, export and import, shares, runs of their cards.

A dashboard's JSON is its own fields, its current version's ``document`` and the caller's
``access`` (owner, edit, view); a list shows a summary of each instead of its document. A save names the version it was edited from, in ``If-Match`` or
as ``{"version": n, "document": {...}}``; 409 if someone saved since. A document that breaks
the format gets 422 with the JSON pointer and the reason of its first problem.
"""

from __future__ import annotations

import re
from typing import Any

from ..models import Dashboard, DashboardVersion
from ..storage.catalog import Listed
from ..paging import NEWEST
from ..services.dashboard_live import DashboardHub, dashboard_json
from ..services.dashboards import DashboardService
from .authors import with_author_names
from .base import APIHandler, idempotent, replays_itself
from .cards import RUN_SCHEMA, CardAPIHandler
from .listing import list_query, page_json, shared_only

UID_FILE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
ANY_OBJECT = {"type": "object"}
WRAPPED = {"type": "object", "required": ["document"], "additionalProperties": False,
           "properties": {"document": {"type": "object"}, "version": {"type": "integer", "minimum": 1}}}
SHARE = {"type": "object", "required": ["email", "permission"], "additionalProperties": False,
         "properties": {"email": {"type": "string", "minLength": 3, "maxLength": 320},
                        "permission": {"enum": ["view", "edit"]}}}
DUPLICATE = {"type": "object", "additionalProperties": False,
             "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200}}}
REVOKE = {"type": "object", "required": ["email"], "additionalProperties": False,
          "properties": {"email": {"type": "string", "minLength": 3, "maxLength": 320}}}


def listed_dashboard_json(listed: Listed[Dashboard], access: str) -> dict[str, Any]:
    """What a list shows of a dashboard: its summary (``storage/catalog.dashboard_summary``) and the caller's access,
    never its document."""
    return {**listed.summary, "version": listed.record.current_version, **listed.record.public(), "access": access}


class DashboardAPIHandler(CardAPIHandler):
    @property
    def dashboards(self) -> DashboardService:
        return self.settings["dashboards"]

    @property
    def hub(self) -> DashboardHub:
        return self.settings["dashboard_hub"]

    def write_dashboard(self, dashboard: Dashboard, version: DashboardVersion, access: str,
                        status: int = 200, **extra: Any) -> None:
        self.set_header("ETag", f'"{version.version}"')
        self.set_header("Content-Location", f"/api/dashboards/{dashboard.id}")
        self.write_json({**dashboard_json(dashboard, version, access), **extra}, status)

    async def answer_again(self, location: str, status: int) -> None:
        assert self.user is not None
        self.write_dashboard(*await self.dashboards.get_visible(self.user, location.rsplit("/", 1)[-1]), status)

    async def saved(self, dashboard: Dashboard, version: DashboardVersion, status: int = 200, **extra: Any) -> None:
        assert self.user is not None
        self.hub.dashboard_saved(dashboard, version)
        self.write_dashboard(dashboard, version, await self.dashboards.access(self.user, dashboard) or "view", status,
                             **extra)


class DashboardsHandler(DashboardAPIHandler):
    async def get(self) -> None:
        assert self.user is not None
        query = list_query(self, ("owner", "shared", "tag", "q"))
        page = await self.dashboards.page_visible(self.user, query, shared_only(self))
        self.write_json(page_json("dashboards", page, [listed_dashboard_json(d, a) for d, a in page.items], query))

    @idempotent
    async def post(self) -> None:
        assert self.user is not None
        dashboard, version = await self.dashboards.create(self.user, self.json_body(ANY_OBJECT))
        self.set_header("Location", f"/api/dashboards/{dashboard.id}")
        await self.saved(dashboard, version, 201)


class DashboardImportHandler(DashboardAPIHandler):
    @idempotent
    async def post(self) -> None:
        """Create the dashboard of the document's uid, or save a new version of it."""
        assert self.user is not None
        dashboard, version, created = await self.dashboards.import_document(self.user, self.json_body(ANY_OBJECT))
        await self.saved(dashboard, version, 201 if created else 200)


class DashboardHandler(DashboardAPIHandler):
    async def get(self, dashboard_id: str) -> None:
        assert self.user is not None
        self.write_dashboard(*await self.dashboards.get_visible(self.user, dashboard_id))

    @replays_itself
    async def put(self, dashboard_id: str) -> None:
        assert self.user is not None
        body = self.json_body(ANY_OBJECT)
        if "document" in body:  # {"version", "document"} rather than the document itself
            body = self.json_body(WRAPPED)
            document, expected = body["document"], self.edited_version(body)
        else:
            document, expected = body, self.edited_version({})
        dashboard, version = await self.dashboards.update(self.user, dashboard_id, expected, document)
        await self.saved(dashboard, version)

    async def delete(self, dashboard_id: str) -> None:
        assert self.user is not None
        await self.dashboards.delete(self.user, dashboard_id)
        self.hub.dashboard_deleted(dashboard_id)
        self.set_status(204)
        self.finish()


class DashboardVersionsHandler(DashboardAPIHandler):
    async def get(self, dashboard_id: str) -> None:
        assert self.user is not None
        query = list_query(self, sorts=NEWEST)
        page = await self.dashboards.versions(self.user, dashboard_id, query)
        versions = await with_author_names(self.dashboards.store, [v.public() for v in page.items])
        self.write_json(page_json("versions", page, versions, query))


class DashboardVersionHandler(DashboardAPIHandler):
    async def get(self, dashboard_id: str, number: str) -> None:
        """One version with its document (lists of versions show stamps only)."""
        assert self.user is not None
        self.write_json((await self.dashboards.version(self.user, dashboard_id, self.version_number(number))).public())


class DashboardRestoreHandler(DashboardAPIHandler):
    @idempotent
    async def post(self, dashboard_id: str, number: str) -> None:
        """Save the document of an earlier version as the newest version; ``left_out``: the card entries
        of it that did not come back (another user's cards no longer on the dashboard)."""
        assert self.user is not None
        dashboard, version, left_out = await self.dashboards.restore(self.user, dashboard_id,
                                                                     self.version_number(number))
        await self.saved(dashboard, version, left_out=left_out)


class DashboardDuplicateHandler(DashboardAPIHandler):
    @idempotent
    async def post(self, dashboard_id: str) -> None:
        """A copy of the dashboard that the caller owns, its cards copied as new cards of theirs."""
        assert self.user is not None
        body = self.json_body(DUPLICATE)
        dashboard, version = await self.dashboards.duplicate(self.user, dashboard_id, body.get("title"))
        self.set_header("Location", f"/api/dashboards/{dashboard.id}")
        await self.saved(dashboard, version, 201)


class DashboardExportHandler(DashboardAPIHandler):
    async def get(self, dashboard_id: str) -> None:
        assert self.user is not None
        document = await self.dashboards.export(self.user, dashboard_id)
        self.set_header("Content-Disposition", f'attachment; filename="{export_name(document["uid"])}.json"')
        self.write_json(document)


def export_name(uid: str) -> str:
    """The uid as a file name when it is a plain one (every uid the schema lets in today), else ``dashboard``:
    a uid stored before the schema's patterns were strict may hold a newline, which no header can carry."""
    return uid if UID_FILE_NAME.fullmatch(uid) else "dashboard"


class DashboardSharesHandler(DashboardAPIHandler):
    async def get(self, dashboard_id: str) -> None:
        assert self.user is not None
        query = list_query(self, sorts=NEWEST)
        page = await self.dashboards.shares(self.user, dashboard_id, query)
        self.write_json({**page_json("shares", page, page.items, query),
                         "unreadable_datasets": await self.dashboards.unreadable_datasets(self.user, dashboard_id)})

    async def put(self, dashboard_id: str) -> None:
        assert self.user is not None
        body = self.json_body(SHARE)
        self.write_json(await self.dashboards.share(self.user, dashboard_id, body["email"], body["permission"]))

    async def delete(self, dashboard_id: str) -> None:
        assert self.user is not None
        await self.dashboards.revoke(self.user, dashboard_id, self.json_body(REVOKE)["email"])
        self.set_status(204)
        self.finish()


class DashboardCardRunHandler(APIHandler):
    async def post(self, dashboard_id: str, key: str) -> None:
        """Run one card with the dashboard's parameters (defaults, then the given ones); ``force`` (owners and
        editors) runs it past the cache."""
        assert self.user is not None
        body = self.json_body(RUN_SCHEMA)
        values: dict[str, Any] = body.get("parameters", {})
        self.write_encoded(await self.settings["dashboard_hub"].run(self.user, dashboard_id, key, values,
                                                                    body.get("force", False)))
