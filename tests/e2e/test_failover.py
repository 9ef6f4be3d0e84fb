"""Failover in a browser: two ``bi serve`` processes on one SQLite store with one ``bi executor`` and a real
``redis-server`` (the cluster of ``tests/server/test_failover.py``), behind a proxy that sends each new
connection to A, or to B once A is dead, as a load balancer does. The page is the proxy's origin, so the editor
reconnects the way it does in production: to the same address, reaching whichever process is there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_kernel_client import JupyterKernelClient
from playwright.sync_api import Page, expect

from tests.kernels.sandbox.helpers import require

from ..serve_process import request
from ..server.test_failover import ADMIN, Cluster, running_cluster
from ..switch_proxy import SwitchingProxy
from .conftest import screenshot
from .test_card_editor import type_code
from .test_jupyterlab import LAB_TOKEN, running_lab

SET_X = "x = object()\nprint(id(x))"
WAITING = "import time\nprint('waiting', flush=True)\ntime.sleep(4)\nprint(id(x))"


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory) -> Iterator[tuple[Cluster, SwitchingProxy]]:
    require(os.geteuid() == 0, "the executor agent needs root to sandbox kernels")
    with running_cluster(tmp_path_factory.mktemp("failover-ui")) as cluster:
        proxy = SwitchingProxy([server.port for server in cluster.servers])
        try:
            yield cluster, proxy
        finally:
            proxy.close()


def card_kernels(cluster: Cluster) -> list[tuple[str, str]]:
    """The card sessions the store records, with their kernels."""
    with sqlite3.connect(cluster.root / "data" / "bi.sqlite3") as db:
        return db.execute("SELECT id, kernel_id FROM kernel_records WHERE kind = 'card'").fetchall()


def test_the_card_editor_jupyterlab_and_a_jupyter_client_go_on_through_the_other_server(page: Page, behind_proxy,
                                                                                         tmp_path):
    """A is killed (``kill -9``) while the editor's run sleeps: with no user action the page reaches B, which
    reattaches to the same kernel process; the run's output (``id(x)`` of the x set before) and its end show.
    JupyterLab (gateway mode, through the proxy) and a Jupyter client on the REST and websocket API
    (jupyter_kernel_client, reconnecting its websocket), whose kernels A held, run their next cells through B,
    with their x, in the same kernel processes."""
    pytest.importorskip("jupyterlab")
    cluster, proxy = behind_proxy
    a = cluster.servers[0]
    token = request(a.port, "/api/auth/login", ADMIN)[1]["access_token"]
    status, personal = request(a.port, "/api/me/tokens", {"name": "client", "expires_in_days": 1}, token=token)
    assert status == 201, personal
    notebook = JupyterKernelClient(server_url=proxy.url, token=personal["token"], client_kwargs={"reconnect_interval": 1})
    notebook.start()
    try:
        with running_lab(proxy.url, personal["token"], tmp_path, [SET_X, "print(id(x))"]) as lab:
            go_on_through_the_other(page, cluster, proxy.url, notebook, lab, tmp_path / "lab.log")
    finally:
        notebook.stop(shutdown_kernel=True)


def go_on_through_the_other(page: Page, cluster: Cluster, proxy_url: str, notebook: JupyterKernelClient, lab: str,
                            lab_log: Path) -> None:
    a = cluster.servers[0]
    client_identity = notebook.execute(SET_X)["outputs"][0]["text"]
    client_pid = cluster.kernel_pid(cluster.kernel_of(notebook.id))

    lab_page = page.context.new_page()
    lab_page.goto(f"{lab}/lab/tree/report.ipynb?token={LAB_TOKEN}")
    expect(lab_page.get_by_text("| Idle")).to_be_visible(timeout=60_000)
    cells = lab_page.locator(".jp-Notebook .jp-Cell")
    cells.nth(0).locator(".jp-InputArea-editor").click()
    lab_page.keyboard.press("Shift+Enter")
    expect(cells.nth(0).locator(".jp-OutputArea-output")).to_have_text(re.compile(r"^\d+\s*$"), timeout=60_000)
    lab_identity = cells.nth(0).locator(".jp-OutputArea-output").inner_text().strip()
    with urllib.request.urlopen(f"{lab}/api/sessions?token={LAB_TOKEN}", timeout=30) as answer_:
        [lab_kernel] = [session["kernel"]["id"] for session in json.loads(answer_.read())]
    lab_pid = cluster.kernel_pid(cluster.kernel_of(lab_kernel))

    page.goto(f"{proxy_url}/signin?next=/cards/new")
    page.get_by_label("Email").fill(ADMIN["email"])
    page.get_by_label("Password").fill(ADMIN["password"])
    page.get_by_role("button", name="Sign in").click()
    outputs = page.locator(".outputs")
    type_code(page, SET_X)
    page.keyboard.press("Control+Enter")
    expect(outputs.locator(".output-stream")).to_have_text(re.compile(r"^\d+\n$"), timeout=60_000)
    identity = outputs.locator(".output-stream").inner_text().strip()
    [(session_id, kernel_id)] = card_kernels(cluster)
    pid = cluster.kernel_pid(kernel_id)

    type_code(page, WAITING)
    page.keyboard.press("Control+Enter")
    expect(outputs).to_contain_text("waiting", timeout=30_000)
    expect(outputs).not_to_contain_text(identity)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)

    # the card editor: no user action
    expect(outputs).to_contain_text(identity, timeout=30_000)
    expect(page.locator(".run-status.ok")).to_contain_text("Finished in", timeout=30_000)
    screenshot(page, "failover-card")
    assert any('"session_reattached"' in line and session_id in line
               for line in cluster.log_of(1).read_text().splitlines()), "B did not reattach to the session"
    assert card_kernels(cluster) == [(session_id, kernel_id)]
    assert cluster.kernel_pid(kernel_id) == pid
    type_code(page, "print(id(x))")  # the next run goes to B too
    page.keyboard.press("Control+Enter")
    expect(outputs.locator(".output-stream")).to_have_text(f"{identity}\n", timeout=30_000)
    assert cluster.kernel_pid(kernel_id) == pid

    # the Jupyter client on our API
    assert answer(notebook, "print(id(x))")["outputs"][0]["text"] == client_identity
    assert cluster.kernel_pid(cluster.kernel_of(notebook.id)) == client_pid

    # JupyterLab: once jupyter_server's gateway websocket is back (through the proxy, to B), the next cell
    deadline = time.monotonic() + 60
    while sum(f"{lab_kernel}/channels" in line for line in lab_log.read_text().splitlines()
              if "Connecting to" in line) < 2:
        assert time.monotonic() < deadline, lab_log.read_text()[-3000:]
        time.sleep(0.5)
    cells.nth(1).locator(".jp-InputArea-editor").click()
    lab_page.keyboard.press("Shift+Enter")
    expect(cells.nth(1).locator(".jp-OutputArea-output")).to_have_text(lab_identity, timeout=30_000)
    screenshot(lab_page, "failover-jupyterlab")
    assert cluster.kernel_pid(cluster.kernel_of(lab_kernel)) == lab_pid


def answer(notebook: JupyterKernelClient, code: str, seconds: float = 60) -> dict:
    """The reply to ``code``, sent again until one comes: a request sent while the client reconnects is lost."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            reply = notebook.execute(code, timeout=5)
        except TimeoutError:
            reply = {"outputs": []}
        if reply["outputs"]:
            return reply
        assert time.monotonic() < deadline, reply
