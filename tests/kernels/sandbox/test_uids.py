"""UidAllocator: distinct, unprivileged, unused ids."""

from __future__ import annotations

import os
import threading
from multiprocessing.connection import Connection

import pytest

from kernels.sandbox.errors import SandboxError
from kernels.sandbox.uids import UidAllocator
from tests.kernels.sandbox.helpers import TEMPLATE, start


def test_ids_are_distinct_and_in_range():
    """Fifty allocations give fifty different ids of the range."""
    allocator = UidAllocator(61000, 100)
    ids = [allocator.allocate() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(61000 <= uid < 61100 for uid in ids)


def test_accounts_are_skipped(tmp_path):
    """Ids listed in the passwd or group file are never handed out."""
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text("a:x:62000:62000::/:/bin/false\n")
    group.write_text("g:x:62001:\n")
    allocator = UidAllocator(62000, 10, passwd=str(passwd), group=str(group))
    assert allocator.allocate() == 62002


def _squat(uid: int, ready: Connection, hold: Connection) -> None:
    os.setresuid(uid, uid, uid)
    ready.send("running")
    hold.recv()


def test_uids_of_live_processes_are_skipped(root, uid_allocator):
    """A process already running under an id of the range keeps it to itself."""
    busy = uid_allocator.allocate()
    ready_r, ready_w = TEMPLATE.Pipe(duplex=False)
    hold_r, hold_w = TEMPLATE.Pipe(duplex=False)
    child = start(_squat, busy, ready_w, hold_r)
    try:
        assert ready_r.recv() == "running"
        uid_allocator.release(busy)
        other = uid_allocator.allocate()
        uid_allocator.release(other)
        assert other != busy
    finally:
        hold_w.send("done")
        child.result().ok()


def test_thread_safe():
    """Concurrent allocations never hand out the same id twice."""
    allocator = UidAllocator(63000, 200)
    got: list[int] = []

    def take() -> None:
        got.extend(allocator.allocate() for _ in range(20))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 160


def test_exhaustion_and_release():
    """An exhausted range raises; a released id is handed out again."""
    allocator = UidAllocator(64000, 2)
    first, _ = allocator.allocate(), allocator.allocate()
    with pytest.raises(SandboxError, match="no free uid"):
        allocator.allocate()
    allocator.release(first)
    assert allocator.allocate() == first


@pytest.mark.parametrize("first", [0, 999])
def test_privileged_range_refused(first):
    """Ranges reaching into system ids (root included) are refused."""
    with pytest.raises(ValueError):
        UidAllocator(first, 10)
