"""Who may get a kernel from the agent: capacity, draining and, for a single-tenant agent, one tenant.

An agent is ``multi`` tenant when each kernel runs as its own uid, and ``single`` tenant otherwise
(every kernel shares the agent's uid, so kernels of two users must never be alive at once). A
single-tenant agent hands kernels only to the tenant whose kernels it holds, or to anyone once it
holds none. Kernels count from hand-out until they are stopped or end by themselves; warm ones
in the pool never count, but those that lived beside another tenant's kernels are not handed out
(``needs_fresh_kernels``). ``per_tenant`` caps one tenant's kernels at once (409, as for another
tenant's: the server places the kernel elsewhere): for an agent whose kernels share one uid and have no
cgroups, so that one tenant cannot take every process and byte of memory the others share.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

TENANT = re.compile(r"[A-Za-z0-9_-]{1,128}")
DEFAULT_MAX_KERNELS = 8


class AdmissionError(RuntimeError):
    """A kernel cannot be handed out now; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Admission:
    """Reserves a place before a kernel is acquired, then tracks it until it is no longer alive."""

    def __init__(self, is_alive: Callable[[str], bool], single_tenant: bool,
                 max_kernels: int = DEFAULT_MAX_KERNELS, per_tenant: int | None = None):
        self.is_alive = is_alive
        self.per_tenant = per_tenant
        self.single_tenant = single_tenant
        self.max_kernels = max_kernels
        self.draining = False
        self.last_tenant: str | None = None  # of the last kernel handed out
        self._tenants: dict[str, str | None] = {}  # kernel id or reservation -> tenant
        self._reservations = itertools.count()

    @property
    def tenancy(self) -> str:
        return "single" if self.single_tenant else "multi"

    def _live(self) -> dict[str, str | None]:
        """Drop kernels that are gone; the rest (and reservations) with their tenants."""
        for key in [key for key in self._tenants if not key.startswith("+") and not self.is_alive(key)]:
            del self._tenants[key]
        return self._tenants

    @property
    def in_use(self) -> int:
        return len(self._live())

    @property
    def tenant(self) -> str | None:
        """The tenant whose kernels a single-tenant agent holds (None when it holds none, or multi)."""
        return next(iter(self._live().values()), None) if self.single_tenant else None

    def reserve(self, tenant: str | None) -> str:
        """A place for ``tenant``'s next kernel, or ``AdmissionError``; ``hand_out`` or ``cancel`` it."""
        if self.draining:
            raise AdmissionError(503, "this executor is draining")
        if tenant is not None and not TENANT.fullmatch(tenant):
            raise AdmissionError(400, "tenant must be 1 to 128 characters of A-Z, a-z, 0-9, _ and -")
        if tenant is None and (self.single_tenant or self.per_tenant):
            raise AdmissionError(400, "this executor counts kernels per tenant: give a tenant")
        live = self._live()
        if self.single_tenant and any(other != tenant for other in live.values()):
            raise AdmissionError(409, "this executor holds another user's kernels")
        if self.per_tenant and list(live.values()).count(tenant) >= self.per_tenant:
            raise AdmissionError(409, f"this user holds {self.per_tenant} kernels on this executor")
        if len(live) >= self.max_kernels:
            raise AdmissionError(503, f"this executor is full ({self.max_kernels} kernels)")
        reservation = f"+{next(self._reservations)}"
        self._tenants[reservation] = tenant
        return reservation

    def needs_fresh_kernels(self, tenant: str | None) -> bool:
        """Whether a single-tenant agent serves ``tenant`` after another: its warm kernels go first."""
        return self.single_tenant and self.last_tenant not in (None, tenant)

    def hand_out(self, reservation: str, kernel_id: str) -> None:
        self.last_tenant = self._tenants[kernel_id] = self._tenants.pop(reservation)

    def cancel(self, reservation: str) -> None:
        self._tenants.pop(reservation, None)

    def holds(self, kernel_id: str) -> bool:
        """Whether ``kernel_id`` was handed out to a tenant (and lives)."""
        return kernel_id in self._live()

    def release(self, kernel_id: str) -> None:
        self._tenants.pop(kernel_id, None)
