"""Leaving the host's namespaces with ``unshare(2)`` (Python 3.11 has no ``os.unshare``)."""

from __future__ import annotations

import os
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


def unshare_as_user(flags: int = DEFAULT_FLAGS) -> None:
    """Move this (unprivileged) process into a new user namespace and, owned by it, new ``flags`` namespaces.

    The uid and gid map to themselves (no root inside): the process keeps every capability of the
    new user namespace only until it drops them (``privileges.drop_capabilities``), and none
    outside it. ``setgroups`` is denied, as an unprivileged gid map requires.
    """
    uid, gid = os.getuid(), os.getgid()
    unshare(CLONE_NEWUSER | flags)
    for name, line in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(line)
        except OSError as e:
            raise SandboxError("namespaces", f"cannot write /proc/self/{name}: {e}") from e
