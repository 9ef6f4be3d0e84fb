"""Run an attack in a child process and get its result back, bounded in time.

Kernels are forked from a small, single-threaded template, not from a test runner that has
grown threads, malloc arenas and a gigabyte of address space. So ``run``/``start`` fork their
children from a clean multiprocessing fork server that has imported the data stack, like the
template; the function must then be a module-level one (it is pickled by reference). Inside such
a child, ``run_here`` forks the child itself (e.g. to become pid 1 of a namespace it unshared).
"""

from __future__ import annotations

import ctypes
import errno
import multiprocessing
import os
import pickle
import select
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import pytest

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
TEMPLATE = multiprocessing.get_context("forkserver")
TEMPLATE.set_forkserver_preload(["numpy", "pandas", "zmq", "ipykernel.kernelapp", "jupyter_client",
                                 "kernels.sandbox", "tests.kernels.sandbox.helpers"])
_report_fd: int | None = None


@dataclass
class Outcome:
    """What the child returned (``value``) or raised (``error``), and how it ended."""

    value: Any
    error: str | None
    exitcode: int

    def ok(self) -> Any:
        """The value, failing the test with the child's traceback or exit code if there is none."""
        assert self.error is None, self.error
        assert self.exitcode == 0, f"child ended with {self.exitcode} before reporting"
        return self.value


def report_fd() -> int:
    """In a child: the descriptor its result goes to (to keep it open through the sandbox)."""
    assert _report_fd is not None, "not in a child started by start() or run_here()"
    return _report_fd


def _outcome(fn: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
    try:
        return pickle.dumps(("value", fn(*args)))
    except BaseException:  # noqa: BLE001 - everything goes back to the test
        return pickle.dumps(("error", traceback.format_exc()))


def _serve(sender: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    global _report_fd
    _report_fd = sender.fileno()
    sender.send_bytes(_outcome(fn, args))


class Child:
    """A child of the fork server running ``fn(*args)``; ``result()`` collects it or kills it."""

    def __init__(self, fn: Callable[..., Any], *args: Any):
        self._receiver, sender = TEMPLATE.Pipe(duplex=False)
        self._process = TEMPLATE.Process(target=_serve, args=(sender, fn, args), daemon=True)
        self._process.start()
        sender.close()
        self.pid = self._process.pid

    def result(self, timeout: float = 20.0) -> Outcome:
        try:
            if not self._receiver.poll(timeout):
                self._process.kill()
                pytest.fail(f"child {self.pid} gave no result within {timeout} s")
            try:
                data = self._receiver.recv_bytes()
            except EOFError:  # it died without reporting
                data = b""
        finally:
            self._receiver.close()
            self._process.join(5)
            if self._process.exitcode is None:
                self._process.kill()
                self._process.join()
        return _decode(data, self._process.exitcode)


def start(fn: Callable[..., Any], *args: Any) -> Child:
    """Start ``fn(*args)`` in a child of the clean fork server."""
    return Child(fn, *args)


def run(fn: Callable[..., Any], *args: Any, timeout: float = 20.0) -> Outcome:
    """Run ``fn(*args)`` in a child of the clean fork server and return its ``Outcome``."""
    return Child(fn, *args).result(timeout)


def run_here(fn: Callable[..., Any], *args: Any, timeout: float = 20.0) -> Outcome:
    """Run ``fn(*args)`` in a plain fork of the calling process (which must be a test child)."""
    global _report_fd
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _report_fd = write_end
        try:
            payload = memoryview(_outcome(fn, args))
            while payload:
                payload = payload[os.write(write_end, payload):]
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    data, finished = b"", False
    while not finished and (left := deadline - time.monotonic()) > 0:
        if select.select([read_end], [], [], left)[0]:
            chunk = os.read(read_end, 1 << 16)
            data += chunk
            finished = not chunk
    os.close(read_end)
    if not finished:
        os.kill(pid, signal.SIGKILL)
    return _decode(data if finished else b"", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))


def _decode(data: bytes, exitcode: int) -> Outcome:
    kind, value = pickle.loads(data) if data else ("value", None)
    return Outcome(value if kind == "value" else None, value if kind == "error" else None, exitcode)


def attempt(action: Callable[[], Any]) -> str:
    """``"ok"`` if ``action()`` succeeds, else the exception's name and errno: ``"PermissionError:EPERM"``."""
    try:
        action()
    except OSError as e:
        return f"{type(e).__name__}:{errno.errorcode.get(e.errno or 0, e.errno)}"
    except Exception as e:  # noqa: BLE001 - the name is the result
        return type(e).__name__
    return "ok"


def errno_of(result: int) -> str:
    """``"ok"``, or the errno name after a libc call that returned -1."""
    return "ok" if result != -1 else errno.errorcode[ctypes.get_errno()]


def require(condition: bool, reason: str) -> None:
    """Skip without ``condition``; on CI (``CI=true``, root) a missing feature is a failure instead."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run this test, but: {reason}")
    pytest.skip(reason)
