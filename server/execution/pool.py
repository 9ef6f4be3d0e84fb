"""The server-side kernel pool: sessions bound to one user, over one or more executor agents.

A session gets a ready kernel from an agent's warm pool (milliseconds), with the datasets it
asked for placed in the kernel's workdir. A kernel serves one session of one user and is
destroyed when the session closes or idles out; it is never handed to anyone else. One long
poll per agent (``GET /events``) hears of kernels that die by themselves, so their sessions
get a fresh kernel at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from prometheus_client import CollectorRegistry
from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from ..errors import NotFoundError, RateLimitedError, ServiceUnavailableError
from ..logs import get_logger
from ..models import User
from .agent_client import AgentClient, AgentError
from .pool_metrics import PoolMetrics
from .session import Kernel, KernelSession, Limits, TableKeeper, message_for

log = get_logger("bi.execution.pool")

READY_ATTEMPT_SECONDS = 1.0
RETRY_SECONDS = 1.0
HEALTH_EVERY = 15.0


class KernelPool(LoggingConfigurable):
    execution_timeout = Float(10, help="Seconds card code may run per execution before it is stopped.").tag(config=True)
    interrupt_grace = Float(2, help="Seconds an interrupted execution gets to stop before its kernel is killed.").tag(config=True)
    output_limit_bytes = Integer(5 * 1024 * 1024, help="Output kept per execution; the rest is dropped with a notice.").tag(config=True)
    idle_timeout = Float(600, help="Seconds without an execution after which a session and its kernel are destroyed.").tag(config=True)
    sessions_per_user = Integer(4, help="Open sessions (kernels) one user may hold.").tag(config=True)
    reconnect_grace = Float(30, help="Seconds a live session waits for its websocket to reconnect before it ends.").tag(config=True)
    kernel_ready_timeout = Float(30, help="Seconds a new kernel gets to answer its first request.").tag(config=True)

    def __init__(self, agents: list[AgentClient], registry: CollectorRegistry, keep_table: TableKeeper,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.agents = agents
        self.keep_table = keep_table
        self.metrics = PoolMetrics(registry)
        self.sessions: dict[str, KernelSession] = {}
        self._kernels: weakref.WeakValueDictionary[str, Kernel] = weakref.WeakValueDictionary()
        self._turn = itertools.cycle(range(len(agents)))
        self._tasks: list[asyncio.Task[None]] = []
        self._starting: collections.Counter[str] = collections.Counter()
        self.image_version: str | None = None  # of the agents' kernels: part of result cache keys

    @property
    def limits(self) -> Limits:
        return Limits(self.execution_timeout, self.interrupt_grace, self.output_limit_bytes)

    async def start(self) -> None:
        await self._check_agents()
        self._tasks = [asyncio.create_task(self._follow_exits(agent)) for agent in self.agents]
        self._tasks.append(asyncio.create_task(self._housekeeping()))

    # sessions ----------------------------------------------------------------
    async def open(self, user: User, datasets: list[tuple[str, Path]], kind: str = "card") -> KernelSession:
        """A new session of ``user`` with a ready kernel that can ``load_dataset`` each named file.

        Sessions of every ``kind`` count against ``sessions_per_user``.
        """
        held = sum(1 for s in self.sessions.values() if s.user_id == user.id) + self._starting[user.id]
        if held >= self.sessions_per_user:
            raise RateLimitedError(f"You already have {held} open sessions; close one (or wait for it to idle "
                                   "out) before opening another.", retry_after=60)
        self._starting[user.id] += 1  # counted while the kernel starts, so racing opens cannot pass the limit
        try:
            kernel = await self.start_kernel(datasets)
        finally:
            self._starting[user.id] -= 1
        session = KernelSession(str(uuid.uuid4()), user.id, datasets, kernel, self.start_kernel, self.limits,
                                self.metrics, self.keep_table, kind)
        self.sessions[session.id] = session
        self.metrics.bound.inc()
        log.info("session_opened", session_id=session.id, user_id=user.id, kernel_id=kernel.kernel_id)
        return session

    def get(self, user: User, session_id: str, kind: str = "card") -> KernelSession:
        """The session if it is ``user``'s and of ``kind``; anyone else's does not exist for them."""
        session = self.sessions.get(session_id)
        if session is None or session.user_id != user.id or session.kind != kind:
            raise NotFoundError("No such session; it may have been closed or idled out.")
        return session

    def of_user(self, user: User, kind: str = "card") -> list[KernelSession]:
        return [s for s in self.sessions.values() if s.user_id == user.id and s.kind == kind]

    async def close_session(self, session: KernelSession, reason: str) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        self.metrics.bound.dec()
        await session.close(reason)
        log.info("session_closed", session_id=session.id, user_id=session.user_id, reason=reason)

    # kernels -----------------------------------------------------------------
    async def start_kernel(self, datasets: list[tuple[str, Path]]) -> Kernel:
        """A ready kernel from the next agent that can give one, with ``datasets`` placed."""
        if not self.agents:
            raise ServiceUnavailableError("This server has no executor agent, so it cannot run cards "
                                          "(see the runbook: executor agents).")
        failures = []
        with self.metrics.spawn_seconds.time():
            for _ in range(len(self.agents)):
                agent = self.agents[next(self._turn)]
                try:
                    return await self._start_on(agent, datasets)
                except AgentError as exc:
                    log.warning("kernel_start_failed", agent=agent.base_url, error=str(exc))
                    failures.append(str(exc))
        raise ServiceUnavailableError("No executor can start a kernel now; try again in a moment.",
                                      {"reasons": failures})

    async def _start_on(self, agent: AgentClient, datasets: list[tuple[str, Path]]) -> Kernel:
        created = await agent.create_kernel()
        kernel_id = created["kernel_id"]
        client = AsyncKernelClient()
        try:
            for name, path in datasets:
                await agent.put_dataset(kernel_id, name, await asyncio.to_thread(path.read_bytes))
            client.load_connection_info(created["connection"])
            client.start_channels(hb=False)  # deaths come from the agent's events
            await self._wait_until_ready(client)
        except BaseException:
            client.stop_channels()
            with contextlib.suppress(AgentError):
                await agent.delete_kernel(kernel_id)
            raise
        kernel = Kernel(agent, kernel_id, created["limits"]["memory_mb"], client,
                        asyncio.get_running_loop().create_future())
        self._kernels[kernel_id] = kernel
        return kernel

    async def _wait_until_ready(self, client: AsyncKernelClient) -> None:
        """Return once a ``kernel_info`` request is answered on shell and its status seen on iopub.

        Seeing our own request's status proves the iopub subscription is live, so no output of
        the first execution is lost (ZeroMQ drops what a subscriber publishes before it joins).
        """
        deadline = time.monotonic() + self.kernel_ready_timeout
        while time.monotonic() < deadline:
            msg_id = client.kernel_info()
            if (await message_for(client.get_shell_msg, msg_id, READY_ATTEMPT_SECONDS)
                    and await message_for(client.get_iopub_msg, msg_id, READY_ATTEMPT_SECONDS)):
                return
        raise AgentError(f"the kernel did not answer in {self.kernel_ready_timeout:g} s", 504)

    # background work ---------------------------------------------------------
    async def _follow_exits(self, agent: AgentClient) -> None:
        """Long-poll the agent's exit events and hand each to the kernel's session."""
        agent_id, after = None, 0
        while True:
            try:
                answer = await agent.events(after)
            except AgentError as exc:
                log.warning("agent_events_failed", agent=agent.base_url, error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if agent_id is not None and answer["agent_id"] != agent_id:
                log.error("agent_restarted", agent=agent.base_url)
                self._agent_lost(agent)
            agent_id, after = answer["agent_id"], answer["last"]
            for event in answer["events"]:
                self._kernel_exited(event["kernel_id"], event)

    def _kernel_exited(self, kernel_id: str, event: dict[str, Any]) -> None:
        kernel = self._kernels.get(kernel_id)
        if kernel is None or kernel.exited.done():
            return
        self.metrics.deaths.labels("memory" if event.get("oom") else "exited").inc()
        log.warning("kernel_exited", kernel_id=kernel_id, status=event.get("status"), oom=event.get("oom"))
        kernel.exited.set_result(event)
        for session in list(self.sessions.values()):
            if session.kernel is kernel:
                asyncio.create_task(session.kernel_exited(kernel_id))

    def _agent_lost(self, agent: AgentClient) -> None:
        """The agent restarted: every kernel it held is gone."""
        for kernel in list(self._kernels.values()):
            if kernel.agent is agent:
                self._kernel_exited(kernel.kernel_id, {"status": None, "oom": False,
                                                       "message": "its executor agent restarted"})

    async def _housekeeping(self) -> None:
        """Close idle sessions; refresh what the agents report."""
        while True:
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if not session.executing and now - session.last_used > self.idle_timeout:
                    await self.close_session(session, "idle")
            await asyncio.sleep(min(HEALTH_EVERY, self.idle_timeout / 4))
            await self._check_agents()

    async def _check_agents(self) -> None:
        """Refresh the ready-kernel gauge and the kernel image version from the agents' health."""
        for agent in self.agents:
            with contextlib.suppress(AgentError):
                health = await agent.health()
                self.metrics.ready.labels(agent.base_url).set(health["pool"]["ready"])
                self.image_version = health["image_version"]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in list(self.sessions.values()):
            await self.close_session(session, "server_stopping")
        for agent in self.agents:
            agent.close()
