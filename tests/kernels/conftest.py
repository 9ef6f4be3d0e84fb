"""Fixtures for tests that fork real sandboxed kernels: a launcher and a warm pool over it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from kernels.launcher import KernelLauncher
from kernels.pool import WarmPool
from kernels.sandbox import UidAllocator
from tests.kernels.sandbox.helpers import require

def uid_slice() -> UidAllocator:
    """Twenty uids picked by pid, so parallel test runs rarely meet (live ones are skipped anyway)."""
    return UidAllocator(62000 + os.getpid() % 50 * 20, 20)


@pytest.fixture
def sandbox_defaults() -> dict[str, Any]:
    """Sandbox settings of every kernel of ``launcher``; a test module overrides this to change them."""
    return {}


@pytest.fixture
async def launcher(sandbox_defaults: dict[str, Any]) -> AsyncIterator[KernelLauncher]:
    """A started launcher with a short run directory; every kernel is stopped afterwards."""
    require(os.geteuid() == 0, "needs root (per-kernel uids, namespaces, mounts, cgroups)")
    run_dir = Path(tempfile.mkdtemp(prefix="bi-run-"))
    instance = KernelLauncher(run_dir, uid_slice(), sandbox_defaults)
    await instance.start()
    yield instance
    await instance.close()
    shutil.rmtree(run_dir, ignore_errors=True)


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
