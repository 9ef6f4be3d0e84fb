"""The CPU time a kernel has used, for the server's background budget (``GET /usage``).

A kernel's processes are those of its cgroup where it has one (its reaper, the kernel and
anything they started), else its reaper and the reaper's children. Their user and system time,
with that of children they have reaped, is summed from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .launcher import LaunchedKernel

TICKS = os.sysconf("SC_CLK_TCK")


def kernel_cpu_seconds(kernel: LaunchedKernel) -> float:
    """The CPU seconds ``kernel``'s processes have used so far."""
    if kernel.sandbox.applies("cgroup"):
        return cpu_seconds(kernel.sandbox.cgroup().pids() or {kernel.pid})
    return cpu_seconds({kernel.pid, *children(kernel.pid)})


def children(pid: int) -> set[int]:
    """The children of every thread of ``pid`` (none if it is gone)."""
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(child) for child in (task / "children").read_text().split())
    except OSError:
        pass
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User and system CPU seconds of ``pids`` and of the children they reaped; gone processes count 0."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()  # from field 3 (state): the name may hold spaces
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / TICKS
