"""Start a process as an unprivileged uid from a root test run, with this interpreter reachable.

The tests run as root (CI too); an executor container runs as a user of its own. ``as_nobody``
wraps a command so it runs as uid/gid 65534 without supplementary groups (``setpriv``). Should
the interpreter sit beneath a directory closed to others (a pyenv under ``/root``, 0700), the
command runs in a private mount namespace where a 0755 tmpfs covers that directory and only
the entry on the interpreter's way is bound back: the host is not changed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from tests.kernels.sandbox.helpers import require

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


def closed_directory(path: str) -> tuple[str, str] | None:
    """The first directory on the way to ``path`` that others cannot search, and its entry on that way."""
    parts = Path(os.path.realpath(path)).parts
    for depth in range(1, len(parts) - 1):
        directory = os.path.join(*parts[:depth])
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return directory, parts[depth]
    return None


def as_nobody(argv: list[str]) -> list[str]:
    """``argv`` run as uid/gid 65534 (skips unless root)."""
    require(os.geteuid() == 0, "needs root to start a process as another, unprivileged uid")
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    closed = {closed_directory(path) for path in (sys.executable, sys.base_prefix, sys.prefix, str(REPO))}
    closed.discard(None)
    if not closed:
        return drop
    steps = []
    for directory, entry in sorted(closed):
        stash = tempfile.mkdtemp(prefix="bi-stash-")
        steps += [f"mount --rbind '{directory}/{entry}' '{stash}'",
                  f"mount -t tmpfs -o mode=0755,size=1m tmpfs '{directory}'",
                  f"mkdir '{directory}/{entry}'", f"mount --move '{stash}' '{directory}/{entry}'", f"rmdir '{stash}'"]
    script = " && ".join([*steps, 'exec "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *drop]


def unprivileged(argv: list[str]) -> list[str]:
    """``argv`` as uid 65534 when running as root, else as it is (already unprivileged)."""
    return as_nobody(argv) if os.geteuid() == 0 else argv


@contextlib.contextmanager
def nobody_directory() -> Iterator[Path]:
    """A fresh short directory the uid of ``unprivileged`` owns (a run directory, a working directory),
    removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="bi-nb-"))
    try:
        if os.geteuid() == 0:
            os.chown(directory, NOBODY, NOBODY)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
