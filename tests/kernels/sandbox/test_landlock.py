"""Landlock: files beneath the allowed paths only, no TCP, no signals or abstract sockets outside."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from kernels.sandbox import landlock, privileges
from kernels.sandbox.landlock import (
    ALL_FS_V1,
    IOCTL_DEV,
    NET_BIND_TCP,
    NET_CONNECT_TCP,
    REFER,
    SCOPE_ABSTRACT_UNIX_SOCKET,
    SCOPE_SIGNAL,
    TRUNCATE,
    Landlock,
)
from tests.kernels.sandbox.helpers import attempt, require, run


def _require_abi(version: int) -> None:
    require(landlock.abi() >= version, f"needs Landlock ABI >= {version}, the kernel offers {landlock.abi()}")


def test_abi_reported():
    _require_abi(1)
    assert landlock.abi() >= 1


# What each ABI can restrict, from the kernel's Documentation/userspace-api/landlock.rst.
NET, SCOPES = NET_BIND_TCP | NET_CONNECT_TCP, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
HANDLED_BY_ABI = {
    1: (ALL_FS_V1, 0, 0),
    2: (ALL_FS_V1 | REFER, 0, 0),
    3: (ALL_FS_V1 | REFER | TRUNCATE, 0, 0),
    4: (ALL_FS_V1 | REFER | TRUNCATE, NET, 0),
    5: (ALL_FS_V1 | REFER | TRUNCATE | IOCTL_DEV, NET, 0),
    6: (ALL_FS_V1 | REFER | TRUNCATE | IOCTL_DEV, NET, SCOPES),
    7: (ALL_FS_V1 | REFER | TRUNCATE | IOCTL_DEV, NET, SCOPES),
}


def test_rights_handled_per_abi():
    """Each ABI handles exactly the rights it knows: one it does not know fails the ruleset (EINVAL)."""
    assert {version: landlock.handled(version) for version in HANDLED_BY_ABI} == HANDLED_BY_ABI


def _files(workdir: Path, outside: Path, version: int | None = None) -> dict[str, str]:
    privileges.no_new_privs()
    used = Landlock(readable=("/usr",), writable=(str(workdir),)).apply(version)
    assert version is None or used == version
    return {
        "read /usr": attempt(lambda: os.listdir("/usr/lib")),
        "read outside": attempt(outside.read_text),
        "read /etc": attempt(lambda: open("/etc/hostname").read()),
        "write outside": attempt(lambda: (outside.parent / "planted").write_text("x")),
        "write workdir": attempt(lambda: (workdir / "ok").write_text("x")),
        "socket in workdir": attempt(lambda: socket.socket(socket.AF_UNIX).bind(str(workdir / "s"))),
    }


def test_files_beneath_allowed_paths_only(tmp_path):
    """Even as root, reads only beneath ``readable`` and writes only beneath ``writable`` succeed;
    sockets are made only beneath ``sockets``."""
    _require_abi(1)
    workdir = tmp_path / "work"
    workdir.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("host data")
    assert run(_files, workdir, outside).ok() == {
        "read /usr": "ok", "read outside": "PermissionError:EACCES", "read /etc": "PermissionError:EACCES",
        "write outside": "PermissionError:EACCES", "write workdir": "ok",
        "socket in workdir": "PermissionError:EACCES",
    }
    assert not (tmp_path / "planted").exists()


def test_every_abi_up_to_the_kernels_applies(tmp_path):
    """A ruleset capped at each ABI the kernel offers is accepted and keeps files beneath their paths."""
    _require_abi(1)
    workdir = tmp_path / "work"
    workdir.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("host data")
    for version in range(1, landlock.abi() + 1):
        seen = run(_files, workdir, outside, version).ok()
        assert (version, seen["read outside"], seen["write workdir"]) == (version, "PermissionError:EACCES", "ok")


def _tcp(port: int) -> dict[str, str]:
    privileges.no_new_privs()
    Landlock().apply()
    return {
        "connect": attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=2)),
        "bind": attempt(lambda: socket.socket().bind(("127.0.0.1", 0))),
    }


def test_no_tcp(tcp_port):
    """TCP connect to a reachable port, and TCP bind, both fail."""
    _require_abi(4)
    assert run(_tcp, tcp_port).ok() == {"connect": "PermissionError:EACCES", "bind": "PermissionError:EACCES"}


def _scoped(parent: int, name: str) -> dict[str, str]:
    privileges.no_new_privs()
    Landlock().apply()
    return {
        "kill parent": attempt(lambda: os.kill(parent, 0)),
        "kill self": attempt(lambda: os.kill(os.getpid(), 0)),
        "abstract socket": attempt(lambda: socket.socket(socket.AF_UNIX).connect(name)),
    }


def test_scopes_signals_and_abstract_sockets():
    """Under Landlock (even as root) no signal to the parent nor its abstract unix socket; itself it can."""
    _require_abi(6)
    name = f"\0bi-sandbox-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(name)
        listener.listen(4)
        with socket.socket(socket.AF_UNIX) as baseline:
            baseline.connect(name)  # reachable outside the sandbox
        assert run(_scoped, os.getpid(), name).ok() == {
            "kill parent": "PermissionError:EPERM", "kill self": "ok",
            "abstract socket": "PermissionError:EPERM",
        }


def _missing_rule_path() -> str:
    try:
        Landlock(readable=("/nonexistent/dir",)).apply()
    except Exception as e:  # noqa: BLE001 - the error is the result
        return f"{type(e).__name__}: {e}"
    return "applied"


def test_missing_rule_path_is_an_error():
    """A path that cannot be opened for a rule raises SandboxError instead of being left out."""
    _require_abi(1)
    assert run(_missing_rule_path).ok().startswith("SandboxError: sandbox layer 'landlock'")
