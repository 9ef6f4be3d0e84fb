"""The private mount view: read-only root, only chosen host paths, a capped tmpfs workdir."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

from kernels.sandbox import namespaces
from kernels.sandbox.mounts import MountView
from kernels.sandbox.sandbox import default_readable
from tests.kernels.sandbox.helpers import attempt, run, run_here

MB = 1024 * 1024


def _apply_then(view: MountView, attack: Callable[..., Any], *args: Any) -> Any:
    view.apply()
    return attack(*args)


def _in_view(view: MountView, attack: Callable[..., Any], *args: Any) -> Any:
    """``attack(*args)`` inside ``view``, as pid 1 of a new PID namespace (the view adds a mount one)."""
    namespaces.unshare(namespaces.CLONE_NEWPID)
    return run_here(_apply_then, view, attack, *args).ok()


SERVER_PACKAGE = str(Path(__file__).resolve().parents[3] / "server")


def _write(path: str, size: int = 1) -> None:
    with open(path, "wb") as f:
        f.write(b"x" * size)


def _look_around(host_file: Path, ipc_dir: str) -> dict[str, object]:
    import pandas.io.formats.style_render  # noqa: F401 - a module file read after the view is built

    return {
        "shadow": attempt(lambda: open("/etc/shadow").read()),
        "data dir": attempt(host_file.read_text),
        "server package": attempt(lambda: os.listdir(SERVER_PACKAGE)),
        "dev shm": attempt(lambda: os.listdir("/dev/shm")),
        "root dir": sorted(os.listdir("/")),
        "/root": os.listdir("/root"),
        "proc": sorted(p for p in os.listdir("/proc") if p.isdigit()),
        "prefix": attempt(lambda: os.listdir(sys.base_prefix)),
        "ipc": attempt(lambda: os.listdir(ipc_dir)),
    }


def test_view_shows_only_what_is_bound(root, tmp_path, ipc_dir):
    """Host secrets, the data dir and other paths are absent; the interpreter is readable."""
    host_file = tmp_path / "data" / "users.sqlite"
    host_file.parent.mkdir()
    host_file.write_text("tenant data")
    view = MountView(readable=default_readable(), ipc_dir=ipc_dir)
    seen = run(_in_view, view, _look_around, host_file, ipc_dir).ok()
    bound = (*view.system, *view.etc, *view.readable, ipc_dir)
    assert seen.pop("root dir") == sorted({"dev", "proc", "tmp"} | {p.split("/")[1] for p in bound})
    assert seen == {
        "shadow": "FileNotFoundError:ENOENT",
        "data dir": "FileNotFoundError:ENOENT",
        "server package": "FileNotFoundError:ENOENT",
        "dev shm": "FileNotFoundError:ENOENT",
        "/root": [sys.base_prefix.split("/")[2]] if sys.base_prefix.startswith("/root/") else [],
        "proc": ["1"],
        "prefix": "ok",
        "ipc": "ok",
    }


def _write_around(ipc_dir: str) -> dict[str, str]:
    return {
        "/": attempt(lambda: _write("/planted")),
        "/tmp": attempt(lambda: _write("/tmp/planted")),
        "/usr": attempt(lambda: _write("/usr/planted")),
        "venv": attempt(lambda: _write(os.path.join(sys.prefix, "planted.pth"))),
        "/dev/null": attempt(lambda: _write("/dev/null")),
        "workdir": attempt(lambda: _write("/tmp/workdir/ok")),
        "ipc dir": attempt(lambda: _write(os.path.join(ipc_dir, "planted"))),
        "ipc writable": attempt(lambda: _write(os.path.join(ipc_dir, "sockets", "ok"))),
        "workdir over its size": attempt(lambda: _write("/tmp/workdir/big", 16 * MB)),
    }


def test_only_workdir_and_ipc_dir_are_writable(root, ipc_dir):
    """Writes outside the workdir and the ipc directory's writable subdirectories fail with EROFS, even as root:
    the ipc directory itself is read-only (where it lies beneath the workdir, Landlock's workdir rule covers it)."""
    os.mkdir(os.path.join(ipc_dir, "sockets"))
    view = MountView(readable=default_readable(), workdir_size_mb=8, ipc_dir=ipc_dir,
                     ipc_writable=[os.path.join(ipc_dir, "sockets")])
    assert run(_in_view, view, _write_around, ipc_dir).ok() == {
        "/": "OSError:EROFS", "/tmp": "OSError:EROFS", "/usr": "OSError:EROFS", "venv": "OSError:EROFS",
        "/dev/null": "ok", "workdir": "ok", "ipc dir": "OSError:EROFS", "ipc writable": "ok",
        "workdir over its size": "OSError:ENOSPC",
    }
    assert os.listdir(ipc_dir) == ["sockets"] and os.listdir(os.path.join(ipc_dir, "sockets")) == ["ok"]
