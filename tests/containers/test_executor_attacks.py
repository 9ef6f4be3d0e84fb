"""The kernel attack suites (tests/kernels/test_attacks.py, and the bounds attack classes that run on
kernels alone) in the executor container as compose starts it with the tests' override: the executor image
plus pytest and the suites, with the executor service's user, read-only root, tmpfs, dropped capabilities and
security options (the executor's seccomp profile among them), on an internal network. Its kernels come from
the launcher that container's agent builds: with ``--user-namespaces`` each in namespaces of its own inside a
user namespace, without cgroups (a multi-tenant executor)."""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from .engine import CONTAINER_TEST_SECONDS, ROOT, build_lock, merged_config, stack_env

pytestmark = pytest.mark.timeout(CONTAINER_TEST_SECONDS)
IMAGE = "bi-test/executor-attacks"
SUITES = ["tests/kernels/test_attacks.py", "tests/security/test_kernel_descriptors.py",
          "tests/security/test_inode_exhaustion.py"]
# The agent's launcher serves a whole module here (tests/kernels/conftest.py's launcher_scope): its event loop too.
ONE_LOOP_PER_MODULE = ["-o", "asyncio_default_fixture_loop_scope=module", "-o", "asyncio_default_test_loop_scope=module"]


def run_options(executor: dict) -> list[str]:
    """``docker run`` options for what compose sets on the ``executor`` service."""
    options = ["--read-only"] if executor.get("read_only") else []
    options += [f"--tmpfs={mount}" for mount in executor.get("tmpfs", [])]
    options += [f"--cap-drop={cap}" for cap in executor.get("cap_drop", [])]
    options += [f"--cap-add={cap}" for cap in executor.get("cap_add", [])]
    options += [f"--security-opt={option}" for option in executor.get("security_opt", [])]
    return options + ([f"--user={executor['user']}"] if "user" in executor else [])


def test_the_attack_suite_holds_in_the_executor_container(compose):
    """Every attack of the suite is stopped as the suite expects for this container's layers."""
    with build_lock("attacks"):
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, "-f", "tests/containers/attacks.Dockerfile", "."],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    executor = merged_config(compose, stack_env())["services"]["executor"]
    network = f"bitest-kernels-{secrets.token_hex(4)}"
    subprocess.run(["docker", "network", "create", "--internal", network], check=True, stdout=subprocess.DEVNULL)
    try:
        result = subprocess.run(
            ["docker", "run", "--rm", "--no-healthcheck", *run_options(executor), f"--network={network}",
             "-e", f"BI_TEST_EXECUTOR_COMMAND={json.dumps(executor['command'])}",
             IMAGE, *SUITES, *ONE_LOOP_PER_MODULE, "-q", "-rfEsxX", "--timeout=300"],
            cwd=ROOT, capture_output=True, text=True, timeout=1500)  # the seccomp profile's path is the root's
    finally:
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
