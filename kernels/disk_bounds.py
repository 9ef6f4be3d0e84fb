"""Bounds on what a kernel keeps on the agent's disk where the agent cannot give it tmpfs of its own.

Where the agent can mount, a kernel's ``ipc/`` and ``tables/`` directories are tmpfs of a fixed size and
number of inodes (``launcher.py``). An agent that cannot (not root, or building user namespaces: compose's
non-root executor) leaves them on the disk that every kernel of the agent shares, where a card could write
files until its neighbours cannot write a table. The agent measures them every ``CHECK_SECONDS`` and
stops a kernel past the same bounds, its exit marked ``DISK_LIMIT``; between two checks a kernel can write
at most its file-size rlimit per file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .limits import IPC_DIR_BYTES, IPC_DIR_INODES, TABLES_DIR_BYTES, TABLES_DIR_INODES

DISK_LIMIT = "kernel_disk_limit"  # the code of a kernel's exit when it was stopped past these bounds
CHECK_SECONDS = 1.0
MAX_BYTES = TABLES_DIR_BYTES + IPC_DIR_BYTES
MAX_ENTRIES = TABLES_DIR_INODES + IPC_DIR_INODES


def over_bounds(directories: Iterable[Path]) -> bool:
    """Whether ``directories`` (and what is beneath them) hold more than ``MAX_ENTRIES`` files and folders or
    ``MAX_BYTES`` of allocated blocks; the walk stops at the first entry past the bound."""
    entries, allocated = 0, 0
    pending = [str(directory) for directory in directories]
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    entries += 1
                    if entries > MAX_ENTRIES:
                        return True
                    info = entry.stat(follow_symlinks=False)
                    allocated += info.st_blocks * 512
                    if allocated > MAX_BYTES:
                        return True
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
        except (FileNotFoundError, NotADirectoryError):  # the kernel removed it meanwhile, or it is gone
            continue
    return False
