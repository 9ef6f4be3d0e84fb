"""API tasks as production runs them, on one machine: ``bi serve --store=aws`` processes on a moto server
(DynamoDB and S3 on loopback), one ``bi executor`` agent, and optionally a ``redis-server`` carrying the bus
between them. The benches that measure the AWS store or several API tasks start one with ``Cluster``.

Needs root (the agent sandboxes kernels) and, with ``redis=True``, Debian's ``redis-server``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BI = [sys.executable, "-m", "server.cli"]
ADMIN, PASSWORD = "bench@example.com", secrets.token_urlsafe(16)
# server.execution.local_agent.AGENT_ENVIRONMENT (not imported: bench/kernels.py hides the kernels package here)
AGENT_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


class Cluster:
    """``servers`` API processes (``urls``) on one moto store, one executor agent and, with ``redis``, one
    ``redis-server`` as their bus. ``pids`` are the processes whose CPU an update costs (the API processes
    and Redis). Use as a context manager; ``flags`` go to every ``bi serve``; with ``profile`` (a folder) each
    ``bi serve`` runs under cProfile and writes ``serve<n>.prof`` there when it stops."""

    def __init__(self, folder: Path, servers: int = 1, redis: bool = False, flags: tuple[str, ...] = (),
                 profile: Path | None = None):
        self.folder = folder
        self.profile = profile
        self.count = servers
        self.redis = redis
        self.flags = flags
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self.serve_pids: list[int] = []
        self.redis_pid: int | None = None

    def _start(self, command: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.log", "wb") as log:
            process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def __enter__(self) -> Cluster:
        try:
            self._start_all()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_all(self) -> None:
        moto_port = free_port()
        moto = self._start([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
                            str(moto_port)], {**os.environ, **AWS_ENV}, "moto")
        moto_url = f"http://127.0.0.1:{moto_port}"
        wait_for(moto_url, moto)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("BI_")}, **AWS_ENV,
               "PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL_DYNAMODB": moto_url, "AWS_ENDPOINT_URL_S3": moto_url,
               "BI_STORE": "aws", "JWT_SECRET_KEY": secrets.token_urlsafe(48), "BI_ADMIN_EMAIL": ADMIN,
               "BI_ADMIN_PASSWORD": PASSWORD}
        subprocess.run([*BI, "init-tables"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if self.redis:
            redis_port = free_port()
            server = shutil.which("redis-server")
            if server is None:
                raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
            redis = self._start([server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"], env, "redis")
            self.redis_pid = redis.pid
            env["BI_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        private, public = self.folder / "executor_key.pem", self.folder / "executor_key.pub.pem"
        subprocess.run([*BI, "executor-key", f"--private={private}", f"--public={public}"], env=env, cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        agent_port = free_port()
        agent = self._start([*BI, "executor", f"--port={agent_port}", f"--public-key={public}",
                             f"--run-dir={self.folder / 'kernels'}", "--pool-size=2"],
                            {**AGENT_ENVIRONMENT, "PYTHONPATH": str(ROOT)}, "executor")
        wait_for(f"http://127.0.0.1:{agent_port}/health", agent)
        env.update(BI_EXECUTOR_URLS=f"http://127.0.0.1:{agent_port}", BI_EXECUTOR_PRIVATE_KEY_FILE=str(private))
        started = []
        for index in range(self.count):
            port = free_port()
            profiled = ["-m", "cProfile", "-o", str(self.profile / f"serve{index}.prof")] if self.profile else []
            serve = self._start([sys.executable, *profiled, *BI[1:], "serve", f"--port={port}", f"--data-dir={self.folder / f'data{index}'}",
                                 "--KernelPool.sessions_per_user=1000", *self.flags], env, f"serve{index}")
            started.append((serve, f"http://127.0.0.1:{port}"))
            if index == 0:  # alone first: it creates the admin
                wait_for(started[0][1] + "/api/health", serve)
        for serve, url in started:
            wait_for(url + "/api/health", serve)
            self.urls.append(url)
            self.serve_pids.append(serve.pid)

    @property
    def pids(self) -> list[int]:
        return [*self.serve_pids, *([self.redis_pid] if self.redis_pid else [])]

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
