"""New network, PID, UTS and IPC namespaces."""

from __future__ import annotations

import ctypes
import os
import socket

from kernels.sandbox import namespaces
from tests.kernels.sandbox.helpers import LIBC, attempt, run, run_here

IPC_CREAT, IPC_RMID = 0o1000, 0


def _in_new_netns(port: int) -> tuple[str, list[str]]:
    namespaces.unshare(namespaces.CLONE_NEWNET)
    connect = attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
    return connect, [name for _, name in socket.if_nameindex()]


def test_network_namespace_cuts_host_loopback(root, tcp_port):
    """127.0.0.1 of the host (reachable from here) is unreachable in a new network namespace."""
    connect, interfaces = run(_in_new_netns, tcp_port).ok()
    assert connect == "OSError:ENETUNREACH"
    assert interfaces == ["lo"]


def _look_out(host_pid: int) -> dict[str, object]:
    return {"pid": os.getpid(), "kill host": attempt(lambda: os.kill(host_pid, 0)),
            "kill all": attempt(lambda: os.kill(-1, 0))}


def _in_new_pidns(host_pid: int) -> dict[str, object]:
    namespaces.unshare(namespaces.CLONE_NEWPID)
    return run_here(_look_out, host_pid).ok()


def test_pid_namespace_hides_host_processes(root):
    """The next child is pid 1 and cannot signal (or even name) a process outside."""
    assert run(_in_new_pidns, os.getpid()).ok() == {
        "pid": 1, "kill host": "ProcessLookupError:ESRCH", "kill all": "ProcessLookupError:ESRCH"}


def _in_new_utsns() -> str:
    namespaces.unshare(namespaces.CLONE_NEWUTS)
    namespaces.set_hostname("kernel")
    return socket.gethostname()


def test_uts_namespace_keeps_host_name(root):
    """The kernel's hostname is its own; the host's does not change."""
    host = socket.gethostname()
    assert run(_in_new_utsns).ok() == "kernel"
    assert socket.gethostname() == host


def _find_segment(key: int, unshare: bool) -> int:
    if unshare:
        namespaces.unshare(namespaces.CLONE_NEWIPC)
    return LIBC.shmget(key, 0, 0)


def test_ipc_namespace_hides_host_shared_memory(root):
    """A System V shared memory segment of the host cannot be found from a new IPC namespace."""
    key = 0x6269_0000 + os.getpid() % 0xFFFF
    segment = LIBC.shmget(key, 4096, IPC_CREAT | 0o600)
    assert segment >= 0
    try:
        assert run(_find_segment, key, False).ok() == segment
        assert run(_find_segment, key, True).ok() == -1
    finally:
        LIBC.shmctl(segment, IPC_RMID, ctypes.c_void_p())
