"""Decode a CP932 or EUC-JP file to UTF-8 on several cores: chunks cut after a newline, decoded by processes.

Python's codecs hold the GIL, and decoding is most of what a CSV import of such a file costs. These
encodings never put the byte 0x0A inside a multi-byte character, so a chunk that ends just after a
newline ends between characters: chunks decode alone to what the whole file decodes to, in order.
``DecodeWorkers`` are the processes (``csv_decode_worker.py``, standard library only, a few MB each);
``ParallelDecoder`` keeps one chunk at each (its byte range: the worker reads the file itself) and hands
out their UTF-8 in file order. A byte the encoding cannot decode ends the read with ``UndecodableLine``,
naming the exact line: the newlines of the file before it, counted only then (not in every chunk as it is
decoded: about a twentieth of a worker's time).
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import fcntl
import os
import re
import subprocess
import sys
from pathlib import Path

from .csv_decode_worker import ANSWER, DECODED, REQUEST

PARALLEL_ENCODINGS = frozenset(codecs.lookup(name).name for name in (
    "cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004", "euc_jisx0213"))
"""Encodings whose multi-byte characters never hold the byte 0x0A (and whose decoders keep no state
across lines)."""
CHUNK_BYTES = 2 << 20
WINDOW_BYTES = 64 << 10  # read at each cut to find where a line ends
PIPE_BYTES = 1 << 20  # each worker's answer pipe (through Linux's default 64 KB, a chunk crossed in 32 pieces)
COUNT_BYTES = 1 << 20  # read at a time to count the lines before an undecodable byte
WORKER = Path(__file__).with_name("csv_decode_worker.py")


_SINGLE_BYTE_TAIL = re.compile(rb"[\x00-\x3f][\x40-\xff]*\Z")


def _boundary(data: bytes) -> int:
    """Where ``data`` may be cut between characters: after its last newline, or in a file without one (CR line
    ends, or none) after its last byte below 0x40 (never part of a multi-byte character in these encodings:
    trail bytes start at 0x40); 0 if nowhere."""
    cut = data.rfind(b"\n") + 1
    if cut:
        return cut
    single = _SINGLE_BYTE_TAIL.search(data)
    return single.start() + 1 if single else 0


class UndecodableLine(UnicodeError):
    """A byte the encoding cannot decode; ``line`` is the 1-based line it is on."""

    def __init__(self, line: int):
        super().__init__(f"undecodable byte on line {line}")
        self.line = line


class DecodeWorkers:
    """``count`` decoding processes; ``close`` (or the end of a ``with``) ends them."""

    def __init__(self, count: int):
        self.processes: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(count):
                process = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, env={}, close_fds=True)
                self.processes.append(process)
                assert process.stdout is not None
                with contextlib.suppress(OSError):  # past /proc/sys/fs/pipe-max-size: the default, only slower
                    fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> DecodeWorkers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
        self.processes = []


class ParallelDecoder:
    """The UTF-8 of the file at ``path``, a chunk per ``read``, decoded by ``workers``.

    This process only picks where chunks end, reading a small window at each cut: each worker reads its
    chunk from the file itself. One chunk is out at each worker at a time: each answer is read before the
    worker gets its next chunk, so neither side ever waits on a full pipe of the other's. ``close`` collects
    the answers still out, leaving the workers ready for another file. ``quoted`` tells whether a chunk read
    so far held a double quote.
    """

    def __init__(self, path: Path, encoding: str, workers: DecodeWorkers, chunk_bytes: int | None = None):
        if codecs.lookup(encoding).name not in PARALLEL_ENCODINGS:
            raise ValueError(f"{encoding} may hold 0x0A inside a character: decode it in one piece")
        self._path = os.fsencode(path)
        self._size = os.stat(path).st_size
        self._encoding = encoding.encode("ascii")
        self._workers = workers.processes
        self._chunk_bytes = chunk_bytes or CHUNK_BYTES
        self._offset = 0  # where the next chunk starts
        self._out: collections.deque[tuple[int, int]] = collections.deque()  # (worker, start) of each chunk out, in order
        self._next_worker = 0
        self.quoted = False
        for _ in self._workers:
            self._send_next()

    def read(self) -> bytes:
        """The UTF-8 of the next chunk; ``b""`` at the end of the file."""
        if not self._out:
            return b""
        worker, start = self._out.popleft()
        status, value, quote = ANSWER.unpack(self._answer(worker, ANSWER.size))
        if status != DECODED:
            raise UndecodableLine(self._newlines_before(start + value) + 1)
        self.quoted = self.quoted or bool(quote)
        text = self._answer(worker, value)
        self._send_next()
        return text

    def close(self) -> None:
        """Collect the answers still out (the workers then wait for new chunks)."""
        while self._out:
            worker, _ = self._out.popleft()
            status, value, _ = ANSWER.unpack(self._answer(worker, ANSWER.size))
            if status == DECODED:
                self._answer(worker, value)

    def _send_next(self) -> None:
        start = self._offset
        if start >= self._size:
            return
        end = self._cut(start + self._chunk_bytes)
        self._offset = end
        worker = self._next_worker
        self._next_worker = (worker + 1) % len(self._workers)
        stdin = self._workers[worker].stdin
        assert stdin is not None
        stdin.write(REQUEST.pack(len(self._encoding), len(self._path), start, end - start))
        stdin.write(self._encoding + self._path)
        stdin.flush()
        self._out.append((worker, start))

    def _cut(self, position: int) -> int:
        """The first place from ``position`` on where the file may be cut between characters (``_boundary`` of
        each window read); the end of the file if none."""
        if position >= self._size:
            return self._size
        fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while position < self._size:
                window = os.pread(fd, min(WINDOW_BYTES, self._chunk_bytes), position)
                if not window:
                    break
                cut = _boundary(window)
                if cut:
                    return position + cut
                position += len(window)
        finally:
            os.close(fd)
        return self._size

    def _newlines_before(self, position: int) -> int:
        """The newlines of the file before ``position``."""
        count, offset = 0, 0
        fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while offset < position and (data := os.pread(fd, min(COUNT_BYTES, position - offset), offset)):
                count += data.count(b"\n")
                offset += len(data)
        finally:
            os.close(fd)
        return count

    def _answer(self, worker: int, size: int) -> bytes:
        stdout = self._workers[worker].stdout
        assert stdout is not None
        data = stdout.read(size)
        if len(data) != size:
            raise RuntimeError("a CSV decoding process ended unexpectedly")
        return data
