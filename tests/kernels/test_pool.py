"""The warm pool: ready kernels handed out once, refilled behind, dead ones never handed out."""

from __future__ import annotations

import asyncio
import os
import signal

from kernels.pool import WarmPool


async def wait_until_full(pool: WarmPool) -> None:
    for _ in range(500):
        if pool.ready == pool.size:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the pool did not refill: {pool.ready} of {pool.size}")


async def test_acquire_hands_out_distinct_kernels_and_refills(pool):
    """Acquired kernels are distinct (own uid each) and the pool fills up again behind them."""
    assert pool.ready == 2
    first, second = await pool.acquire(), await pool.acquire()
    assert first.kernel_id != second.kernel_id and first.uid != second.uid
    await wait_until_full(pool)
    third = await pool.acquire()
    assert third.kernel_id not in (first.kernel_id, second.kernel_id)


async def test_dead_ready_kernel_is_not_handed_out(pool):
    """A ready kernel that died while waiting is replaced, never given to a session."""
    victim = pool._ready[0]
    os.kill(victim.pid, signal.SIGKILL)
    for _ in range(250):
        if not pool.launcher.is_alive(victim.kernel_id):
            break
        await asyncio.sleep(0.02)
    handed = {(await pool.acquire()).kernel_id for _ in range(2)}
    assert victim.kernel_id not in handed


async def test_empty_pool_still_serves(pool):
    """With every ready kernel taken, acquire forks a new one instead of failing."""
    taken = [await pool.acquire() for _ in range(3)]
    assert len({k.kernel_id for k in taken}) == 3
    assert all(pool.launcher.is_alive(k.kernel_id) for k in taken)


async def test_flush_discards_ready_and_starting_kernels(pool, monkeypatch):
    """After a flush no kernel that was ready or being started is handed out, and the pool refills."""
    launched: list[tuple[bool, str]] = []  # (started after the flush, kernel id)
    flushed = False
    launch = pool.launcher.launch

    async def recorded():
        after = flushed
        kernel = await launch()
        launched.append((after, kernel.kernel_id))
        return kernel

    monkeypatch.setattr(pool.launcher, "launch", recorded)
    before = {kernel.kernel_id for kernel in pool._ready}
    first = await pool.acquire()  # starts a replacement in the background
    await asyncio.sleep(0.01)  # the replacement's launch is under way
    flushed = True
    await pool.flush()
    await wait_until_full(pool)
    handed = {(await pool.acquire()).kernel_id for _ in range(3)}
    old = before | {kernel_id for after, kernel_id in launched if not after}
    assert len(old) == 3 and handed.isdisjoint(old)
    assert old.isdisjoint(pool.launcher.kernels.keys() - {first.kernel_id})
