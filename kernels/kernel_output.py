"""A kernel's stdout and stderr: one pipe per kernel that the agent owns, its lines logged within bounds.

A kernel holds no descriptor of the agent or the server: its fd 0 is ``/dev/null`` and its fds 1
and 2 are the write end of its own pipe (``kernels.template``). ipykernel copies what reaches
those fds to iopub *and* to the original fds, and logs its own warnings there, so the pipe carries
C-level output, kernel warnings and start-up tracebacks. ``KernelOutput`` reads the other end on the
agent's event loop and logs each line as ``kernel_output`` with ``kernel_id`` and ``line`` (an
escaped string field of the JSON event, never raw bytes of the log): at most ``line_bytes`` of a
line (the rest cut, with ``truncated``), at most ``lines_per_second`` lines (a burst of as many).
Lines beyond are counted without being parsed, and the count is logged as ``kernel_output_dropped``
at most once a second and when the pipe closes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import structlog

from .limits import KERNEL_LOG_LINE_BYTES, KERNEL_LOG_LINES_PER_SECOND

log = structlog.get_logger("bi.executor.kernel_output")

READ_BYTES = 256 * 1024
DROPPED_REPORT_SECONDS = 1.0
DRAIN_READS = 16  # reads of what is left in the pipe when it is closed


class KernelOutput:
    """Reads the pipe end ``fd`` (owned from now on) of kernel ``kernel_id`` until EOF or ``close()``."""

    def __init__(self, kernel_id: str, fd: int, lines_per_second: int = KERNEL_LOG_LINES_PER_SECOND,
                 line_bytes: int = KERNEL_LOG_LINE_BYTES, clock: Callable[[], float] = time.monotonic):
        self.kernel_id = kernel_id
        self.fd = fd
        self.lines_per_second = lines_per_second
        self.line_bytes = line_bytes
        self.clock = clock
        self.dropped = 0
        self._line = bytearray()  # the current line, at most line_bytes of it
        self._cut = False         # the current line is longer: the rest is skipped
        self._allowance = float(lines_per_second)
        self._refilled = clock()
        self._loop = asyncio.get_running_loop()
        self._report: asyncio.TimerHandle | None = None
        self.closed = False
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._read)

    def _read(self) -> bool:
        """Read once; returns whether more may come (False at EOF, which closes)."""
        try:
            data = os.read(self.fd, READ_BYTES)
        except BlockingIOError:
            return False
        if not data:
            self.close()
            return False
        self.feed(data)
        return True

    def feed(self, data: bytes) -> None:
        """Take ``data`` from the pipe: log its complete lines within the budget, count the rest."""
        now = self.clock()
        self._allowance = min(float(self.lines_per_second),
                              self._allowance + (now - self._refilled) * self.lines_per_second)
        self._refilled = now
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            if self._allowance < 1:
                self._drop(data.count(b"\n", start))
                start = data.rfind(b"\n") + 1
                break
            self._append(data[start:end])
            self._emit()
            start = end + 1
        self._append(data[start:])

    def _append(self, chunk: bytes) -> None:
        room = self.line_bytes - len(self._line)
        self._line += chunk[:room]
        self._cut = self._cut or len(chunk) > room

    def _emit(self) -> None:
        self._allowance -= 1
        extra = {"truncated": True} if self._cut else {}
        log.info("kernel_output", kernel_id=self.kernel_id,
                 line=self._line.decode("utf-8", "backslashreplace"), **extra)
        self._line.clear()
        self._cut = False

    def _drop(self, lines: int) -> None:
        self.dropped += lines
        self._line.clear()
        self._cut = False
        if self._report is None:
            self._report = self._loop.call_later(DROPPED_REPORT_SECONDS, self._report_dropped)

    def _report_dropped(self) -> None:
        self._report = None
        if self.dropped:
            log.warning("kernel_output_dropped", kernel_id=self.kernel_id, lines=self.dropped,
                        lines_per_second=self.lines_per_second)
            self.dropped = 0

    def close(self) -> None:
        """Log what is left in the pipe (within the budget) and the dropped count, then close the pipe."""
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self.fd)
        for _ in range(DRAIN_READS):
            if not self._read():
                break
        if self._line or self._cut:
            self.feed(b"\n")
        if self._report is not None:
            self._report.cancel()
        self._report_dropped()
        os.close(self.fd)
