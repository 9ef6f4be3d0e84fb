"""Every route of the API in one list. ``{name}`` in a pattern is one path segment passed as ``name``."""

from __future__ import annotations

import re
from tornado.web import RequestHandler, URLSpec

from .handlers.audit import AuditHandler
from .handlers.auth import (LoginHandler, LogoutEverywhereHandler, LogoutHandler, MeHandler, MePasswordHandler,
                            MeTokenHandler, MeTokensHandler, RefreshHandler, UserHandler, UserPasswordResetHandler,
                            UsersHandler)
from .handlers.bokehjs import BokehJSHandler, BokehResourcesHandler
from .handlers.card_socket import CardEditSocket, CardSocket
from .handlers.cards import (CardHandler, CardRunHandler, CardsHandler, CardVersionHandler,
                             CardVersionsHandler)
from .handlers.dashboard_socket import DashboardSocket
from .handlers.dashboards import (DashboardCardRunHandler, DashboardDuplicateHandler, DashboardExportHandler,
                                  DashboardHandler, DashboardImportHandler, DashboardRestoreHandler,
                                  DashboardSharesHandler, DashboardsHandler, DashboardVersionHandler,
                                  DashboardVersionsHandler)
from .handlers.datasets import (DatasetHandler, DatasetPreviewHandler, DatasetsHandler,
                                DatasetVersionsHandler)
from .handlers.outputs import OutputCSVHandler, OutputRowsHandler
from .handlers.sessions import ExecuteHandler, InterruptHandler, SessionHandler, SessionsHandler
from .handlers.system import HealthHandler, MetricsHandler, ReadyHandler
from .handlers.ui import UIHandler
from .jupyter.routes import ROUTES as JUPYTER_ROUTES

ROUTES: list[tuple[str, type[RequestHandler]]] = [
    ("/api/health", HealthHandler),
    ("/api/ready", ReadyHandler),
    ("/metrics", MetricsHandler),
    ("/api/bokeh", BokehResourcesHandler),
    ("/static/bokeh/{version}/{name}", BokehJSHandler),
    ("/api/auth/login", LoginHandler),
    ("/api/auth/refresh", RefreshHandler),
    ("/api/auth/logout", LogoutHandler),
    ("/api/auth/logout-everywhere", LogoutEverywhereHandler),
    ("/api/me", MeHandler),
    ("/api/me/password", MePasswordHandler),
    ("/api/me/tokens", MeTokensHandler),
    ("/api/me/tokens/{token_id}", MeTokenHandler),
    ("/api/users", UsersHandler),
    ("/api/audit", AuditHandler),
    ("/api/users/{user_id}", UserHandler),
    ("/api/users/{user_id}/password-reset", UserPasswordResetHandler),
    ("/api/datasets", DatasetsHandler),
    ("/api/datasets/{dataset_id}", DatasetHandler),
    ("/api/datasets/{dataset_id}/versions", DatasetVersionsHandler),
    ("/api/datasets/{dataset_id}/preview", DatasetPreviewHandler),
    ("/api/cards/scratch/ws", CardSocket),
    ("/api/cards", CardsHandler),
    ("/api/cards/{card_id}", CardHandler),
    ("/api/cards/{card_id}/versions", CardVersionsHandler),
    ("/api/cards/{card_id}/versions/{number}", CardVersionHandler),
    ("/api/cards/{card_id}/ws", CardEditSocket),
    ("/api/cards/{card_id}/run", CardRunHandler),
    ("/api/dashboards", DashboardsHandler),
    ("/api/dashboards/import", DashboardImportHandler),
    ("/api/dashboards/{dashboard_id}", DashboardHandler),
    ("/api/dashboards/{dashboard_id}/versions", DashboardVersionsHandler),
    ("/api/dashboards/{dashboard_id}/versions/{number}", DashboardVersionHandler),
    ("/api/dashboards/{dashboard_id}/versions/{number}/restore", DashboardRestoreHandler),
    ("/api/dashboards/{dashboard_id}/export", DashboardExportHandler),
    ("/api/dashboards/{dashboard_id}/duplicate", DashboardDuplicateHandler),
    ("/api/dashboards/{dashboard_id}/shares", DashboardSharesHandler),
    ("/api/dashboards/{dashboard_id}/cards/{key}/run", DashboardCardRunHandler),
    ("/api/dashboards/{dashboard_id}/ws", DashboardSocket),
    ("/api/outputs/{output_id}/rows", OutputRowsHandler),
    ("/api/outputs/{output_id}/csv", OutputCSVHandler),
    ("/api/card-sessions", SessionsHandler),
    ("/api/card-sessions/{session_id}", SessionHandler),
    ("/api/card-sessions/{session_id}/execute", ExecuteHandler),
    ("/api/card-sessions/{session_id}/interrupt", InterruptHandler),
    *JUPYTER_ROUTES,
]

# The web UI: every path outside the API, its metrics and BokehJS (regular expression).
UI_ROUTE = r"/(?!api/|api$|metrics$|static/bokeh/)(.*)"


def url_specs() -> list[URLSpec]:
    """Tornado URL specs; each handler gets its pattern as ``endpoint`` for logs and metrics."""
    specs = []
    for pattern, handler in ROUTES:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        specs.append(URLSpec(regex, handler, {"endpoint": pattern}))
    specs.append(URLSpec(UI_ROUTE + "$", UIHandler, {"endpoint": "/{ui}"}))
    return specs
