"""KernelOutput alone: a real pipe, lines logged within the per-line and per-second bounds."""

from __future__ import annotations

import asyncio
import os

import structlog

from kernels.kernel_output import KernelOutput


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def read_all(writes: list[bytes], clock: Clock | None = None, **bounds: int) -> list[dict]:
    """Write ``writes`` into a pipe read by a ``KernelOutput``, close the write end, return the events."""
    read_end, write_end = os.pipe()
    with structlog.testing.capture_logs() as logs:
        output = KernelOutput("k1", read_end, clock=clock or Clock(), **bounds)
        for data in writes:
            os.write(write_end, data)
            await asyncio.sleep(0.01)
            if clock is not None:
                clock.now += 1
        os.close(write_end)
        while not output.closed:
            await asyncio.sleep(0.01)
    return [{k: v for k, v in entry.items() if k != "log_level"} for entry in logs]


async def test_lines_are_logged_one_event_each_and_cut_at_the_bound():
    """Lines split across writes are joined; a long one is cut; bytes that are not UTF-8 stay visible."""
    events = await read_all([b"one\ntw", b"o\n" + b"x" * 40 + b"\n\xff\x1b[0m\nlast"], line_bytes=16)
    assert events == [
        {"event": "kernel_output", "kernel_id": "k1", "line": "one"},
        {"event": "kernel_output", "kernel_id": "k1", "line": "two"},
        {"event": "kernel_output", "kernel_id": "k1", "line": "x" * 16, "truncated": True},
        {"event": "kernel_output", "kernel_id": "k1", "line": "\\xff\x1b[0m"},
        {"event": "kernel_output", "kernel_id": "k1", "line": "last"},
    ]


async def test_lines_beyond_the_rate_are_counted_not_logged():
    """5 lines a second: a burst of 100 logs 5 and counts 95; a second later the budget is back."""
    events = await read_all([b"a\n" * 100, b"b\n" * 3], clock=Clock(), lines_per_second=5)
    logged = [entry["line"] for entry in events if entry["event"] == "kernel_output"]
    dropped = [entry["lines"] for entry in events if entry["event"] == "kernel_output_dropped"]
    assert (logged, sum(dropped)) == (["a"] * 5 + ["b"] * 3, 95)


async def test_lines_are_cut_by_their_escaped_size():
    """A control character is logged as six bytes (``\\u0001``): a line of them is cut so that what is logged
    fits ``line_bytes``; Japanese text counts its UTF-8 bytes, an escape sequence is never split."""
    events = await read_all([b"\x01" * 100 + b"\n", "売上".encode() * 10 + b"\n", b'"' * 6 + b"\x01\n"],
                            line_bytes=16)
    assert [(entry["line"], entry.get("truncated", False)) for entry in events] == [
        ("\x01" * 2, True), ("売上" * 2 + "売", True), ('"' * 6, True)]


async def test_bytes_beyond_the_rate_are_counted_not_logged():
    """A byte budget of 2,200 a second: lines of 900 escaped bytes (and 200 for the event) log two, then none
    until a second later; every line is logged or counted."""
    line = b"\x01" * 150 + b"\n"  # 900 bytes once escaped
    events = await read_all([line * 10, line * 10], clock=Clock(), bytes_per_second=2_200)
    logged = [entry["line"] for entry in events if entry["event"] == "kernel_output"]
    dropped = sum(entry["lines"] for entry in events if entry["event"] == "kernel_output_dropped")
    assert (len(logged), dropped) == (2 + 2, 16)
