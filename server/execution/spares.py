"""Spare kernels: one per agent, connected and answering before any session asks for it.

Handing out a kernel costs a call to its agent, then ZeroMQ connections through the agent's relay and a
first ``kernel_info`` round trip: 15-30 ms, most of a cache-miss card run's overhead. So once a kernel
is handed out on an agent, the pool asks that agent for a spare (``POST /kernels/spare``: a warm kernel,
relayed, held by no tenant and counted against no capacity) and connects to it in the background. The
next kernel on that agent claims the spare in its call to the agent (``POST /kernels`` with ``spare``):
the agent hands it out only if it is still a spare and alive, and only then may datasets reach it.
Otherwise the agent hands out a fresh kernel, as without a spare, and this one is let go.

A spare that dies, or whose links drop, is discarded when next taken; ``close`` destroys every spare (those
being made once they come).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..logs import get_logger
from .agent_client import AgentClient, AgentError
from .session import Kernel

log = get_logger("bi.pool")

CLOSE_SECONDS = 5  # that ``close`` waits for spares still coming


class SpareKernels:
    """At most one spare kernel per agent, made by ``start_spare`` (which connects to it)."""

    def __init__(self, start_spare: Callable[[AgentClient], Awaitable[Kernel]]):
        self.start_spare = start_spare
        self._spares: dict[str, Kernel] = {}  # agent url -> its connected spare
        self._filling: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False

    def take(self, agent: AgentClient) -> Kernel | None:
        """The agent's spare, no longer this keeper's (None when it has none, or none that still works)."""
        kernel = self._spares.pop(agent.base_url, None)
        if kernel is not None and (kernel.exited.done() or kernel.link_dropped.is_set()):
            self.let_go(kernel)
            return None
        return kernel

    def fill(self, agent: AgentClient) -> None:
        """Get the agent a spare in the background, unless it has one or one is coming."""
        url = agent.base_url
        if self._closed or url in self._spares or url in self._filling:
            return
        task = asyncio.create_task(self._fill(agent))
        self._filling[url] = task
        task.add_done_callback(lambda _: self._filling.pop(url, None))

    async def _fill(self, agent: AgentClient) -> None:
        try:
            kernel = await self.start_spare(agent)
        except AgentError as exc:  # a full, draining or lost agent: the next hand-out there tries again
            log.info("spare_kernel_not_started", agent=agent.base_url, error=str(exc))
            return
        except Exception:  # nobody awaits this task: what went wrong is logged, and hand-outs go on without
            log.exception("spare_kernel_failed", agent=agent.base_url)
            return
        if self._closed or agent.closed or agent.base_url in self._spares:  # one was put back meanwhile
            await kernel.stop()
        else:
            self._spares[agent.base_url] = kernel

    def put_back(self, agent: AgentClient, kernel: Kernel) -> None:
        """Keep a spare taken for a claim the agent refused before reaching it (it was full, say)."""
        if self._closed or agent.base_url in self._spares:
            self.let_go(kernel)
        else:
            self._spares[agent.base_url] = kernel

    def let_go(self, kernel: Kernel) -> None:
        """Destroy a spare that will not be handed out, in the background."""
        task = asyncio.create_task(kernel.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def drop(self, agent: AgentClient) -> None:
        """Let go of the agent's spare (it is draining or gone)."""
        kernel = self._spares.pop(agent.base_url, None)
        if kernel is not None:
            self.let_go(kernel)

    async def close(self) -> None:
        """Stop making spares and destroy every one, those being made included: each is destroyed once it comes
        (one cut short while its agent made it would be left there, held by no server), unless it takes longer
        than ``CLOSE_SECONDS`` (a stuck agent does not hold up shutdown)."""
        self._closed = True
        filling = list(self._filling.values())
        if filling:  # a spare still coming is destroyed once it comes: cancelled, its agent would keep it unknown
            _, late = await asyncio.wait(filling, timeout=CLOSE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        while self._spares:
            self.let_go(self._spares.popitem()[1])
        await asyncio.gather(*self._stopping, return_exceptions=True)
