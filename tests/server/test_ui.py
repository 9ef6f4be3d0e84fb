"""The built web UI from the same origin as the API: files, the page for any other path, caching."""

from __future__ import annotations

import pytest


@pytest.fixture
async def ui(start_server, tmp_path):
    """A server whose UI directory holds an index page and one hashed asset."""
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>BI Cards</title>")
    (dist / "assets" / "index-abc123.js").write_text("console.log(1)")
    return await start_server(ServeApp__ui_dir=str(dist))


async def test_index_for_pages(ui):
    """The root and any page path get index.html, never cached, under a script-locking policy."""
    for path in ("/", "/cards/new", "/datasets/d1"):
        response = await ui.fetch("GET", path)
        assert response.code == 200
        assert b"<title>BI Cards</title>" in response.body
        assert response.headers["Cache-Control"] == "no-cache"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


async def test_hashed_assets_cached_for_a_year(ui):
    response = await ui.fetch("GET", "/assets/index-abc123.js")
    assert response.code == 200
    assert response.body == b"console.log(1)"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


async def test_api_paths_stay_json(ui):
    """Unknown API paths are still JSON 404s; the UI never answers under /api/."""
    response = await ui.fetch("GET", "/api/nothing/here")
    assert response.code == 404
    assert response.error_code == "not_found"
    assert (await ui.fetch("GET", "/api/health")).json() == {"status": "ok"}


async def test_no_files_outside_the_build(ui, tmp_path):
    (tmp_path / "secret.txt").write_text("not for the web")
    response = await ui.fetch("GET", "/%2E%2E/secret.txt")
    assert b"not for the web" not in response.body


async def test_missing_build_says_how_to_build(start_server, tmp_path):
    api = await start_server(ServeApp__ui_dir=str(tmp_path / "nothing"))
    response = await api.fetch("GET", "/cards")
    assert response.code == 404
    assert response.error_code == "not_built"
    assert "./dev serve" in response.json()["error"]["message"]
