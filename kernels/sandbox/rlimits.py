"""Resource limits of one kernel process (soft = hard, so the kernel cannot raise them back)."""

from __future__ import annotations

import resource
from dataclasses import dataclass

from kernels.sandbox.errors import SandboxError

MB = 1024 * 1024


@dataclass(frozen=True)
class Rlimits:
    """Address space, CPU time, tasks of the uid (threads count), file size, open files; no cores.

    ``RLIMIT_AS`` misses memfd, tmpfs and children, and ``RLIMIT_NPROC`` counts every task of
    the uid (so it needs a distinct uid per kernel): the memory and pids cgroup backs both.
    """

    address_space_mb: int = 2048
    cpu_seconds: int = 300
    processes: int = 64
    file_size_mb: int = 256
    open_files: int = 256

    def limits(self) -> dict[int, int]:
        """``{resource.RLIMIT_*: value}`` in the units ``setrlimit`` takes."""
        return {
            resource.RLIMIT_AS: self.address_space_mb * MB,
            resource.RLIMIT_CPU: self.cpu_seconds,
            resource.RLIMIT_NPROC: self.processes,
            resource.RLIMIT_FSIZE: self.file_size_mb * MB,
            resource.RLIMIT_NOFILE: self.open_files,
            resource.RLIMIT_CORE: 0,
        }

    def apply(self) -> None:
        """Set every limit, then read each back."""
        for which, value in self.limits().items():
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError) as e:
                raise SandboxError("rlimits", f"setrlimit({which}, {value}): {e}") from e
            if resource.getrlimit(which) != (value, value):
                raise SandboxError("rlimits", f"limit {which} reads back {resource.getrlimit(which)}")
