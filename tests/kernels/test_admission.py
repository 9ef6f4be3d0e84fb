"""Admission: which tenant may get a kernel, how many, and not while draining."""

from __future__ import annotations

import pytest

from kernels.admission import Admission, AdmissionError


class Kernels:
    """Stand-in for the launcher's ``is_alive``: kernel ids in ``alive``."""

    def __init__(self):
        self.alive: set[str] = set()

    def is_alive(self, kernel_id: str) -> bool:
        return kernel_id in self.alive


def hand_out(admission: Admission, kernels: Kernels, kernel_id: str, tenant: str | None) -> None:
    reservation = admission.reserve(tenant)
    kernels.alive.add(kernel_id)
    admission.hand_out(reservation, kernel_id)


def refusal(admission: Admission, tenant: str | None) -> tuple[int, str]:
    with pytest.raises(AdmissionError) as caught:
        admission.reserve(tenant)
    return caught.value.status, str(caught.value)


def test_single_tenant_refuses_another_until_its_kernels_are_gone():
    """A second tenant gets 409 while a kernel of the first is alive, even one that is only reserved."""
    kernels = Kernels()
    admission = Admission(kernels.is_alive, single_tenant=True, max_kernels=4)
    hand_out(admission, kernels, "k1", "alice")
    assert (admission.tenancy, admission.tenant, admission.in_use) == ("single", "alice", 1)
    assert refusal(admission, "bob") == (409, "this executor holds another user's kernels")
    kernels.alive.clear()  # ended by itself
    pending = admission.reserve("bob")
    assert admission.tenant == "bob" and refusal(admission, "alice")[0] == 409
    admission.cancel(pending)
    assert admission.tenant is None and admission.in_use == 0


def test_single_tenant_needs_a_valid_tenant():
    """No tenant, or one with other characters or too long, is a 400."""
    admission = Admission(Kernels().is_alive, single_tenant=True)
    for tenant in (None, "", "a b", "x" * 129, "ü"):
        assert refusal(admission, tenant)[0] == 400
    admission.reserve("A-z_0" + "9" * 123)


def test_multi_tenant_records_without_enforcing():
    """Multi-tenant agents take any tenant, or none, and report no tenant."""
    kernels = Kernels()
    admission = Admission(kernels.is_alive, single_tenant=False)
    hand_out(admission, kernels, "k1", "alice")
    hand_out(admission, kernels, "k2", "bob")
    hand_out(admission, kernels, "k3", None)
    assert (admission.tenancy, admission.tenant, admission.in_use) == ("multi", None, 3)


def test_capacity_and_draining():
    """Beyond max_kernels live kernels, and while draining, a 503; a released kernel frees its place."""
    kernels = Kernels()
    admission = Admission(kernels.is_alive, single_tenant=False, max_kernels=1)
    hand_out(admission, kernels, "k1", None)
    assert refusal(admission, None) == (503, "this executor is full (1 kernels)")
    admission.release("k1")
    admission.draining = True
    assert refusal(admission, None) == (503, "this executor is draining")


def test_fresh_kernels_for_a_new_tenant():
    """A single-tenant agent's warm kernels are not handed to a tenant other than the last one served."""
    kernels = Kernels()
    single = Admission(kernels.is_alive, single_tenant=True)
    assert not single.needs_fresh_kernels("alice")
    hand_out(single, kernels, "k1", "alice")
    assert not single.needs_fresh_kernels("alice")
    kernels.alive.clear()
    assert single.needs_fresh_kernels("bob")
    multi = Admission(kernels.is_alive, single_tenant=False)
    hand_out(multi, kernels, "k2", "alice")
    assert not multi.needs_fresh_kernels("bob")


def test_per_tenant_cap():
    """With ``per_tenant`` (kernels sharing one uid, no cgroups) a tenant past its cap gets 409 while others
    still get kernels; a tenant is required."""
    kernels = Kernels()
    admission = Admission(kernels.is_alive, single_tenant=False, max_kernels=8, per_tenant=2)
    hand_out(admission, kernels, "k1", "alice")
    pending = admission.reserve("alice")  # a reservation counts too
    assert refusal(admission, "alice") == (409, "this user holds 2 kernels on this executor")
    assert refusal(admission, None)[0] == 400
    hand_out(admission, kernels, "k2", "bob")
    admission.cancel(pending)
    hand_out(admission, kernels, "k3", "alice")
    kernels.alive.discard("k1")
    hand_out(admission, kernels, "k4", "alice")
    assert admission.in_use == 3
