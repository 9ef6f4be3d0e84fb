"""Fixtures for tests that fork real sandboxed kernels: a launcher and a warm pool over it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal
from collections.abc import AsyncIterator

import pytest

from kernels.agent_app import ExecutorApp
from kernels.launcher import KernelLauncher
from kernels.pool import WarmPool
from kernels.sandbox import UidAllocator
from kernels.sandbox.sandbox import probe
from tests.kernels.sandbox.helpers import require

# Set (to the agent's flags, a JSON list) only in the executor container of tests/containers/test_executor_attacks.py.
EXECUTOR_COMMAND = "BI_TEST_EXECUTOR_COMMAND"
IN_EXECUTOR_CONTAINER = EXECUTOR_COMMAND in os.environ


def uid_slice() -> UidAllocator:
    """Twenty uids picked by pid, so parallel test runs rarely meet (live ones are skipped anyway)."""
    return UidAllocator(62000 + os.getpid() % 50 * 20, 20)


# Set to cap the Landlock ABI of every kernel (the attack suite as an older host kernel, e.g. 2 for 6.1, runs it).
LANDLOCK_ABI_VARIABLE = "BI_TEST_LANDLOCK_ABI"


def launcher_scope(fixture_name: str, config: pytest.Config) -> Literal["module", "function"]:
    """One launcher per test; in the executor container one per module (the agent's launcher stays up as the
    agent's does, and a template's start there is most of an attack's cost). The container runs the tests and
    fixtures in one event loop per module (tests/containers/test_executor_attacks.py sets the loop scopes)."""
    return "module" if IN_EXECUTOR_CONTAINER else "function"


@pytest.fixture(scope=launcher_scope)
def sandbox_defaults() -> dict[str, Any]:
    """Sandbox settings of every kernel of ``launcher``; a test module overrides this to change them."""
    return {"landlock_abi": int(os.environ[LANDLOCK_ABI_VARIABLE])} if os.environ.get(LANDLOCK_ABI_VARIABLE) else {}


def executor_container_launcher(run_dir: Path, sandbox_defaults: dict[str, Any]) -> KernelLauncher:
    """The launcher of the executor agent that ``EXECUTOR_COMMAND`` (compose's flags) starts, in its
    ``--user-namespaces`` mode: every layer but cgroups, or the test fails (tests/containers/test_executor_attacks.py)."""
    app = ExecutorApp()
    app.parse_command_line(json.loads(os.environ[EXECUTOR_COMMAND]))
    missing, kernel_layers = app.missing_layers(probe())
    if missing != ("cgroup",):
        pytest.fail(f"the executor container lacks {missing}: its kernels saw {kernel_layers} (the attack suite runs "
                    "with --user-namespaces and the executor's seccomp profile, ops/seccomp/executor.json)")
    instance = app.launcher(missing, run_dir)
    instance.sandbox_defaults.update(sandbox_defaults)
    return instance


@pytest.fixture(scope=launcher_scope)
async def started_launcher(sandbox_defaults: dict[str, Any]) -> AsyncIterator[KernelLauncher]:
    """A started launcher with a short run directory; every kernel is stopped afterwards. In the executor
    container (``EXECUTOR_COMMAND`` set), the launcher of its agent, as compose starts it."""
    run_dir = Path(tempfile.mkdtemp(prefix="bi-run-"))
    if IN_EXECUTOR_CONTAINER:
        instance = executor_container_launcher(run_dir, sandbox_defaults)
    else:
        require(os.geteuid() == 0, "needs root (per-kernel uids, namespaces, mounts, cgroups)")
        instance = KernelLauncher(run_dir, uid_slice(), sandbox_defaults)
    await instance.start()
    yield instance
    await instance.close()
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
async def launcher(started_launcher: KernelLauncher) -> AsyncIterator[KernelLauncher]:
    """``started_launcher``; the kernels a test launched are stopped after it (where the launcher outlives it)."""
    before = set(started_launcher.kernels)
    yield started_launcher
    for kernel_id in set(started_launcher.kernels) - before:
        await started_launcher.stop(kernel_id)


@pytest.fixture
def pool_size() -> int:
    """Ready kernels in ``pool``; a test module overrides this fixture to change it."""
    return 2


@pytest.fixture
async def pool(launcher: KernelLauncher, pool_size: int) -> AsyncIterator[WarmPool]:
    """A started, full warm pool."""
    instance = WarmPool(launcher, size=pool_size)
    await instance.start()
    yield instance
    await instance.close()
