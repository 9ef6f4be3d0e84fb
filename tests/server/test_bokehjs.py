"""BokehJS served by the server itself: versioned, gzip-compressed, long-cached, nothing else."""

from __future__ import annotations

import gzip

import bokeh
from bokeh.util.paths import bokehjs_path
from tornado import httpclient


async def test_scripts_of_the_installed_version(api):
    """The listed scripts are the installed package's files, gzip on the wire, cached a year."""
    resources = (await api.fetch("GET", "/api/bokeh")).json()
    assert resources["version"] == bokeh.__version__
    assert resources["scripts"][0] == f"/static/bokeh/{bokeh.__version__}/bokeh.min.js"
    http = httpclient.AsyncHTTPClient(force_instance=True)
    for url in resources["scripts"]:
        raw = await http.fetch(api.base_url + url, headers={"Accept-Encoding": "gzip"},
                               decompress_response=False)
        assert raw.code == 200 and raw.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(raw.body) == (bokehjs_path() / "js" / url.rsplit("/", 1)[1]).read_bytes()
        assert "max-age=31536000" in raw.headers["Cache-Control"]
        assert "javascript" in raw.headers["Content-Type"]
    http.close()


async def test_other_versions_and_files_are_404(api):
    """Another version, a file not listed, or a path out of the folder: 404."""
    for path in ("/static/bokeh/0.0.1/bokeh.min.js", f"/static/bokeh/{bokeh.__version__}/compiler.js",
                 f"/static/bokeh/{bokeh.__version__}/..%2F..%2Fpy.typed"):
        response = await api.fetch("GET", path)
        assert response.code == 404 and response.error_code == "not_found"
