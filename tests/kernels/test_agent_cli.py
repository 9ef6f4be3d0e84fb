"""``bi executor`` as an operator runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernels.agent_app import PUBLIC_KEY_VARIABLE
from kernels.image import image_version
from tests.kernels.sandbox.helpers import require

BI = [sys.executable, "-m", "server.cli", "executor"]


def test_public_key_required(tmp_path):
    """Without the server's public key the agent refuses to start and says which flag to pass."""
    result = subprocess.run(BI, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "--public-key" in result.stderr


def test_public_key_from_the_environment_is_checked(tmp_path):
    """BI_EXECUTOR_PUBLIC_KEY stands in for --public-key; what is not a PEM public key is refused."""
    result = subprocess.run([sys.executable, "-m", "kernels"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={"PATH": "/usr/bin:/bin", PUBLIC_KEY_VARIABLE: "not a key"})
    assert result.returncode == 2
    assert "the server's public key is not a PEM public key" in result.stderr


def test_health_lists_layers_and_ctrl_c_stops(tmp_path):
    """The agent starts its pool, reports every sandbox layer in /health and stops on SIGINT."""
    require(os.geteuid() == 0, "needs root (the full sandbox)")
    key = tmp_path / "server_public.pem"
    key.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_dir = tempfile.mkdtemp(prefix="bi-cli-")
    agent = subprocess.Popen([*BI, "--port", str(port), "--public-key", str(key), "--run-dir", run_dir,
                              "--pool-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        health = None
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    health = json.loads(response.read())
                    break
            except OSError:
                time.sleep(0.1)
        assert health is not None, agent.stderr.read() if agent.poll() is not None else "no answer"
        assert health["weaker_sandbox"] == []
        assert health["sandbox"]["seccomp"] is True and health["sandbox"]["landlock_abi"] >= 1
        assert health["pool"] == {"ready": 1, "size": 1}
        assert health["image_version"] == image_version()
    finally:
        agent.send_signal(signal.SIGINT)
        agent.communicate(timeout=30)
    assert agent.returncode == 0
    assert list(Path(run_dir).iterdir()) == []
