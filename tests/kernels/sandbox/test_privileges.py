"""Dropping to a kernel uid, and PR_SET_NO_NEW_PRIVS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernels.sandbox import privileges
from kernels.sandbox.errors import SandboxError
from tests.kernels.sandbox.helpers import LIBC, attempt, run


def _as_kernel_uid(uid: int, secret: Path, parent: int) -> dict[str, object]:
    privileges.drop(uid, uid)
    return {
        "ids": (os.getresuid(), os.getresgid(), os.getgroups()),
        "shadow": attempt(lambda: open("/etc/shadow").read()),
        "secret": attempt(secret.read_text),
        "environ of parent": attempt(lambda: open(f"/proc/{parent}/environ").read()),
        "kill parent": attempt(lambda: os.kill(parent, 0)),
        "setuid 0": attempt(lambda: os.setuid(0)),
    }


def test_dropped_uid_cannot_reach_root_things(root, kernel_uid, tmp_path):
    """After the drop: root's files, signals to root's processes and setuid(0) all fail."""
    secret = tmp_path / "secret"
    secret.write_text("server secret")
    secret.chmod(0o600)
    seen = run(_as_kernel_uid, kernel_uid, secret, os.getpid()).ok()
    assert seen.pop("ids") == ((kernel_uid,) * 3, (kernel_uid,) * 3, [])
    assert seen == {
        "shadow": "PermissionError:EACCES",
        "secret": "PermissionError:EACCES",
        "environ of parent": "PermissionError:EACCES",
        "kill parent": "PermissionError:EPERM",
        "setuid 0": "PermissionError:EPERM",
    }


def test_refuses_root_as_target():
    with pytest.raises(SandboxError, match="unprivileged"):
        privileges.drop(0, 0)


def _no_new_privs() -> tuple[int, int, str]:
    privileges.no_new_privs()
    clear = LIBC.prctl(privileges.PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0)
    with open("/proc/self/status") as f:
        status = next(line for line in f if line.startswith("NoNewPrivs"))
    return LIBC.prctl(privileges.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), clear, status.split()[1]


def test_no_new_privs_is_set_and_sticks():
    """NNP reads back 1 (in prctl and /proc) and cannot be cleared again."""
    assert run(_no_new_privs).ok() == (1, -1, "1")
