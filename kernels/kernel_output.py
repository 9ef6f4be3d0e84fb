"""A kernel's stdout and stderr: one pipe per kernel that the agent owns, its lines logged within bounds.

A kernel holds no descriptor of the agent or the server: its fd 0 is ``/dev/null`` and its fds 1
and 2 are the write end of its own pipe (``kernels.template``). ipykernel copies what reaches
those fds to iopub *and* to the original fds, and logs its own warnings there, so the pipe carries
C-level output, kernel warnings and start-up tracebacks. ``KernelOutput`` reads the other end on the
agent's event loop and logs each line as ``kernel_output`` with ``kernel_id`` and ``line`` (an
escaped string field of the JSON event, never raw bytes of the log). Bounds count what is logged,
after JSON escaping (a control character becomes six bytes, ``\\u0001``): a line takes at most
``line_bytes`` of the log (the rest cut, with ``truncated``), and a kernel at most ``lines_per_second``
lines and ``bytes_per_second`` bytes a second (each a burst of as many; a line costs its escaped size
plus ``KERNEL_LOG_EVENT_BYTES``). Lines beyond are counted without being parsed, and the counts are
logged as ``kernel_output_dropped`` at most once a second and when the pipe closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable

import structlog

from .limits import KERNEL_LOG_BYTES_PER_SECOND, KERNEL_LOG_EVENT_BYTES, KERNEL_LOG_LINE_BYTES, KERNEL_LOG_LINES_PER_SECOND

log = structlog.get_logger("bi.executor.kernel_output")

READ_BYTES = 256 * 1024
DROPPED_REPORT_SECONDS = 1.0
DRAIN_READS = 16  # reads of what is left in the pipe when it is closed


class KernelOutput:
    """Reads the pipe end ``fd`` (owned from now on) of kernel ``kernel_id`` until EOF or ``close()``."""

    def __init__(self, kernel_id: str, fd: int, lines_per_second: int = KERNEL_LOG_LINES_PER_SECOND,
                 line_bytes: int = KERNEL_LOG_LINE_BYTES, bytes_per_second: int = KERNEL_LOG_BYTES_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic):
        self.kernel_id = kernel_id
        self.fd = fd
        self.lines_per_second = lines_per_second
        self.line_bytes = line_bytes
        self.bytes_per_second = bytes_per_second
        self.clock = clock
        self.dropped = 0
        self._line = bytearray()  # the current line, at most line_bytes of it
        self._cut = False         # the current line is longer: the rest is skipped
        self._allowance = float(lines_per_second)
        self._byte_allowance = float(bytes_per_second)
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
        elapsed, self._refilled = now - self._refilled, now
        self._allowance = min(float(self.lines_per_second), self._allowance + elapsed * self.lines_per_second)
        self._byte_allowance = min(float(self.bytes_per_second),
                                   self._byte_allowance + elapsed * self.bytes_per_second)
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            if self._allowance < 1 or self._byte_allowance < KERNEL_LOG_EVENT_BYTES:
                self._drop(data.count(b"\n", start))
                start = data.rfind(b"\n") + 1
                break
            self._append(data[start:end])
            if not self._emit():
                self._drop(data.count(b"\n", end + 1))
                start = data.rfind(b"\n") + 1
                break
            start = end + 1
        self._append(data[start:])

    def _append(self, chunk: bytes) -> None:
        room = self.line_bytes - len(self._line)
        self._line += chunk[:room]
        self._cut = self._cut or len(chunk) > room

    def _emit(self) -> bool:
        """Log the current line if its escaped size fits the byte budget (False: it was dropped)."""
        text = self._line.decode("utf-8", "backslashreplace")
        size = logged_size(text)
        if size > self.line_bytes:
            text, size = cut_to(text, self.line_bytes)
            self._cut = True
        if size + KERNEL_LOG_EVENT_BYTES > self._byte_allowance:
            self._drop(1)
            return False
        self._allowance -= 1
        self._byte_allowance -= size + KERNEL_LOG_EVENT_BYTES
        extra = {"truncated": True} if self._cut else {}
        log.info("kernel_output", kernel_id=self.kernel_id, line=text, **extra)
        self._line.clear()
        self._cut = False
        return True

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
                        lines_per_second=self.lines_per_second, bytes_per_second=self.bytes_per_second)
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


def logged_size(text: str) -> int:
    """Bytes ``text`` takes in the log as a JSON string's content (``kernels.logs``: UTF-8, control
    characters, quotes and backslashes escaped)."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def cut_to(text: str, limit: int) -> tuple[str, int]:
    """The longest start of ``text`` whose logged size is at most ``limit``, and that size (a binary search:
    a character takes one to six bytes)."""
    low, high = 0, min(len(text), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if logged_size(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low], logged_size(text[:low])
