"""Decode a CP932 or EUC-JP file to UTF-8 on several cores: chunks cut after a newline, decoded by processes.

Python's codecs hold the GIL, and decoding is most of what a CSV import of such a file costs. These
encodings never put the byte 0x0A inside a multi-byte character, so a chunk that ends just after a
newline ends between characters: chunks decode alone to what the whole file decodes to, in order.
``DecodeWorkers`` are the processes (``csv_decode_worker.py``, standard library only, a few MB each);
``ParallelDecoder`` keeps one chunk at each and hands out their UTF-8 in file order. A byte the
encoding cannot decode ends the read with ``UndecodableLine``, naming the exact line: the newlines
before its chunk plus those before it in the chunk.
"""

from __future__ import annotations

import codecs
import collections
import re
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from .csv_decode_worker import ANSWER, DECODED, REQUEST

PARALLEL_ENCODINGS = frozenset(codecs.lookup(name).name for name in (
    "cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004", "euc_jisx0213"))
"""Encodings whose multi-byte characters never hold the byte 0x0A (and whose decoders keep no state
across lines)."""
CHUNK_BYTES = 2 << 20
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
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-I", "-S", str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, env={}, close_fds=True))
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
    """The UTF-8 of ``file`` (read from where it is), a chunk per ``read``, decoded by ``workers``.

    One chunk is out at each worker at a time: each answer is read before the worker gets its next
    chunk, so neither side ever waits on a full pipe of the other's. ``close`` collects the answers
    still out, leaving the workers ready for another file.
    """

    def __init__(self, file: BinaryIO, encoding: str, workers: DecodeWorkers, chunk_bytes: int | None = None):
        if codecs.lookup(encoding).name not in PARALLEL_ENCODINGS:
            raise ValueError(f"{encoding} may hold 0x0A inside a character: decode it in one piece")
        self._file = file
        self._encoding = encoding.encode("ascii")
        self._workers = workers.processes
        self._chunk_bytes = chunk_bytes or CHUNK_BYTES
        self._carry = b""
        self._lines_before = 0  # newlines in the chunks handed to workers so far
        self._out: collections.deque[tuple[int, int, bytes]] = collections.deque()  # (worker, lines before, chunk)
        self._next_worker = 0
        for _ in self._workers:
            self._send_next()

    def read(self) -> bytes:
        """The UTF-8 of the next chunk; ``b""`` at the end of the file."""
        if not self._out:
            return b""
        worker, lines_before, chunk = self._out.popleft()
        status, value = ANSWER.unpack(self._answer(worker, ANSWER.size))
        if status != DECODED:
            raise UndecodableLine(lines_before + chunk.count(b"\n", 0, value) + 1)
        text = self._answer(worker, value)
        self._send_next()
        return text

    def close(self) -> None:
        """Collect the answers still out (the workers then wait for new chunks)."""
        while self._out:
            worker, _, _ = self._out.popleft()
            status, value = ANSWER.unpack(self._answer(worker, ANSWER.size))
            if status == DECODED:
                self._answer(worker, value)

    def _send_next(self) -> None:
        chunk = self._next_chunk()
        if not chunk:
            return
        worker = self._next_worker
        self._next_worker = (worker + 1) % len(self._workers)
        stdin = self._workers[worker].stdin
        assert stdin is not None
        stdin.write(REQUEST.pack(len(self._encoding), len(chunk)) + self._encoding)
        stdin.write(chunk)
        stdin.flush()
        self._out.append((worker, self._lines_before, chunk))
        self._lines_before += chunk.count(b"\n")

    def _next_chunk(self) -> bytes:
        """About ``chunk_bytes`` of the file, ending just after a newline (or at the end of the file)."""
        data = self._carry + self._file.read(self._chunk_bytes)
        cut = _boundary(data)
        while not cut and len(data) > len(self._carry):  # no boundary yet: read on
            self._carry = data
            data += self._file.read(self._chunk_bytes)
            cut = _boundary(data)
        if not cut or len(data) == len(self._carry):  # the end of the file
            self._carry = b""
            return data
        self._carry = data[cut:]
        return data[:cut]

    def _answer(self, worker: int, size: int) -> bytes:
        stdout = self._workers[worker].stdout
        assert stdout is not None
        data = stdout.read(size)
        if len(data) != size:
            raise RuntimeError("a CSV decoding process ended unexpectedly")
        return data
