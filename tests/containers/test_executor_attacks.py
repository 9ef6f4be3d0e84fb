"""The kernel attack suites (tests/kernels/test_attacks.py, and the bounds attack classes that run on
kernels alone) in the executor container as compose starts it: the executor image plus pytest and the
suites, with the executor service's user, read-only root, tmpfs, dropped capabilities and security
options, on an internal network. Its kernels come from the launcher that container's agent builds,
without the layers the container lacks (uid, namespaces, mounts, cgroup: a single-tenant executor)."""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest
import yaml

from .engine import CONTAINER_TEST_SECONDS, ROOT, build_lock

pytestmark = pytest.mark.timeout(CONTAINER_TEST_SECONDS)
IMAGE = "bi-test/executor-attacks"
EXECUTOR = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["executor"]
SUITES = ["tests/kernels/test_attacks.py", "tests/security/test_kernel_descriptors.py",
          "tests/security/test_inode_exhaustion.py"]


def run_options() -> list[str]:
    """``docker run`` options for what compose sets on the executor service."""
    options = ["--read-only"] if EXECUTOR.get("read_only") else []
    options += [f"--tmpfs={mount}" for mount in EXECUTOR.get("tmpfs", [])]
    options += [f"--cap-drop={cap}" for cap in EXECUTOR.get("cap_drop", [])]
    options += [f"--cap-add={cap}" for cap in EXECUTOR.get("cap_add", [])]
    options += [f"--security-opt={option}" for option in EXECUTOR.get("security_opt", [])]
    return options + ([f"--user={EXECUTOR['user']}"] if "user" in EXECUTOR else [])


def test_the_attack_suite_holds_in_the_executor_container(compose):
    """Every attack of the suite is stopped as the suite expects for this container's layers."""
    with build_lock("attacks"):
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, "-f", "tests/containers/attacks.Dockerfile", "."],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    network = f"bitest-kernels-{secrets.token_hex(4)}"
    subprocess.run(["docker", "network", "create", "--internal", network], check=True, stdout=subprocess.DEVNULL)
    try:
        result = subprocess.run(
            ["docker", "run", "--rm", "--no-healthcheck", *run_options(), f"--network={network}",
             "-e", f"BI_TEST_EXECUTOR_COMMAND={json.dumps(EXECUTOR['command'])}",
             IMAGE, *SUITES, "-q", "-rfEsxX", "--timeout=300"],
            capture_output=True, text=True, timeout=1500)
    finally:
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
