"""Whether this server can serve now: its store answers and an executor agent can take a kernel.

``GET /api/health`` only says the process is up (what load balancers and ECS replace a task on);
``GET /api/ready`` asks this service (what compose and the alarms wait on). Each check is cheap:
one store call, shared by concurrent callers and bounded by ``store_timeout``, and the kernel
pool's last readings of its agents. A store that answers the check but failed other calls in the
last ``degraded_seconds`` (throttling, say) is ready but ``degraded``; so are executors whose every
kernel is in use: the API serves everything else, and new sessions are refused fast
(``no_capacity``) or given a reclaimed kernel; and so is a bus that cannot reach Redis: this task serves
runs and dashboards to whoever reaches it, but its pushes reach only its own viewers and revocations made
on other tasks take up to ``Revocations.degraded_recheck_seconds`` to close its sockets. A degraded check
makes the answer's ``status`` ``degraded`` (still 200: load balancers keep using ``/api/health``).
Reasons name no agent, address or id: anyone may ask.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from traitlets import Float
from traitlets.config import LoggingConfigurable

from ..bus import Bus
from ..execution.pool import FULL, KernelPool
from ..logs import get_logger
from ..storage.base import Store

log = get_logger("bi.readiness")

Checks = dict[str, dict[str, Any]]


class ReadinessService(LoggingConfigurable):
    store_timeout = Float(2.0, help="Seconds the store gets to answer a readiness check.").tag(config=True)
    retry_after = Float(5.0, help="Seconds a caller is told to wait (Retry-After) when the server is "
                                  "not ready.").tag(config=True)
    degraded_seconds = Float(30.0, help="Seconds after a store call failed (after its retries) that the store "
                                        "is reported degraded.").tag(config=True)

    def __init__(self, store: Store, pool: KernelPool, bus: Bus, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.pool = pool
        self.bus = bus
        self._ping: asyncio.Future[None] | None = None
        self._failed: tuple[float, str] | None = None  # when the last store call failed, and why
        store.failed.append(self._store_failed)

    def _store_failed(self, reason: str) -> None:
        self._failed = (time.monotonic(), reason)

    async def check(self) -> Checks:
        """``{"store": {"ok": ...}, "executors": {"ok": ...}, "bus": {"ok": ...}}``, each with a ``reason`` when
        not ok or ``degraded``."""
        return {"store": await self._store(), "executors": self._executors(), "bus": self._bus()}

    def _bus(self) -> dict[str, Any]:
        if self.bus.disconnected_at is None:
            return {"ok": True}
        down = time.monotonic() - self.bus.disconnected_at
        return {"ok": True, "degraded": True,
                "reason": f"Redis has not answered for {down:.0f} s: live pushes reach this task's viewers only "
                          "(see the runbook: the bus)"}

    def _executors(self) -> dict[str, Any]:
        reason = self.pool.readiness()
        if reason is None:
            return {"ok": True}
        if reason == FULL:
            return {"ok": True, "degraded": True,
                    "reason": f"{reason}: new sessions wait for one to close (see the runbook: kernel capacity)"}
        return {"ok": False, "reason": reason}

    async def _store(self) -> dict[str, Any]:
        if self._ping is None:  # one ping at a time, however many callers: a hung store holds one thread
            self._ping = asyncio.ensure_future(self.store.ping())
            self._ping.add_done_callback(self._pinged)
        try:
            await asyncio.wait_for(asyncio.shield(self._ping), self.store_timeout)
        except TimeoutError:
            return {"ok": False, "reason": f"the store did not answer within {self.store_timeout:g} s"}
        except Exception:  # noqa: BLE001 - logged by _pinged; anonymous callers only learn that it failed
            return {"ok": False, "reason": "the store answered with an error (see the server's log)"}
        if self._failed is not None and time.monotonic() - self._failed[0] < self.degraded_seconds:
            ago = time.monotonic() - self._failed[0]
            return {"ok": True, "degraded": True,
                    "reason": f"store calls failed {ago:.0f} s ago ({self._failed[1]}) after their retries"}
        return {"ok": True}

    def _pinged(self, ping: asyncio.Future[None]) -> None:
        self._ping = None
        if not ping.cancelled() and ping.exception() is not None:
            log.warning("store_not_ready", error=repr(ping.exception()))
