"""Leaving the host's namespaces with ``unshare(2)`` (Python 3.11 has no ``os.unshare``)."""

from __future__ import annotations

import socket

from kernels.sandbox._libc import LIBC, check
from kernels.sandbox.errors import SandboxError

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# Network (nothing but a down loopback), mounts, PIDs, System V IPC and hostname.
DEFAULT_FLAGS = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
NAMES = {"netns": CLONE_NEWNET, "mountns": CLONE_NEWNS, "pidns": CLONE_NEWPID,
         "ipcns": CLONE_NEWIPC, "utsns": CLONE_NEWUTS}


def unshare(flags: int = DEFAULT_FLAGS) -> None:
    """Move this process into new namespaces.

    The caller must be single-threaded. After ``CLONE_NEWPID`` the caller stays in its PID
    namespace: only its next child is pid 1 of the new one.
    """
    check("namespaces", f"unshare({flags:#x})", LIBC.unshare(flags))


def set_hostname(name: str) -> None:
    """Set the hostname of this (new) UTS namespace, hiding the host's."""
    check("namespaces", "sethostname", LIBC.sethostname(name.encode(), len(name.encode())))
    if socket.gethostname() != name:
        raise SandboxError("namespaces", f"hostname reads back {socket.gethostname()!r}")
