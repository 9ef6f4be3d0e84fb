"""Fixtures for the sandbox layer tests: kernel uids, cgroups, ipc directories, a TCP listener."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Callable, Iterator

import pytest

from kernels.sandbox import cgroups
from kernels.sandbox.cgroups import Cgroup
from kernels.sandbox.uids import UidAllocator
from tests.kernels.sandbox.helpers import require


@pytest.fixture
def root() -> None:
    """Skip (fail on CI) unless the tests run as root."""
    require(os.geteuid() == 0, "needs root (uid changes, namespaces, mounts, cgroups)")


@pytest.fixture(scope="session")
def uid_allocator() -> UidAllocator:
    """Ids from a slice of the default range picked by pid, so concurrent test runs rarely meet."""
    return UidAllocator(61000 + os.getpid() % 50 * 20, 20)


@pytest.fixture
def kernel_uid(uid_allocator: UidAllocator) -> Iterator[int]:
    """A free unprivileged uid (also used as gid) for one test."""
    uid = uid_allocator.allocate()
    yield uid
    uid_allocator.release(uid)


@pytest.fixture
def second_uid(uid_allocator: UidAllocator) -> Iterator[int]:
    uid = uid_allocator.allocate()
    yield uid
    uid_allocator.release(uid)


@pytest.fixture
def make_cgroup(root: None) -> Iterator[Callable[..., Cgroup]]:
    """Factory of created kernel cgroups, all killed and removed after the test."""
    require(cgroups.available() is not None, "no writable memory + pids cgroup on this machine")
    made: list[Cgroup] = []

    def make(memory_mb: int = 256, pids_max: int = 64) -> Cgroup:
        cgroup = Cgroup(f"test-{uuid.uuid4().hex[:12]}", memory_mb=memory_mb, pids_max=pids_max)
        made.append(cgroup)
        cgroup.create()
        return cgroup

    yield make
    for cgroup in made:
        cgroup.remove()


@pytest.fixture
def ipc_dir(tmp_path) -> str:
    """A per-kernel ipc socket directory on the host."""
    path = tmp_path / f"ipc-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return str(path)


@pytest.fixture
def tcp_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (its backlog does), and is reachable from here."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the baseline: outside the sandbox the connect succeeds
        yield port
