"""Real JupyterLab 4 in gateway mode (``jupyter lab --gateway-url``) on this server, in Chromium: a notebook's
DataFrame shows as table rows and a Bokeh figure as its canvas (with the jupyter_bokeh extension)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Browser, expect

from ..serve_process import free_port
from .conftest import CONTEXT, api, screenshot, token_of

LAB_TOKEN = "lab-test-token"
CELLS = [
    "import pandas as pd\npd.DataFrame({'店舗': ['東京', '大阪', '名古屋'], '売上': [120, 80, 30]})",
    "from bokeh.plotting import figure, show\np = figure(width=300, height=200)\np.line([1, 2, 3], [3, 1, 2])\nshow(p)",
]


@pytest.fixture(scope="module")
def lab(bi, tmp_path_factory) -> Iterator[str]:
    """JupyterLab with its kernels on ``bi`` (a personal access token), a notebook in its folder; its URL."""
    pytest.importorskip("jupyterlab")
    status, created = api(bi, "POST", "/api/me/tokens", {"name": "lab", "expires_in_days": 1}, token=token_of(bi))
    assert status == 201, created
    with running_lab(bi.url, created["token"], tmp_path_factory.mktemp("lab"), CELLS) as url:
        yield url


@contextlib.contextmanager
def running_lab(gateway_url: str, personal_token: str, folder: Path, cells: list[str]) -> Iterator[str]:
    """``jupyter lab --gateway-url=<gateway_url>`` in ``folder`` (its log: ``lab.log``), with ``report.ipynb`` of
    ``cells`` there; its URL."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in cells], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (BI sandbox)", "language": "python"}})
    nbformat.write(notebook, folder / "report.ipynb")
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder / ".config"), "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"),
           "JUPYTER_DATA_DIR": str(folder / ".data"), "KERNEL_LAUNCH_TIMEOUT": "60"}
    with open(folder / "lab.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
             f"--ServerApp.root_dir={folder}", f"--IdentityProvider.token={LAB_TOKEN}",
             f"--gateway-url={gateway_url}", f"--GatewayClient.auth_token={personal_token}",
             "--GatewayClient.request_timeout=60", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
             "jupyterlab.NeverCheckForUpdate"],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={LAB_TOKEN}", timeout=5)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (folder / "lab.log").read_text()[-3000:]
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_jupyterlab_in_gateway_mode_renders_tables_and_bokeh(browser: Browser, lab):
    context = browser.new_context(**CONTEXT)
    page = context.new_page()
    try:
        page.goto(f"{lab}/lab/tree/report.ipynb?token={LAB_TOKEN}")
        expect(page.locator(".jp-Notebook")).to_be_visible(timeout=60_000)
        expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(len(CELLS))
        # a cell run before the kernel's session is connected is not sent: wait for its idle
        expect(page.get_by_text("| Idle")).to_be_visible(timeout=60_000)
        page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
        for _ in CELLS:
            page.keyboard.press("Shift+Enter")
        rows = page.locator(".jp-OutputArea-output table tbody tr")
        expect(rows).to_have_count(3, timeout=60_000)
        expect(rows.first).to_contain_text("東京")
        canvas = page.locator(".jp-OutputArea-output canvas").first
        expect(canvas).to_be_visible(timeout=60_000)
        assert canvas.evaluate("c => c.width") > 100
        screenshot(page, "jupyterlab-gateway")
    except AssertionError:
        screenshot(page, "jupyterlab-gateway-failed")
        raise
    finally:
        context.close()
