"""Losing the local executor agent: ``bi serve`` notices, clears what it left, starts a new one and says so.

A real ``bi serve`` (as root, with the agent it starts itself) whose agent is killed with SIGKILL,
as the OOM killer or an operator would. ``/proc`` and ``/sys/fs/cgroup`` are read directly: nothing
of the old agent's process tree (template, kernels' reapers, kernels) may survive, nor their cgroups.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kernels.sandbox import cgroups, mounts
from kernels.sandbox.cgroups import Cgroup
from server.execution.local_agent import LocalAgent
from tests.kernels.sandbox.helpers import require

from ..serve_process import ROOT, Server, clean_env, free_port, request

ADMIN = {"email": "admin@example.com", "password": "agent loss password"}
CGROUP_ROOT = Path("/sys/fs/cgroup")


@pytest.fixture
def serve(tmp_path) -> Iterator[Server]:
    require(os.geteuid() == 0, "the local executor agent needs root to sandbox kernels")
    port = free_port()
    env = clean_env(PYTHONPATH=str(ROOT), BI_ADMIN_EMAIL=ADMIN["email"], BI_ADMIN_PASSWORD=ADMIN["password"])
    with open(tmp_path / "serve.log", "w") as log:
        server = Server(tmp_path, ["--port", str(port), "--data-dir", str(tmp_path / "data"),
                                   "--ServeApp.local_executor_pool_size=1"], env, port, log, start_seconds=120)
        yield server
        try:
            left = run_dir(local_agent(server))
        finally:  # stopped even when its agent is not there (a failed test): it would outlive the run
            server.proc.send_signal(signal.SIGINT)
            server.proc.wait(30)
        assert not mounts.mounts_beneath(str(left)) and not left.exists(), "a stopped agent leaves nothing"


def children() -> dict[int, list[int]]:
    """Parent pid -> its child pids, for every process (zombies left out: they run nothing)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rpartition(")")[2].split()[:2]
            if state != "Z":
                tree.setdefault(int(ppid), []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still run (not gone, not zombies)."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def kernel_cgroups(pids: set[int]) -> set[Path]:
    """The cgroup directories of ``pids`` that the agent made (``.../bi/...``)."""
    found = set()
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "/bi/" in path + "/":
                for controller in controllers.split(",") if controllers else ["unified"]:
                    found.add(CGROUP_ROOT / controller / path.lstrip("/"))
    return {path for path in found if path.is_dir()}


def until(what: str, condition: Callable[[], object], seconds: float) -> object:
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.1)
    return result


def local_agent(server: Server) -> int:
    [agent] = [pid for pid in children().get(server.proc.pid, [])
               if b"executor" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return agent


def run_dir(agent: int) -> Path:
    """The run directory the server gave its agent (its ``--run-dir``)."""
    arguments = Path(f"/proc/{agent}/cmdline").read_bytes().decode().split("\0")
    [directory] = [a.partition("=")[2] for a in arguments if a.startswith("--run-dir=")]
    return Path(directory)


def test_a_killed_agent_is_replaced_and_leaves_nothing_behind(serve):
    port = serve.port
    token = request(port, "/api/auth/login", ADMIN)[1]["access_token"]
    status, session = request(port, "/api/card-sessions", {"datasets": []}, token, timeout=60)
    assert status == 201, session
    execute = f"/api/card-sessions/{session['id']}/execute"
    assert request(port, execute, {"code": "x = 6 * 7\nx"}, token, timeout=60)[0] == 200
    assert request(port, "/api/ready") == (200, {"status": "ready", "checks": {
        "store": {"ok": True}, "executors": {"ok": True}, "bus": {"ok": True}}})

    agent = local_agent(serve)
    tree = descendants(agent)
    cgroups = kernel_cgroups(tree)
    assert len(tree) >= 3 and cgroups, "a template and the kernels of the session and of the warm pool"
    old_run_dir = run_dir(agent)
    assert mounts.mounts_beneath(str(old_run_dir)), "each kernel's ipc directory is a tmpfs"
    os.kill(agent, signal.SIGKILL)

    status, body = until("/api/ready says no executor answers",
                         lambda: (answer := request(port, "/api/ready"))[0] == 503 and answer, 10)
    assert body["status"] == "not_ready" and body["checks"]["store"] == {"ok": True}
    assert body["checks"]["executors"]["ok"] is False and body["checks"]["executors"]["reason"]
    assert "127.0.0.1" not in str(body)
    assert request(port, "/api/health") == (200, {"status": "ok"})
    status, lost = request(port, execute, {"code": "x"}, token, timeout=60)
    assert status == 409 and lost["error"]["code"] == "kernel_lost", lost
    assert "Open a new session" in lost["error"]["message"]

    until("the old agent's processes are gone", lambda: not running(tree | {agent}), 10)
    until("the old kernels' cgroups are removed", lambda: not any(path.is_dir() for path in cgroups), 10)
    until("the old kernels' ipc mounts are gone", lambda: not mounts.mounts_beneath(str(old_run_dir)), 10)
    until("the old run directory is removed", lambda: not old_run_dir.exists(), 10)

    until("/api/ready says ready again", lambda: request(port, "/api/ready")[0] == 200, 90)
    assert local_agent(serve) != agent
    status, fresh = request(port, "/api/card-sessions", {"datasets": []}, token, timeout=60)
    assert status == 201, fresh
    status, result = request(port, f"/api/card-sessions/{fresh['id']}/execute", {"code": "1 + 1"}, token)
    assert status == 200 and result["outputs"][-1]["data"]["text/plain"] == "2", result
    assert request(port, "/api/health") == (200, {"status": "ok"})


def test_leftovers_that_will_not_go_leave_the_rest_removed(tmp_path):
    """A cgroup of a dead agent that cannot be removed (here: one below it that nothing made) is logged, and its
    kernels' mounts and run directory are removed all the same: the error once ended the agent's restarts,
    leaving bi serve without an executor for good."""
    require(os.geteuid() == 0, "cgroups and mounts need root")
    agent = LocalAgent(tmp_path, pool_size=1, allow_weaker_sandbox=False)
    agent.run_dir = tempfile.mkdtemp(prefix="bi-k-")
    kernel = Cgroup("0" * 32, parent=cgroups.agent_parent(agent.cgroup_name))
    kernel.create()
    blocking = [os.path.join(path, "stuck") for path in kernel.paths.values()]
    ipc = os.path.join(agent.run_dir, "0" * 12, "ipc")
    os.makedirs(ipc)
    mounts.mount_tmpfs(ipc, 1 << 16, 16, (0, 0))
    try:
        for path in blocking:
            os.mkdir(path)
        with capture_logs() as logs:
            agent.remove_leftovers()
        assert [entry["event"] for entry in logs] == ["local_executor_cgroups_not_removed"]
        assert not mounts.mounts_beneath(agent.run_dir) and not os.path.exists(agent.run_dir)
    finally:
        for path in blocking:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(path)
        cgroups.remove_tree(cgroups.agent_parent(agent.cgroup_name))
        mounts.unmount_beneath(agent.run_dir)
