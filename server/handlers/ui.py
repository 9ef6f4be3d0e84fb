"""The web UI: the built pages (``static/dist``) from the same origin as the API.

Files under ``/assets/`` have a content hash in their name and are cached for a year. Any other
path outside the API that names no file of the build gets ``index.html``, uncached, and the page's
router shows the page for that path. Only plain relative paths are looked up, and only inside the
build: a path out of it gets the page too, whether it names a file on the host or not. Without a
build, every such path is a JSON 404 that says how to build it.
"""

from __future__ import annotations

import os
from typing import Any

from tornado import web


INDEX = "index.html"
HASHED_PREFIX = "assets/"
YEAR = 365 * 24 * 3600
# Pages run only our own scripts; kernel outputs reach them as data, never as markup or code.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
                           "base-uri 'none'; frame-ancestors 'none'")


class UIHandler(web.StaticFileHandler):
    def initialize(self, endpoint: str, **kwargs: Any) -> None:  # type: ignore[override]  # urls.url_specs
        self.endpoint = endpoint
        super().initialize(path=self.settings["ui_dir"])

    async def get(self, path: str, include_body: bool = True) -> None:
        if not os.path.isfile(os.path.join(self.root, INDEX)):
            self.set_status(404)
            self.finish({"error": {"code": "not_built", "details": {},
                                   "message": "The web UI is not built: ./dev serve builds it into static/dist."}})
            return
        await super().get(path if file_inside(self.root, path) else INDEX, include_body)

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        return YEAR if path.startswith(HASHED_PREFIX) else 0

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        if path.startswith(HASHED_PREFIX):
            self.set_header("Cache-Control", f"public, max-age={YEAR}, immutable")
        else:
            self.set_header("Cache-Control", "no-cache")
        if path == INDEX:
            self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.set_header("Referrer-Policy", "same-origin")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": {"code": "not_found" if status_code == 404 else "error", "details": {},
                               "message": f"There is nothing at {self.request.path}."}})


def file_inside(root: str, path: str) -> bool:
    """Whether ``path`` is a relative path without empty, ``.`` or ``..`` parts that names a file under
    ``root``, symbolic links followed; False for anything outside, whether it exists or not."""
    parts = path.split("/")
    if not path or "\\" in path or "\0" in path or any(part in ("", ".", "..") for part in parts):
        return False
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, *parts))
    return full.startswith(real_root + os.sep) and os.path.isfile(full)
