"""What a kernel does outside its runs, charged to a per-kernel budget.

A run ends at its ``execute_reply`` (or at its wall clock): a thread the cell started, or code
that forged the reply or the ``idle`` status, keeps running after it, where no run's wall clock
or output cap applies. Whatever a kernel sends on iopub outside a run (status messages aside) is
charged in bytes, and the CPU time it uses between runs in seconds, read from its executor agent
every ``poll`` seconds. Past either bound, ``on_exceeded`` is called once with the reason: the
pool then replaces the kernel, like one that died.

CPU readings are charged only between two readings taken while no run was going and none started
or ended in between, so no run's own CPU is ever charged; what a kernel uses in the partial
intervals around runs (at most one poll each) goes uncharged.
"""

from __future__ import annotations

from collections.abc import Callable

from .outputs import amount


class BackgroundBudget:
    """The background bytes and CPU seconds one kernel has used, against its bounds."""

    def __init__(self, limit_bytes: int, limit_cpu_seconds: float, on_exceeded: Callable[[str], None]):
        self.limit_bytes = limit_bytes
        self.limit_cpu_seconds = limit_cpu_seconds
        self.on_exceeded = on_exceeded
        self.bytes = 0
        self.cpu_seconds = 0.0
        self.running = False
        self.exceeded = False
        self._changes = 0  # runs started and ended: readings across one are not compared
        self._last: tuple[int, float] | None = None  # (changes, CPU seconds) of the last idle reading

    def run_started(self) -> None:
        self.running = True
        self._changes += 1

    def run_ended(self) -> None:
        self.running = False
        self._changes += 1

    def charge_bytes(self, size: int) -> None:
        """``size`` bytes of iopub messages came outside any run."""
        self.bytes += size
        if self.bytes > self.limit_bytes:
            self._exceed(f"sent more than {amount(self.limit_bytes)} of output between runs")

    def cpu_reading(self, seconds: float) -> None:
        """The kernel's total CPU time now, from its agent."""
        last, self._last = self._last, None if self.running else (self._changes, seconds)
        if last is not None and self._last is not None and last[0] == self._changes:
            self.cpu_seconds += max(0.0, seconds - last[1])
            if self.cpu_seconds > self.limit_cpu_seconds:
                self._exceed(f"used more than {self.limit_cpu_seconds:g} s of CPU between runs")

    def _exceed(self, reason: str) -> None:
        if not self.exceeded:
            self.exceeded = True
            self.on_exceeded(f"the kernel {reason}, in background work a cell left running")
