"""An anonymous burst of wrong-password sign-ins: it must not take card execution down with it.

Password checks cost 64 MiB and tens of milliseconds of CPU each. Sixty of them at once from one
address, with no account needed, used to run on the executor that also resolves the agent's address,
so the agent's health checks timed out (``/api/ready`` 503), sessions could not open, and the server
grew by 400 MB. Here a real ``bi serve`` with its own agent takes the burst while a signed-in user runs
a card and ``/api/ready`` is polled.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernels.sandbox.helpers import require

from ..serve_process import ROOT, Server, clean_env, free_port, request
from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, vm_kb

BURST = 60
HWM_GROWTH_KB = 200 * 1024  # two password checks at a time (64 MiB each) and their requests


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Server]:
    require(os.geteuid() == 0, "the local executor agent needs root to sandbox kernels")
    port = free_port()
    env = clean_env(PYTHONPATH=str(ROOT), BI_ADMIN_EMAIL=ADMIN_EMAIL, BI_ADMIN_PASSWORD=ADMIN_PASSWORD)
    with open(tmp_path / "serve.log", "w") as log:
        server = Server(tmp_path, ["--port", str(port), "--data-dir", str(tmp_path / "data"),
                                   "--ServeApp.local_executor_pool_size=1"], env, port, log, start_seconds=120)
        yield server
        server.proc.send_signal(signal.SIGINT)
        server.proc.wait(30)


def wrong_login(port: int, i: int) -> tuple[int, dict]:
    return request(port, "/api/auth/login", {"email": f"nobody{i}@example.com", "password": "wrong"}, timeout=60)


def test_a_login_burst_leaves_readiness_and_runs_alone(serve):
    port = serve.port
    token = request(port, "/api/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})[1]["access_token"]
    assert request(port, "/api/ready")[0] == 200
    Path(f"/proc/{serve.proc.pid}/clear_refs").write_text("5")
    before = vm_kb(serve.proc.pid, "VmHWM")

    with concurrent.futures.ThreadPoolExecutor(BURST) as threads:
        burst = [threads.submit(wrong_login, port, i) for i in range(BURST)]
        time.sleep(0.5)
        ready = [request(port, "/api/ready", timeout=30) for _ in range(3)]
        status, session = request(port, "/api/card-sessions", {"datasets": []}, token, timeout=30)
        assert status == 201, session
        status, result = request(port, f"/api/card-sessions/{session['id']}/execute", {"code": "6 * 7"}, token,
                                 timeout=30)
        assert status == 200 and result["outputs"][-1]["data"]["text/plain"] == "42", result
        ready.append(request(port, "/api/ready", timeout=30))
        answers = [future.result() for future in burst]

    assert [status for status, _ in ready] == [200] * len(ready), ready
    statuses = sorted(status for status, _ in answers)
    assert set(statuses) <= {401, 429, 503}, statuses
    assert statuses.count(401) <= 20, f"one address got {statuses.count(401)} password checks at once"
    for status, body in answers:
        if status != 401:
            assert body["error"]["code"] in ("rate_limited", "unavailable") and body["error"]["message"]
    growth = vm_kb(serve.proc.pid, "VmHWM") - before
    assert growth < HWM_GROWTH_KB, f"the server grew by {growth // 1024} MB during the burst"

