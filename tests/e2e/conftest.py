"""Browser tests: Debian's chromium, driven by Playwright, against a real ``bi serve``.

Playwright's own browsers are never downloaded: the system chromium runs headless. Without it the
tests skip, except in CI (``CI=true``), where ``.ci/run`` installs it and they must run. Every test
saves screenshots of the pages it sees under ``tests/e2e/screenshots/`` (see the README).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.kernels.sandbox.helpers import require

from ..serve_process import ROOT, Server, clean_env, free_port

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"
UPLOAD_LIMIT = 1024 * 1024
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-default-apps", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """pytest-playwright launches this: the system chromium, headless, no network of its own."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs chromium for the browser tests: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI runs these tests")
    return {"executable_path": chromium, "headless": True, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright for this package only (pytest-playwright keeps it for the session): its sync API
    keeps an event loop running in this thread, which the asyncio tests after these must not find."""
    driver = sync_playwright().start()
    yield driver
    driver.stop()


@pytest.fixture(scope="package")
def browser(playwright: Playwright, browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(**browser_type_launch_args)
    yield chromium
    chromium.close()


# The tests read the English UI (an English browser; the admin never chooses a language), in Tokyo
# time; test_japanese.py opens a Japanese browser.
CONTEXT = {"viewport": {"width": 1280, "height": 800}, "locale": "en-US", "timezone_id": "Asia/Tokyo"}


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    return dict(CONTEXT)


@pytest.fixture(autouse=True)
def no_script_errors(page: Page) -> Iterator[None]:
    """Fails a test whose page threw, or logged an error (a blocked script or style, a failed
    embed); answers of 4xx that the page expects are not errors."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error"
            and not message.text.startswith("Failed to load resource") else None)
    yield
    assert not errors, errors


def start_bi(directory: Path, *flags: str) -> Iterator[Server]:
    """``bi serve`` on a fresh data dir with a known admin; its log goes to a file beside it."""
    if not (ROOT / "static" / "dist" / "index.html").is_file():
        pytest.fail("static/dist is not built: run the tests with ./dev test, which builds it")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with open(directory / "server.log", "w") as log:
        server = Server(directory, ["--port", str(port), "--data-dir", str(directory / "data"), *flags],
                        clean_env(PYTHONPATH=str(ROOT), BI_ADMIN_EMAIL=ADMIN_EMAIL,
                                  BI_ADMIN_PASSWORD=ADMIN_PASSWORD), port, log=log, start_seconds=60)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="package")
def bi(tmp_path_factory) -> Iterator[Server]:
    """A server that runs cards (needs root for the sandbox) and takes uploads up to 1 MB, so that
    a too-large file is quick to make."""
    require(os.geteuid() == 0, "the local executor agent needs root to sandbox kernels")
    yield from start_bi(tmp_path_factory.mktemp("bi"), "--ServeApp.local_executor_pool_size=1",
                        f"--DatasetService.max_upload_bytes={UPLOAD_LIMIT}")


def api(server: Server, method: str, path: str, body: Any = None, token: str | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One JSON call to the server's API, as another client would make it."""
    request = urllib.request.Request(server.url + path, method=method, headers={
        "Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}),
        **(headers or {})}, data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def token_of(server: Server) -> str:
    status, body = api(server, "POST", "/api/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert status == 200, body
    return body["access_token"]


def screenshot(page: Page, name: str, also_wide: bool = False) -> None:
    """Saves what the user sees now as ``screenshots/<name>.png``; with ``also_wide``, also at
    1920x1080 as ``<name>-1920.png``."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    if also_wide:
        size = page.viewport_size
        page.set_viewport_size({"width": 1920, "height": 1080})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-1920.png"))
        page.set_viewport_size(size)


def sign_in(page: Page, server: Server, next_path: str = "/cards") -> None:
    page.goto(f"{server.url}/signin?next={next_path}")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
