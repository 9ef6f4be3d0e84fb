"""Dropping root for good: one unprivileged uid/gid, no groups, and no way back."""

from __future__ import annotations

import ctypes
import os

from kernels.sandbox._libc import prctl, syscall
from kernels.sandbox.errors import SandboxError

PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAP_VERSION_3 = 0x20080522
CAP_LAST = 63  # beyond the kernel's last capability PR_CAPBSET_DROP fails with EINVAL


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` (real, effective and saved) with no supplementary groups, then verify."""
    if uid <= 0 or gid <= 0:
        raise SandboxError("uid", f"refusing to drop to uid {uid} / gid {gid}: must be unprivileged")
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise SandboxError("uid", f"cannot drop to uid {uid} / gid {gid}: {e}") from e
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise SandboxError("uid", f"ids after the drop: {os.getresuid()} {os.getresgid()} {os.getgroups()}")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise SandboxError("uid", "setuid(0) succeeded after the drop")


def no_new_privs() -> None:
    """Set ``PR_SET_NO_NEW_PRIVS`` (no setuid bits or file capabilities honoured by execve), then verify."""
    prctl("nnp", PR_SET_NO_NEW_PRIVS, 1)
    if prctl("nnp", PR_GET_NO_NEW_PRIVS) != 1:
        raise SandboxError("nnp", "PR_GET_NO_NEW_PRIVS does not read back 1")


def drop_capabilities() -> None:
    """Give up every capability (ambient, bounding, effective, permitted, inheritable), then verify.

    What the uid layer becomes in a user namespace that maps only the agent's own uid: the process
    keeps that uid, and the capabilities it held in its namespace (to build the mount view) go.
    """
    prctl("uid", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(CAP_LAST + 1):
        try:
            prctl("uid", PR_CAPBSET_DROP, cap)
        except SandboxError:
            break  # past the last capability of this kernel
    syscall("uid", "capset", ctypes.byref(_CapHeader(CAP_VERSION_3, 0)), (_CapData * 2)())
    if capabilities():
        raise SandboxError("uid", "capabilities remain after capset")


def capabilities() -> int:
    """The effective, permitted and inheritable capabilities of this process (0: none), from ``capget``."""
    data = (_CapData * 2)()
    syscall("uid", "capget", ctypes.byref(_CapHeader(CAP_VERSION_3, 0)), data)
    return sum(d.effective | d.permitted | d.inheritable for d in data)


def not_dumpable() -> None:
    """``PR_SET_DUMPABLE`` 0: no core, no ptrace attach, and the process's /proc files become root's, so a
    process of the same uid cannot open its ``mem``, ``environ`` or ``fd``; then verify."""
    prctl("uid", PR_SET_DUMPABLE, 0)
    if prctl("uid", PR_GET_DUMPABLE) != 0:
        raise SandboxError("uid", "PR_GET_DUMPABLE does not read back 0")
