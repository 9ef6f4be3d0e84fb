"""A real executor agent process for tests: started, called over HTTP with signed tokens, stopped."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jupyter_client import BlockingKernelClient

from tests.kernels.kernel_fixtures import Result, execute
from tests.kernels.test_agent import token

START_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class AgentProcess:
    """``command`` started with ``env`` and its logs in ``log_file``; ``call`` signs with ``key``."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, key: Ed25519PrivateKey,
                 log_file: Path, cwd: Path):
        self.base_url = f"http://127.0.0.1:{port}"
        self.key = key
        self.log_file = log_file
        self.cwd = cwd
        with open(log_file, "wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.call("GET", "/health")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"the agent did not start: {self.logs()}") from None
                time.sleep(0.1)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        """(status, decoded JSON body or None) of one call with a fresh token."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b""
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Authorization": f"Bearer {token(key=self.key)}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, content = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, content = error.code, error.read()
        return status, json.loads(content) if content else None

    def run(self, created: dict[str, Any], code: str) -> Result:
        """Run ``code`` in a kernel this agent handed out (``created`` is its ``POST /kernels`` body)."""
        client = BlockingKernelClient()
        client.load_connection_info(created["connection"])
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            return execute(client, code)
        finally:
            client.stop_channels()

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log lines of event ``name``."""
        found = []
        for line in self.logs().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == name:
                found.append(record)
        return found

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
