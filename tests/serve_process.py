"""``bi serve`` as a person runs it, in a subprocess on a free port (CLI and browser tests)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

BI = [sys.executable, "-m", "server.cli"]
ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("BI_") or k in ("JWT_SECRET_KEY", "CORS_ORIGINS"))}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, path: str, body: dict | None = None, token: str | None = None,
            timeout: float = 10, method: str | None = None) -> tuple[int, dict]:
    """The status and JSON answer (None for none) of a GET, or of a POST (or ``method``) of ``body``."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            answer = response.read()
            return response.status, json.loads(answer) if answer else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Server:
    """``bi serve`` in a subprocess, waited for until /api/health answers."""

    def __init__(self, cwd: Path, args: list[str], env: dict[str, str], port: int,
                 log: IO[str] | None = None, start_seconds: float = 30):
        """``log``: where its output goes (a file for long runs); piped for ``stop()`` otherwise."""
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        output = log if log is not None else subprocess.PIPE
        self.proc = subprocess.Popen([*BI, "serve", *args], cwd=cwd, env=env, stdout=output,
                                     stderr=output, text=True)
        deadline = time.monotonic() + start_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"bi serve exited: {self.proc.communicate()}")
            try:
                if request(port, "/api/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("bi serve did not answer in 30 s")

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err


def stop_all(servers: list[Server]) -> None:
    """Kill every server of ``servers`` still running (a fixture's teardown)."""
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


@contextmanager
def executor_agent(root: Path, name: str, pool_size: int) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """A ``bi executor`` (as root: it sandboxes kernels) logging to ``root/executor.log``, and the environment
    that points ``bi serve`` at it; stopped (SIGTERM, drained) on leaving, after what ran inside."""
    from server.execution.local_agent import AGENT_ENVIRONMENT, load_or_create_key_pair

    private, public = root / "executor_key.pem", root / "executor_key.pub.pem"
    load_or_create_key_pair(private, public)
    port = free_port()
    with open(root / "executor.log", "w") as log:
        agent = subprocess.Popen([*BI, "executor", f"--port={port}", f"--public-key={public}",
                                  f"--run-dir={root / 'k'}", f"--pool-size={pool_size}",
                                  "--ExecutorApp.drain_timeout=10", f"--cgroup-name={name}-{os.getpid()}"],
                                 cwd=ROOT, env={**AGENT_ENVIRONMENT, "PYTHONPATH": str(ROOT)},
                                 stdout=log, stderr=subprocess.STDOUT)
    try:
        yield agent, {"BI_EXECUTOR_URLS": f"http://127.0.0.1:{port}", "BI_EXECUTOR_PRIVATE_KEY_FILE": str(private)}
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
