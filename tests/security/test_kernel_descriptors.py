"""A kernel holds no descriptor of the server or the agent, and its own stdio reaches their log bounded.

The attack: card code walks every descriptor in ``/proc/self/fd`` and tries ``write``, ``pwrite``
and ``ftruncate`` on each file and pipe, to forge lines in (or erase) the log the server and its
agent write to. Here the launcher runs in the test process, which stands for both: its fds 1 and 2
point at a "server log" while the template starts, as ``bi serve > server.log`` would. From
outside, as root, no descriptor of the kernel may be one of the agent's or the template's (same
device and inode), but the kernel's own output pipe, which the agent reads and logs as
``kernel_output`` events: escaped, cut at ``KERNEL_LOG_LINE_BYTES`` once escaped, at most
``KERNEL_LOG_LINES_PER_SECOND`` and ``KERNEL_LOG_BYTES_PER_SECOND``, the rest counted as dropped.
A line of control characters, each escaped into six bytes (``\\u0001``), counts as what it becomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from kernels.launcher import LaunchedKernel
from kernels.limits import KERNEL_LOG_BYTES_PER_SECOND, KERNEL_LOG_LINE_BYTES, KERNEL_LOG_LINES_PER_SECOND
from tests.kernels import conftest as kernel_fixtures
from tests.kernels.test_attacks import attack

launcher, started_launcher, sandbox_defaults = (kernel_fixtures.launcher, kernel_fixtures.started_launcher,
                                               kernel_fixtures.sandbox_defaults)

SERVER_LINE = b'{"event": "user_login", "user": "admin@bi.local"}\n'
FORGED = '{"event": "user_deleted", "user": "admin@bi.local", "forged": true}'

WALK = '''
stat = sys.modules["stat"]
forged = (ARGS["forged"] + "\\n").encode()
resource = builtins.__import__("resource")
for fd in range(resource.getrlimit(resource.RLIMIT_NOFILE)[0]):  # every number, with or without a /proc
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        continue  # not open
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        continue
    kind = "file" if stat.S_ISREG(mode) else "pipe"
    attempt(f"{fd} {kind} write", lambda: os.write(fd, forged) and None)
    attempt(f"{fd} {kind} pwrite", lambda: os.pwrite(fd, forged, 0) and None)
    attempt(f"{fd} {kind} ftruncate", lambda: os.ftruncate(fd, 0))
'''


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[Path]:
    """The test process's fds 1 and 2 on a log file, with one line in it, while the test runs."""
    log = tmp_path / "server.log"
    log.write_bytes(SERVER_LINE)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield log
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for each in (fd, *saved):
            os.close(each)


def kernel_pid(kernel: LaunchedKernel) -> int:
    """The kernel process: the only child of its reaper (``kernel.pid``), or that pid itself without a PID
    namespace (no reaper: the executor container)."""
    if not kernel.sandbox.applies("namespaces"):
        return kernel.pid
    children = Path(f"/proc/{kernel.pid}/task/{kernel.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def descriptors(pid: int) -> dict[tuple[int, int], str]:
    """(device, inode) -> target of every descriptor of ``pid`` that names a file, pipe or socket.

    Character devices (``/dev/null``) and anonymous inodes (eventfd, epoll: one inode for all) are
    left out: they carry nothing between processes.
    """
    found = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{name}"
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(path)
            status = os.stat(path)
            if not (target.startswith("anon_inode:") or stat.S_ISCHR(status.st_mode)):
                found[(status.st_dev, status.st_ino)] = target
    return found


async def test_card_reaches_no_descriptor_of_the_server_or_agent(server_log, launcher):
    """Every file and pipe a card can write to is its own: the server's log stays as it was."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, WALK, forged=FORGED)
    assert server_log.read_bytes() == SERVER_LINE, seen
    written = sorted(name for name, outcome in seen.items() if outcome == "ok" and "write" in name)
    assert written, "the card wrote nowhere: the walk did not run"


@pytest.mark.skipif(kernel_fixtures.IN_EXECUTOR_CONTAINER,
                    reason="the executor container's kernels are of the test's uid and not dumpable: their /proc/<pid>/fd "
                           "is closed to it (tests/kernels/test_agent_user_namespaces.py proves it); the card's walk "
                           "above covers what they reach")
async def test_kernel_shares_no_descriptor_with_agent_or_template(server_log, launcher):
    """From outside: the kernel's descriptors (by device and inode) are none of the agent's or the
    template's, except the output pipe the agent reads."""
    kernel = await launcher.launch()
    await attack(launcher, kernel, "")
    own_pipe = os.fstat(launcher.outputs[kernel.kernel_id].fd)
    theirs = {**descriptors(os.getpid()), **descriptors(launcher.template.process.pid)}
    shared = {key: target for key, target in descriptors(kernel_pid(kernel)).items()
              if key in theirs and key != (own_pipe.st_dev, own_pipe.st_ino)}
    assert shared == {}
    assert (own_pipe.st_dev, own_pipe.st_ino) in descriptors(kernel_pid(kernel))


async def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def output_events(logs: list[dict[str, Any]], kernel: LaunchedKernel, event: str = "kernel_output") -> list:
    return [entry for entry in logs if entry["event"] == event and entry.get("kernel_id") == kernel.kernel_id]


async def test_kernel_stdio_is_logged_escaped_and_cut(launcher):
    """A line written to fd 2 at the C level (as a library or a faulthandler dump would) is one
    ``kernel_output`` event whose JSON is one line; a 100 KB line is cut at the bound."""
    kernel = await launcher.launch()
    with structlog.testing.capture_logs() as logs:
        await attack(launcher, kernel, '''
os.write(2, ("\\x1b[31m" + ARGS["forged"] + "\\r\\n").encode())
os.write(2, b"x" * 100_000 + b"\\n")
''', forged=FORGED)
        await wait_for(lambda: len(output_events(logs, kernel)) >= 2)
    escaped, long = output_events(logs, kernel)[:2]
    assert escaped["line"] == "\x1b[31m" + FORGED + "\r"
    rendered = structlog.processors.JSONRenderer(ensure_ascii=False)(None, "info", dict(escaped))
    assert "\n" not in rendered and "\x1b" not in rendered and json.loads(rendered)["line"] == escaped["line"]
    assert (long["line"], long["truncated"]) == ("x" * KERNEL_LOG_LINE_BYTES, True)


async def test_kernel_stdio_flood_is_rate_limited(launcher):
    """20,000 lines at once: at most the per-second budget is logged, every other line is counted."""
    kernel = await launcher.launch()
    lines = 20_000
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        await attack(launcher, kernel, '''
os.write(sys.stderr._original_stdstream_copy, b"flood\\n" * ARGS["lines"])
''', lines=lines)

        def accounted() -> int:
            logged = sum(1 for entry in output_events(logs, kernel) if entry["line"] == "flood")
            return logged + sum(entry["lines"] for entry in output_events(logs, kernel, "kernel_output_dropped"))

        await wait_for(lambda: accounted() == lines)
    logged = sum(1 for entry in output_events(logs, kernel) if entry["line"] == "flood")
    assert logged <= KERNEL_LOG_LINES_PER_SECOND * (1 + time.monotonic() - started)
    assert output_events(logs, kernel, "kernel_output_dropped")


def logged_bytes(entry: dict[str, Any]) -> int:
    """What an event's ``line`` takes in the log once rendered as JSON (as ``kernels.logs`` renders it)."""
    return len(json.dumps(entry["line"], ensure_ascii=False).encode()) - 2


async def test_escaped_kernel_stdio_is_bounded_in_logged_bytes(launcher):
    """Lines of 8 KB of ``\\x01`` (48 KB each once JSON-escaped) as fast as the pipe takes them: each logged
    line is at most ``KERNEL_LOG_LINE_BYTES`` after escaping, and the bytes logged stay within the per-second
    budget; the rest is counted."""
    kernel = await launcher.launch()
    lines = 200
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        await attack(launcher, kernel, '''
line = b"\\x01" * 8191 + b"\\n"
for _ in range(ARGS["lines"]):
    os.write(2, line)
''', lines=lines)

        def accounted() -> int:
            logged = sum(1 for entry in output_events(logs, kernel) if entry["line"].startswith("\x01"))
            return logged + sum(entry["lines"] for entry in output_events(logs, kernel, "kernel_output_dropped"))

        await wait_for(lambda: accounted() == lines)
    elapsed = time.monotonic() - started
    flood = [entry for entry in output_events(logs, kernel) if entry["line"].startswith("\x01")]
    assert flood and max(logged_bytes(entry) for entry in flood) <= KERNEL_LOG_LINE_BYTES
    assert all(entry["truncated"] for entry in flood)
    assert sum(logged_bytes(entry) for entry in flood) <= KERNEL_LOG_BYTES_PER_SECOND * (1 + elapsed)
    assert output_events(logs, kernel, "kernel_output_dropped")
