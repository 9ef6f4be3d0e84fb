"""The seccomp filter: no network sockets, no new processes, no escape system calls; threads work."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading

import pytest

from kernels.sandbox import namespaces, seccomp_filter
from kernels.sandbox.seccomp_filter import SeccompFilter, SocketSeal
from tests.kernels.sandbox.helpers import LIBC, attempt, errno_of, require, run

PTRACE_ATTACH = 16


@pytest.fixture(autouse=True)
def _pyseccomp() -> None:
    require(seccomp_filter.importable(), f"pyseccomp/libseccomp do not load: {seccomp_filter.IMPORT_ERROR}")


def raw(name: str, *args: int) -> str:
    """Call system call ``name`` directly; ``"ok"`` or the errno name."""
    number = seccomp_filter.seccomp.resolve_syscall(seccomp_filter.seccomp.Arch.NATIVE, name)
    return errno_of(LIBC.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args]))


def _sockets() -> dict[str, str]:
    SeccompFilter().apply()
    return {
        "inet": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
        "inet6": attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)),
        "netlink": attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)),
        "packet": attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
        "inet pair": raw("socketpair", socket.AF_INET, socket.SOCK_STREAM, 0, 0),
        "unix": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()),
        "unix pair": attempt(lambda: [s.close() for s in socket.socketpair()]),
    }


def test_only_unix_sockets():
    """Network sockets fail with EPERM, unix sockets work."""
    eperm = "PermissionError:EPERM"
    assert run(_sockets).ok() == {"inet": eperm, "inet6": eperm, "netlink": eperm, "packet": eperm,
                                  "inet pair": "EPERM", "unix": "ok", "unix pair": "ok"}


def _sealed(directory: str) -> dict[str, str]:
    """Sockets bound before the seal keep working; no thread, older or newer, makes a socket file after."""
    import stat

    bound = socket.socket(socket.AF_UNIX)
    bound.bind(f"{directory}/before")
    SeccompFilter().apply()
    go, results = threading.Event(), {}

    def older() -> None:  # started before the seal: TSYNC reaches it too
        go.wait()
        results["bind in an older thread"] = attempt(lambda: socket.socket(socket.AF_UNIX).bind(f"{directory}/t"))

    thread = threading.Thread(target=older)
    thread.start()
    SocketSeal().apply()
    go.set()
    thread.join()
    bound.listen(1)
    with socket.socket(socket.AF_UNIX) as client:
        results["connect to the bound socket"] = attempt(lambda: client.connect(f"{directory}/before"))
    return {
        **results,
        "bind": attempt(lambda: socket.socket(socket.AF_UNIX).bind(f"{directory}/after")),
        "abstract bind": attempt(lambda: socket.socket(socket.AF_UNIX).bind("\0bi-sealed")),
        "mknod a socket": attempt(lambda: os.mknod(f"{directory}/node", stat.S_IFSOCK | 0o600)),
        "link the socket": attempt(lambda: os.link(f"{directory}/before", f"{directory}/link")),
        "socketpair": attempt(lambda: [s.close() for s in socket.socketpair()]),
    }


def test_seal_stops_socket_files_in_every_thread(tmp_path):
    """After ``SocketSeal``: bind, mknod and link fail (EPERM) in every thread; bound sockets still serve."""
    eperm = "PermissionError:EPERM"
    assert run(_sealed, str(tmp_path)).ok() == {
        "bind in an older thread": eperm, "connect to the bound socket": "ok", "bind": eperm,
        "abstract bind": eperm, "mknod a socket": eperm, "link the socket": eperm, "socketpair": "ok"}
    assert sorted(os.listdir(tmp_path)) == ["before"]


def _processes_and_threads() -> dict[str, object]:
    import numpy as np
    import pandas as pd

    SeccompFilter().apply()
    sums: list[float] = []

    def work() -> None:
        df = pd.DataFrame({"k": np.arange(50_000) % 7, "v": np.ones(50_000)})
        sums.append(float(df.groupby("k")["v"].sum().sum()))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "fork": attempt(os.fork),
        "subprocess": attempt(lambda: subprocess.run(["/bin/true"])),
        "clone3": raw("clone3", 0, 0),
        "execve": attempt(lambda: os.execv("/bin/true", ["true"])),
        "threads": sums,
    }


def test_no_new_processes_but_threads_work():
    """fork, subprocess, clone3 and exec fail; threads run pandas and numpy."""
    assert run(_processes_and_threads).ok() == {
        "fork": "PermissionError:EPERM", "subprocess": "PermissionError:EPERM", "clone3": "ENOSYS",
        "execve": "PermissionError:EPERM", "threads": [50_000.0] * 8,
    }


def _escapes(parent: int) -> dict[str, str]:
    own_net = os.open("/proc/self/ns/net", os.O_RDONLY)
    SeccompFilter().apply()
    return {
        "unshare user": raw("unshare", namespaces.CLONE_NEWUSER),
        "unshare net": raw("unshare", namespaces.CLONE_NEWNET),
        "clone newuser": raw("clone", namespaces.CLONE_NEWUSER | 17, 0, 0, 0, 0),
        "setns": raw("setns", own_net, 0),
        "mount": raw("mount", 0, 0, 0, 0, 0),
        "chroot": raw("chroot", 0),
        "ptrace parent": raw("ptrace", PTRACE_ATTACH, parent, 0, 0),
        "process_vm_readv": raw("process_vm_readv", parent, 0, 0, 0, 0, 0),
        "memfd": raw("memfd_create", 0, 0),
        "io_uring": raw("io_uring_setup", 1, 0),
        "bpf": raw("bpf", 0, 0, 0),
        "perf": raw("perf_event_open", 0, 0, -1, -1, 0),
        "userfaultfd": raw("userfaultfd", 0),
        "keyctl": raw("keyctl", 0, 0),
        "kill parent": raw("kill", parent, 0),
        "kill all": raw("kill", -1, 0),
        "kill self": raw("kill", os.getpid(), 0),
    }


def test_escape_system_calls_denied_even_for_root(root):
    """What root could do without the filter (namespaces, mounts, ptrace, memfd...) fails with EPERM."""
    seen = run(_escapes, os.getpid()).ok()
    assert seen.pop("kill self") == "ok"
    assert seen == dict.fromkeys(seen, "EPERM")
