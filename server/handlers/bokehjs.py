"""BokehJS from the installed bokeh package (the kernels' version), never from a CDN.

``GET /api/bokeh`` names the scripts a page loads to render Bokeh items; they are served under
``/static/bokeh/<version>/``, gzip-compressed and cacheable for a year (the version is in the
URL, so an upgrade changes every URL). Any other version is a 404.
"""

from __future__ import annotations

from typing import Any

import bokeh
from bokeh.util.paths import bokehjs_path
from tornado import web

from .base import APIHandler

SCRIPTS = ("bokeh.min.js", "bokeh-gl.min.js", "bokeh-widgets.min.js", "bokeh-tables.min.js")
URL_PREFIX = f"/static/bokeh/{bokeh.__version__}/"


class BokehResourcesHandler(APIHandler):
    auth_required = False

    def get(self) -> None:
        self.write_json({"version": bokeh.__version__, "scripts": [URL_PREFIX + name for name in SCRIPTS]})


class BokehJSHandler(web.StaticFileHandler):
    """The minified scripts of the installed BokehJS, for this version only."""

    def initialize(self, endpoint: str, **kwargs: Any) -> None:  # type: ignore[override]  # urls.url_specs
        super().initialize(path=str(bokehjs_path() / "js"))

    async def get(self, version: str, name: str, include_body: bool = True) -> None:  # type: ignore[override]
        if version != bokeh.__version__ or name not in SCRIPTS:
            raise web.HTTPError(404)
        await super().get(name, include_body)

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        return self.CACHE_MAX_AGE

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": {"code": "not_found" if status_code == 404 else "error", "details": {},
                               "message": f"No such BokehJS file; GET /api/bokeh lists those of {bokeh.__version__}."}})
