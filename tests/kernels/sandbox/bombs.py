"""Bounded attacks shared by the layer tests: a fork bomb and memory hogs that stop by themselves."""

from __future__ import annotations

import errno
import os

MB = 1024 * 1024


def fork_bomb(limit: int = 200) -> dict[str, int]:
    """Fork up to ``limit`` children that all stay alive until the end; count successes and errnos."""
    hold_r, hold_w = os.pipe()
    started, failures = [], {}
    for _ in range(limit):
        try:
            pid = os.fork()
        except OSError as e:
            name = errno.errorcode[e.errno or 0]
            failures[name] = failures.get(name, 0) + 1
            continue
        if pid == 0:
            os.close(hold_w)
            os.read(hold_r, 1)  # until the bomb is over
            os._exit(0)
        started.append(pid)
    os.close(hold_w)
    for pid in started:
        os.waitpid(pid, 0)
    os.close(hold_r)
    return {"started": len(started), **failures}


def fill(write, total_mb: int, chunk_mb: int = 16) -> int:  # noqa: ANN001
    """Call ``write(chunk)`` until ``total_mb`` are written; return the MiB written."""
    chunk = b"x" * (chunk_mb * MB)
    written = 0
    while written < total_mb:
        write(chunk)
        written += chunk_mb
    return written


def memfd_hog(total_mb: int) -> int:
    fd = os.memfd_create("hog")
    try:
        return fill(lambda chunk: os.write(fd, chunk), total_mb)
    finally:
        os.close(fd)


def heap_hog(total_mb: int) -> int:
    kept: list[bytearray] = []
    return fill(lambda chunk: kept.append(bytearray(chunk)), total_mb)  # a copy: new pages each time
