"""How a kernel ended, as the launcher reports it: by itself, or killed by its memory cgroup."""

from __future__ import annotations

import asyncio

import pytest

from kernels.launcher import LaunchedKernel


@pytest.fixture
def sandbox_defaults() -> dict:
    return {"memory_mb": 256}  # below the address space limit, so the cgroup's OOM killer acts first


async def ended(launcher, code: str) -> LaunchedKernel:
    kernel = await launcher.launch()
    heard: asyncio.Future[LaunchedKernel] = asyncio.get_running_loop().create_future()
    launcher.exit_listeners.append(lambda k: k is kernel and not heard.done() and heard.set_result(k))
    client = launcher.client(kernel)
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        client.execute(code)
        return await asyncio.wait_for(heard, 30)
    finally:
        client.stop_channels()


async def test_memory_cgroup_kill_is_reported_with_the_limit(launcher):
    """A card filling memory past the cgroup's limit ends with oom=True and a message naming the limit."""
    kernel = await ended(launcher, "hog = []\nwhile True: hog.append(bytearray(2**24))")
    assert kernel.exit is not None and kernel.exit.oom and kernel.exit.status == -9
    assert kernel.exit.describe(launcher.memory_mb) == (
        "the card exceeded the 256 MB memory limit and its kernel was stopped")


async def test_exit_by_itself_is_not_oom(launcher):
    """A card that ends its own process is reported with its status, not as out of memory."""
    kernel = await ended(launcher, "import pandas as pd\npd.io.common.os._exit(4)")
    assert kernel.exit is not None and (kernel.exit.status, kernel.exit.oom) == (4, False)
