"""Where a new kernel goes, and how full the pool is: the policy the server and ``bench/pool_scaling.py`` share.

Every executor agent reports its load in ``GET /health``. An agent whose kernels cannot run
under distinct uids (a non-root container) is *single-tenant*: it holds one user's kernels at
a time, and counts as full for everyone else while it holds any. The pool's utilisation is
the share of the non-draining agents' capacity that is taken; the executor service scales on
it (``ops/cloudformation``: target tracking on ``BI/KernelPool PoolUtilization``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class AgentLoad:
    """One agent's load, as its ``/health`` reports it."""

    in_use: int = 0            # kernels handed out and alive
    capacity: int = 8          # kernels it may hand out at once
    ready: int = 0             # warm kernels waiting
    single_tenant: bool = False
    tenant: str | None = None  # whose kernels a single-tenant agent holds
    draining: bool = False

    @classmethod
    def from_health(cls, health: Mapping[str, Any]) -> AgentLoad:
        return cls(in_use=int(health.get("in_use", 0)), capacity=int(health.get("capacity", 8)),
                   ready=int(health.get("pool", {}).get("ready", 0)),
                   single_tenant=health.get("tenancy") == "single", tenant=health.get("tenant"),
                   draining=bool(health.get("draining")))

    def accepts(self, tenant: str) -> bool:
        """Whether a kernel of ``tenant`` may go here now."""
        if self.draining or self.in_use >= self.capacity:
            return False
        return not self.single_tenant or self.in_use == 0 or self.tenant in (None, tenant)

    def taken(self) -> float:
        """Capacity no new user can have: all of it while a single-tenant agent holds someone."""
        if self.single_tenant and self.in_use:
            return float(self.capacity)
        return float(min(self.in_use, self.capacity))

    def with_kernel(self, tenant: str) -> AgentLoad:
        """This load after one more kernel of ``tenant`` (until the next health report says better)."""
        return AgentLoad(self.in_use + 1, self.capacity, max(self.ready - 1, 0), self.single_tenant,
                         tenant if self.single_tenant else self.tenant, self.draining)

    def without_kernel(self) -> AgentLoad:
        """This load once a kernel is destroyed (until the next health report says better)."""
        in_use = max(self.in_use - 1, 0)
        return AgentLoad(in_use, self.capacity, self.ready, self.single_tenant,
                         self.tenant if in_use else None, self.draining)


def ranked(loads: Mapping[Key, AgentLoad], tenant: str) -> list[Key]:
    """The agents that accept a kernel of ``tenant``, best first.

    A single-tenant agent that already holds this user comes first (it keeps a user's kernels
    together and leaves the empty agents to others), then agents with a warm kernel, then the
    least loaded: spreading keeps any one task's loss small.
    """
    def order(key: Key) -> tuple[bool, bool, float]:
        load = loads[key]
        holds_user = load.single_tenant and load.in_use > 0 and load.tenant == tenant
        return (not holds_user, load.ready == 0, load.in_use / max(load.capacity, 1))

    return sorted((key for key, load in loads.items() if load.accepts(tenant)), key=order)


def utilisation(loads: Mapping[Any, AgentLoad]) -> float:
    """Percent of the serving agents' capacity that is taken; 100 when no agent serves (scale out)."""
    serving = [load for load in loads.values() if not load.draining]
    capacity = sum(load.capacity for load in serving)
    if capacity == 0:
        return 100.0
    return round(100.0 * sum(load.taken() for load in serving) / capacity, 1)
