"""Work that must happen once happens once: three ``bi serve`` processes on one SQLite store and one
executor agent (``bi executor``), a dashboard refreshed every round (its schedule sped up), each round
run by one of them; one holder stopped with SIGSTOP past its lease's expiry cannot write when it resumes.

Counted through what the processes log (``dashboard_refreshed``, an audit event written only once the
round's lease was finished) and what the store holds (the finished leases, one per round).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernels.sandbox.helpers import require

from ..serve_process import ROOT, Server, clean_env, executor_agent, free_port, request, stop_all

ADMIN = {"email": "admin@example.com", "password": "refresh once password"}
ROUND_SECONDS = 4  # a 60 s refresh, sped up 15 times
SCHEDULE = ["--DashboardHub.refresh_speedup=15", "--DashboardHub.refresh_tick=0.2", "--DashboardHub.lease_seconds=2.5"]
CARD = {"schemaVersion": 1, "title": "定時", "parameters": [], "refresh": {"every_seconds": 60},
        "cards": [{"key": "slow", "title": "遅い", "code": "import time\ntime.sleep(0.5)\nprint('更新')"}],
        "layout": [{"card": "slow", "x": 0, "y": 0, "w": 6, "h": 4}]}


class Cluster:
    def __init__(self, root: Path, servers: list[Server], logs: list[Path]):
        self.root = root
        self.servers = servers
        self.logs = logs

    def events(self, name: str) -> list[tuple[int, dict]]:
        """Every logged event ``name``, with the index of the process that logged it."""
        found = []
        for index, path in enumerate(self.logs):
            for line in path.read_text().splitlines():
                if line.startswith("{") and f'"{name}"' in line:
                    event = json.loads(line)
                    if event.get("event") == name:
                        found.append((index, event))
        return found

    def finished_rounds(self, dashboard_id: str) -> dict[int, str]:
        """The store's finished refresh leases of the dashboard: round -> the task that finished it."""
        with sqlite3.connect(self.root / "data" / "bi.sqlite3") as db:
            rows = db.execute("SELECT name, holder FROM leases WHERE name LIKE ? AND done = 1",
                              (f"refresh:{dashboard_id}:%",)).fetchall()
        return {int(name.rsplit(":", 1)[1]): holder for name, holder in rows}


@pytest.fixture
def cluster(tmp_path) -> Iterator[Cluster]:
    require(os.geteuid() == 0, "the executor agent needs root to sandbox kernels")
    with executor_agent(tmp_path, "refresh-once", pool_size=2) as (_, executor_env):
        env = clean_env(PYTHONPATH=str(ROOT), BI_ADMIN_EMAIL=ADMIN["email"], BI_ADMIN_PASSWORD=ADMIN["password"],
                        **executor_env)
        logs = [tmp_path / f"serve{n}.log" for n in range(3)]
        started: dict[int, Server] = {}

        def serve(index: int) -> None:
            port = free_port()
            with open(logs[index], "w") as log:
                started[index] = Server(tmp_path, ["--port", str(port), "--data-dir", str(tmp_path / "data"), *SCHEDULE],
                                        env, port, log, start_seconds=120)

        try:
            serve(0)  # first alone: it makes the store and the sign-in key
            with concurrent.futures.ThreadPoolExecutor(2) as starting:
                list(starting.map(serve, (1, 2)))
            yield Cluster(tmp_path, [started[n] for n in range(3)], logs)
        finally:
            for server in started.values():
                os.kill(server.proc.pid, signal.SIGCONT)
                server.proc.send_signal(signal.SIGINT)  # their sessions end, so the agent stops at once
            for server in started.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.proc.wait(20)
            stop_all(list(started.values()))


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"waited {seconds} s for {what}")


def test_each_round_runs_once_and_a_paused_holder_cannot_write(cluster):
    port = cluster.servers[0].port
    status, body = request(port, "/api/auth/login", ADMIN)
    assert status == 200, body
    status, dashboard = request(port, "/api/dashboards", CARD, token=body["access_token"])
    assert status == 201, dashboard

    # every round is finished by exactly one process, whichever takes its lease first
    wait_for(lambda: len(cluster.finished_rounds(dashboard["id"])) >= 2, 6 * ROUND_SECONDS, "two rounds")
    refreshed = Counter(event["round"] for _, event in cluster.events("dashboard_refreshed"))
    assert refreshed and max(refreshed.values()) == 1, f"a round refreshed twice: {refreshed}"
    assert sorted(refreshed) == list(range(1, max(refreshed) + 1)), f"a round was skipped: {refreshed}"

    # stop the process running the next round, past its lease: it resumes to find its writes refused
    started = {event["round"] for _, event in cluster.events("dashboard_refresh_started")}
    index, paused = wait_for(lambda: next(((i, e) for i, e in cluster.events("dashboard_refresh_started")
                                           if e["round"] not in started), None), 3 * ROUND_SECONDS, "a new round")
    os.kill(cluster.servers[index].proc.pid, signal.SIGSTOP)
    time.sleep(2 * ROUND_SECONDS)
    os.kill(cluster.servers[index].proc.pid, signal.SIGCONT)
    held = (paused["lease"], paused["lease_version"])
    # it loses the lease it held (and, resuming as a round falls due, possibly a later one it raced for)
    wait_for(lambda: held in [(e["lease"], e["lease_version"]) for i, e in cluster.events("lease_lost") if i == index],
             10, "the lost lease")
    assert not [e for i, e in cluster.events("dashboard_refreshed")
                if i == index and e["round"] == paused["round"]], "the paused holder finished nothing"
    assert cluster.finished_rounds(dashboard["id"]).get(paused["round"]) != paused["task"]

    # the others went on, still once per round
    last = max(refreshed)
    wait_for(lambda: [r for r in cluster.finished_rounds(dashboard["id"]) if r > paused["round"]],
             3 * ROUND_SECONDS, "a round after the pause")
    events = cluster.events("dashboard_refreshed")
    refreshed = Counter(event["round"] for _, event in events)
    assert max(refreshed.values()) == 1, f"a round refreshed twice: {refreshed}"
    stored = cluster.finished_rounds(dashboard["id"])
    assert stored == {event["round"]: event["task"] for _, event in events}, "the log and the store agree"
    assert set(range(1, last + 1)) <= set(stored), "the rounds before the pause all ran"
