"""A warm pool of ready sandboxed kernels: acquiring one takes no fork, and the pool refills behind.

A kernel leaves the pool for one session and is destroyed afterwards; it never comes back.
``flush`` discards every ready kernel and those being started (a single-tenant agent does so
before serving a new tenant: its warm kernels lived beside the previous tenant's, same uid).
"""

from __future__ import annotations

import asyncio
import collections

import structlog

from .launcher import KernelLauncher, LaunchedKernel

log = structlog.get_logger("bi.executor.pool")


class WarmPool:
    def __init__(self, launcher: KernelLauncher, size: int = 2):
        self.launcher = launcher
        self.size = size
        self._ready: collections.deque[LaunchedKernel] = collections.deque()
        self._starting = 0
        self._refills: set[asyncio.Task[None]] = set()
        self._closed = False
        self._generation = 0  # kernels started before the last flush are not handed out

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def generation(self) -> int:
        """How many times the pool was flushed: a kernel taken out before the last flush lived beside what came
        before it."""
        return self._generation

    async def start(self) -> None:
        """Fill the pool and wait until it is full."""
        self.refill()
        await asyncio.gather(*self._refills)

    def refill(self) -> None:
        """Start kernels in the background until ready plus starting reaches ``size``."""
        while not self._closed and len(self._ready) + self._starting < self.size:
            self._starting += 1
            task = asyncio.create_task(self._add_one())
            self._refills.add(task)
            task.add_done_callback(self._refills.discard)

    async def _add_one(self) -> None:
        generation = self._generation
        try:
            kernel = await self.launcher.launch()
        except Exception:
            log.exception("pool_kernel_start_failed")
            return
        finally:
            self._starting -= 1
        if self._closed or generation != self._generation:
            await self.launcher.stop(kernel.kernel_id)
            self.refill()
        else:
            self._ready.append(kernel)

    async def acquire(self, refill: bool = True) -> LaunchedKernel:
        """A ready kernel (a fresh one when the pool is empty); the pool refills in the background (without
        ``refill``, once the caller calls ``refill``: a replacement's fork and start compete for the CPU)."""
        while self._ready:
            kernel = self._ready.popleft()
            if self.launcher.is_alive(kernel.kernel_id):
                if refill:
                    self.refill()
                return kernel
            await self.launcher.stop(kernel.kernel_id)
        if refill:
            self.refill()
        return await self.launcher.launch()

    async def flush(self) -> None:
        """Stop every ready kernel; kernels still starting are stopped once started. Then refill. The ready ones
        leave the pool at once: none is acquired while the others are stopped (a spare asked for meanwhile)."""
        self._generation += 1
        stale, self._ready = self._ready, collections.deque()
        for kernel in stale:
            await self.launcher.stop(kernel.kernel_id)
        self.refill()

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*self._refills, return_exceptions=True)
        while self._ready:
            await self.launcher.stop(self._ready.popleft().kernel_id)
