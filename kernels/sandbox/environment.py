"""The kernel's environment: a short allowlist, and nothing of the parent's left in the process."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

from kernels.sandbox.errors import SandboxError

DEFAULT = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp/workdir",
    "TMPDIR": "/tmp/workdir",
    "LANG": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # kernels start no processes: joblib (scikit-learn) runs serially without warning about semaphores
    "JOBLIB_MULTIPROCESSING": "0",
}


def initial_block() -> tuple[int, int]:
    """Start and end address of the environment strings execve placed on the stack (proc(5) stat): read
    before the mount view, which may have no ``/proc``."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[47]), int(fields[48])  # fields 50 and 51 of the line: env_start, env_end
    except (OSError, ValueError, IndexError) as e:
        raise SandboxError("environment", f"cannot find the environment block: {e}") from e


def apply(variables: Mapping[str, str] = DEFAULT, block: tuple[int, int] | None = None) -> None:
    """Replace the environment by ``variables`` and wipe the strings inherited at execve (at ``block``,
    by default ``initial_block()``).

    ``os.environ.clear()`` unsets every variable in libc too, but the original strings stay in
    memory and in ``/proc/self/environ`` (which reads that block); they are zeroed here.
    """
    start, end = block or initial_block()
    os.environ.clear()
    os.environ.update(variables)
    ctypes.memset(start, 0, end - start)
    if ctypes.string_at(start, end - start).strip(b"\0"):
        raise SandboxError("environment", "the inherited environment block still holds variables")
