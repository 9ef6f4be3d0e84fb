"""Static file handlers answer the same for every path outside their folder, existing or not.

``GET /%2Fetc%2Fshadow`` was a 403 while ``/%2Fetc%2Fnope`` was the page: an anonymous caller
could tell which files exist on the host. A path is looked up only when it is a plain relative
path inside the folder.
"""

from __future__ import annotations

import bokeh
import pytest

OUTSIDE = ["/%2Fetc%2Fpasswd", "/%2Fetc%2Fno-such-file", "/..%2Fsecret.txt", "/..%2Fno-such-file",
           "/assets/..%2F..%2Fsecret.txt", "/assets/..%2F..%2Fno-such-file", "/%2E%2E/secret.txt",
           "/.%2F..%2Fsecret.txt", "/%5C..%5Csecret.txt", "/link.txt", "/%00"]


@pytest.fixture
async def ui(start_server, tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>BI Cards</title>")
    (tmp_path / "secret.txt").write_text("not for the web")
    (dist / "link.txt").symlink_to(tmp_path / "secret.txt")
    return await start_server(ServeApp__ui_dir=str(dist))


async def test_ui_answers_the_same_for_every_outside_path(ui):
    """Every path out of the build, to a file that exists or not, gets the page, like an unknown page."""
    expected = await ui.fetch("GET", "/some/page")
    for path in OUTSIDE:
        response = await ui.fetch("GET", path)
        assert (response.code, response.body) == (expected.code, expected.body), path


async def test_bokehjs_answers_the_same_for_every_outside_path(api):
    """Only the listed scripts are served: anything else is the same 404, whatever exists on the host."""
    prefix = f"/static/bokeh/{bokeh.__version__}"
    for path in OUTSIDE:
        response = await api.fetch("GET", prefix + path)
        assert (response.code, response.error_code) == (404, "not_found"), path
