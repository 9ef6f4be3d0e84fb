"""The memory + pids cgroup: fork bombs, heap, memfd and /dev/shm are all charged and stopped."""

from __future__ import annotations

import os
import signal
import uuid
from multiprocessing.connection import Connection

import pytest

from kernels.sandbox import cgroups
from kernels.sandbox.cgroups import Cgroup
from tests.kernels.sandbox.bombs import fill, fork_bomb, heap_hog, memfd_hog
from tests.kernels.sandbox.helpers import TEMPLATE, require, run, start


def test_available_here(root):
    require(cgroups.available() is not None, "no writable memory + pids cgroup on this machine")
    assert cgroups.available() in ("v1", "v2")


def _bomb_in(cgroup: Cgroup) -> dict[str, int]:
    cgroup.add(os.getpid())
    return fork_bomb(200)


def test_pids_limit_stops_a_fork_bomb_even_for_root(make_cgroup):
    """Root ignores RLIMIT_NPROC, not pids.max."""
    counts = run(_bomb_in, make_cgroup(pids_max=16)).ok()
    assert counts["started"] == 15 and counts["EAGAIN"] == 185


def _hog_in(cgroup: Cgroup, hog: str, shm: str) -> int:
    cgroup.add(os.getpid())
    if hog == "heap":
        return heap_hog(3072)
    if hog == "memfd":
        return memfd_hog(3072)
    with open(shm, "wb", buffering=0) as f:
        return fill(f.write, 3072)


@pytest.mark.parametrize("hog", ["heap", "memfd", "dev_shm"])
def test_memory_limit_kills_hogs(make_cgroup, hog):
    """3 GiB of heap, memfd or /dev/shm (which RLIMIT_AS does not see) is killed at 128 MiB."""
    cgroup = make_cgroup(memory_mb=128)
    shm = f"/dev/shm/bi-sandbox-test-{uuid.uuid4().hex}"
    if hog == "dev_shm":
        require(os.path.isdir("/dev/shm"), "no /dev/shm on this machine")
    try:
        outcome = run(_hog_in, cgroup, hog, shm, timeout=30)
    finally:
        if os.path.exists(shm):
            os.unlink(shm)  # tmpfs pages outlive the killed writer
    assert outcome.value is None and outcome.exitcode == -signal.SIGKILL
    assert cgroup.oom_killed()


def _family_in(cgroup: Cgroup, ready: Connection, hold: Connection) -> None:
    cgroup.add(os.getpid())
    for _ in range(3):
        if os.fork() == 0:
            break
    ready.send(os.getpid())
    hold.recv()  # nothing is ever sent: wait for the kill


def test_kill_all_and_remove(make_cgroup):
    """kill_all ends every process of the cgroup, children included; remove deletes it."""
    cgroup = make_cgroup()
    ready_r, ready_w = TEMPLATE.Pipe(duplex=False)
    hold_r, hold_w = TEMPLATE.Pipe(duplex=False)
    child = start(_family_in, cgroup, ready_w, hold_r)
    family = {ready_r.recv() for _ in range(4)}
    assert cgroup.pids() == family
    cgroup.kill_all()
    assert cgroup.pids() == set()
    assert child.result().exitcode == -signal.SIGKILL
    cgroup.remove()
    assert not any(os.path.exists(path) for path in cgroup.paths.values())
    hold_w.close()


def test_remove_tree_clears_one_agents_cgroups_and_no_others(make_cgroup):
    """What an agent that died left (its kernels' cgroups, their processes) goes; a neighbour's stays."""
    agent = cgroups.agent_parent(f"test-agent-{uuid.uuid4().hex[:8]}")
    left = [Cgroup(f"test-{uuid.uuid4().hex[:12]}", memory_mb=256, parent=agent) for _ in range(2)]
    for cgroup in left:
        cgroup.create()
    neighbour = make_cgroup()
    ready_r, ready_w = TEMPLATE.Pipe(duplex=False)
    hold_r, hold_w = TEMPLATE.Pipe(duplex=False)
    children = [start(_family_in, cgroup, ready_w, hold_r) for cgroup in (left[0], neighbour)]
    started = {ready_r.recv() for _ in range(8)}
    cgroups.remove_tree(agent)
    gone = [*(path for cgroup in left for path in cgroup.paths.values()), *left[0].parents.values()]
    assert not any(os.path.exists(path) for path in gone)
    assert children[0].result().exitcode == -signal.SIGKILL
    assert len(neighbour.pids()) == 4 and neighbour.pids() < started
    neighbour.kill_all()
    hold_w.close()
