"""Dropping root for good: one unprivileged uid/gid, no groups, and no way back."""

from __future__ import annotations

import os

from kernels.sandbox._libc import prctl
from kernels.sandbox.errors import SandboxError

PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39


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
