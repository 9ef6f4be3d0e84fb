"""Resource limits: address space, file size, open files, CPU time, processes, core dumps."""

from __future__ import annotations

import ctypes
import faulthandler
import os
import resource
import signal
from pathlib import Path

from kernels.sandbox import namespaces, privileges
from kernels.sandbox.rlimits import Rlimits
from tests.kernels.sandbox.bombs import fork_bomb
from tests.kernels.sandbox.helpers import attempt, run, run_here

MB = 1024 * 1024


def _allocate() -> dict[str, str]:
    Rlimits(address_space_mb=2048).apply()
    return {"4 GiB": attempt(lambda: bytearray(4096 * MB)), "512 MiB": attempt(lambda: bytearray(512 * MB))}


def test_address_space_stops_4gb():
    """4 GiB in one piece fails under 2048 MB of address space; 512 MiB still works."""
    assert run(_allocate).ok() == {"4 GiB": "MemoryError", "512 MiB": "ok"}


def _write_4mb(target: Path) -> str:
    Rlimits(file_size_mb=1).apply()
    with open(target, "wb", buffering=0) as f:
        return attempt(lambda: [f.write(b"x" * MB) for _ in range(4)])


def test_file_size_is_capped(tmp_path):
    """Writing past the file size limit fails with EFBIG, and the file stops at the limit."""
    target = tmp_path / "big"
    assert run(_write_4mb, target).ok() == "OSError:EFBIG"
    assert target.stat().st_size == MB


def _open_many() -> tuple[str, str]:
    Rlimits(open_files=32).apply()
    files = []
    opened = attempt(lambda: [files.append(open("/dev/null")) for _ in range(100)])
    raised = attempt(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
    return opened, raised


def test_open_files_are_capped_and_cannot_be_raised():
    """Opening past the limit fails with EMFILE; raising the limit back is refused."""
    assert run(_open_many).ok() == ("OSError:EMFILE", "ValueError")


def _spin() -> None:
    Rlimits(cpu_seconds=1).apply()
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    while True:
        pass


def test_cpu_time_kills_a_busy_loop():
    """A loop that ignores every signal it can still dies at the CPU limit."""
    outcome = run(_spin, timeout=15)
    assert outcome.value is None and outcome.exitcode == -signal.SIGKILL


def _bomb_as(uid: int) -> dict[str, int]:
    Rlimits(processes=16).apply()
    privileges.drop(uid, uid)
    return fork_bomb(200)


def _bomb_in_pidns(uid: int) -> dict[str, int]:
    namespaces.unshare(namespaces.CLONE_NEWPID)
    return run_here(_bomb_as, uid).ok()


def test_processes_cap_a_fork_bomb(root, kernel_uid):
    """Under a distinct uid, a bounded fork bomb mostly gets EAGAIN (as pid 1 of its own namespace)."""
    counts = run(_bomb_in_pidns, kernel_uid).ok()
    assert counts["started"] < 16 and counts["EAGAIN"] == 200 - counts["started"]


def _crash(cwd: Path) -> None:
    os.chdir(cwd)
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))  # as permissive as allowed
    Rlimits().apply()
    faulthandler.disable()
    ctypes.string_at(0)


def test_no_core_dump(tmp_path):
    """A crash under the limits leaves no core file (core_pattern may point at the cwd)."""
    outcome = run(_crash, tmp_path)
    assert outcome.exitcode == -signal.SIGSEGV
    assert not [p for p in os.listdir(tmp_path) if p.startswith("core")]
