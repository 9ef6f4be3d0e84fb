"""Distinct unprivileged uids (used as gids too) for live kernels, from a configured range."""

from __future__ import annotations

import os
import threading

from kernels.sandbox.errors import SandboxError

DEFAULT_FIRST = 61000
DEFAULT_COUNT = 1000


def _account_ids(path: str) -> set[int]:
    """The ids (third field) of every entry of ``/etc/passwd`` or ``/etc/group``."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return {int(fields[2]) for line in f
                if len(fields := line.split(":")) > 2 and fields[2].isdigit()}


def _process_ids() -> set[int]:
    """Every real, effective, saved or filesystem uid and gid of a live process."""
    ids: set[int] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as f:
                for line in f:
                    if line.startswith(("Uid:", "Gid:")):
                        ids.update(int(value) for value in line.split()[1:])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process ended while we looked
    return ids


class UidAllocator:
    """Hands out ids from ``[first, first + count)`` that no account or live process uses.

    The same number serves as uid and gid. Thread-safe; ``release`` returns an id to the pool.
    """

    def __init__(self, first: int = DEFAULT_FIRST, count: int = DEFAULT_COUNT,
                 passwd: str = "/etc/passwd", group: str = "/etc/group"):
        if first < 1000 or count < 1 or first + count > 2**31 - 2:
            raise ValueError(f"uid range [{first}, {first + count}) must be unprivileged (>= 1000)")
        self.first, self.count = first, count
        self.passwd, self.group = passwd, group
        self._lock = threading.Lock()
        self._in_use: set[int] = set()

    def allocate(self) -> int:
        """A free id; raises ``SandboxError`` when the range is exhausted."""
        with self._lock:
            taken = self._in_use | _account_ids(self.passwd) | _account_ids(self.group) | _process_ids()
            for uid in range(self.first, self.first + self.count):
                if uid not in taken:
                    self._in_use.add(uid)
                    return uid
        raise SandboxError("uid", f"no free uid in [{self.first}, {self.first + self.count})")

    def release(self, uid: int) -> None:
        """Give ``uid`` back; its processes must have ended."""
        with self._lock:
            self._in_use.remove(uid)
