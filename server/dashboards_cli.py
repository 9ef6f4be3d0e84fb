"""``bi dashboards export ID`` and ``bi dashboards import FILE``: dashboard documents in and out.

With ``--url`` (or ``BI_URL``) they talk to a running server with a token (``--token`` or
``BI_TOKEN``), as the token's user; without, to the configured store directly, as the user
named by ``--as`` (default: the first admin). An export is written to stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from traitlets import Unicode, default

from .app import BIApp
from .environment import setting
from .errors import BIError
from .models import User
from .services.cards import CardService
from .services.dashboards import DashboardService
from .services.datasets import DatasetService
from .storage.base import Store


class DashboardCommand(BIApp):
    url = Unicode(help="A running server (e.g. http://127.0.0.1:8000); default: the store directly.").tag(config=True)
    token = Unicode(help="A token of the server's (POST /api/auth/login).").tag(config=True)
    as_user = Unicode(help="Without --url: the email of the user to act as (default: the first admin).").tag(config=True)
    aliases = {**BIApp.aliases, "url": "DashboardCommand.url", "token": "DashboardCommand.token",
               "as": "DashboardCommand.as_user"}
    subcommands: dict[str, Any] = {}

    @default("url")
    def _default_url(self) -> str:
        return setting("BI_URL")

    @default("token")
    def _default_token(self) -> str:
        return setting("BI_TOKEN")

    def argument(self, what: str) -> str:
        if len(self.extra_args) != 1:
            self.fail(f"give exactly one {what}")
        return self.extra_args[0]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of the server; its error message (exit 2) otherwise."""
        if not self.token:
            self.fail("give a token: --token=... or BI_TOKEN (from POST /api/auth/login)")
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"the server answered {exc.code}"
            self.fail(message)
        except urllib.error.URLError as exc:
            self.fail(f"cannot reach {self.url}: {exc.reason}")

    def on_store(self, work: Any) -> Any:
        """``work(service, user)`` against the store directly."""
        async def run() -> Any:
            store = self.make_store()
            await store.open()
            try:
                datasets = DatasetService(store, Path(self.data_dir).resolve() / "tmp", parent=self)
                service = DashboardService(store, CardService(store, datasets, parent=self), datasets, parent=self)
                return await work(service, await self._acting_user(store))
            finally:
                await store.close()
        try:
            return asyncio.run(run())
        except BIError as exc:
            self.fail(exc.message)

    async def _acting_user(self, store: Store) -> User:
        if self.as_user:
            user = await store.get_user_by_email(self.as_user.strip().lower())
        else:
            user = next((u for u in await store.list_users() if u.role == "admin"), None)
        if user is None:
            self.fail(f"no user {self.as_user}" if self.as_user else "the store has no admin yet")
        assert user is not None
        return user


class DashboardExportApp(DashboardCommand):
    """``bi dashboards export ID > file.json``."""

    description = "Write a dashboard's document (cards inline, datasets by name) to stdout."

    def start(self) -> None:
        dashboard_id = self.argument("dashboard id")
        if self.url:
            document = self.call("GET", f"/api/dashboards/{dashboard_id}/export")
        else:
            document = self.on_store(lambda service, user: service.export(user, dashboard_id))
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


class DashboardImportApp(DashboardCommand):
    """``bi dashboards import file.json``."""

    description = "Create the dashboard of a document's uid, or save a new version of it."

    def start(self) -> None:
        path = Path(self.argument("file"))
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.fail(f"cannot read {path}: {exc}")
        if self.url:
            saved = self.call("POST", "/api/dashboards/import", document)
            dashboard_id, version = saved["id"], saved["version"]
        else:
            dashboard, saved_version, _ = self.on_store(lambda service, user: service.import_document(user, document))
            dashboard_id, version = dashboard.id, saved_version.version
        sys.stdout.write(f"Imported {path.name} as dashboard {dashboard_id}, version {version}.\n")


class DashboardsApp(BIApp):
    description = "Export and import dashboard documents."
    subcommands = {"export": ("server.dashboards_cli.DashboardExportApp", "Write a dashboard's document to stdout."),
                   "import": ("server.dashboards_cli.DashboardImportApp", "Create or update a dashboard from a file.")}
