"""The layers a sandboxed process got, as seen from inside it: ``seen()``, and ``probe_kernel`` that builds
a sandbox exactly as a kernel's (``sandbox.enter``) in a throwaway child and returns what it saw.

An agent that is not root builds its kernels' namespaces inside a user namespace
(``SandboxConfig.user_namespace``); what a host or container allows differs (Docker's default seccomp
profile refuses ``unshare``; beneath Docker's masked ``/proc`` a fresh procfs is refused), so the agent
asks a sandboxed child rather than trusting the configuration, and ``/health`` reports the answer.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import socket
import struct
import tempfile
from typing import Any

from kernels.sandbox import namespaces
from kernels.sandbox._libc import LIBC, prctl
from kernels.sandbox.privileges import PR_GET_DUMPABLE, PR_GET_NO_NEW_PRIVS, capabilities

PR_GET_SECCOMP = 21
SECCOMP_MODE_FILTER = 2
SIOCGIFFLAGS, SIOCGIFCONF, IFF_UP = 0x8913, 0x8912, 0x1
# What a kernel of the full user-namespace mode shows; ``proc`` may be "fresh" or "none".
EXPECTED = {"pid": 1, "capabilities": 0, "dumpable": 0, "nnp": 1, "seccomp": SECCOMP_MODE_FILTER,
            "unshare": "EPERM", "root": "EROFS", "loopback_up": False, "addressed_interfaces": 0}


def seen() -> dict[str, Any]:
    """The layers of the calling process: its pid, capabilities, dumpable, nnp and seccomp flags, whether
    ``unshare`` and writes to ``/`` work, what ``/proc`` holds and the network interfaces (through a unix
    socket: seccomp allows no other)."""
    report: dict[str, Any] = {
        "pid": os.getpid(), "uid": os.getuid(), "capabilities": capabilities(),
        "dumpable": prctl("uid", PR_GET_DUMPABLE), "nnp": prctl("nnp", PR_GET_NO_NEW_PRIVS),
        "seccomp": prctl("seccomp", PR_GET_SECCOMP),
        "unshare": _errno(lambda: LIBC.unshare(namespaces.CLONE_NEWUSER)),
        "root": _errno(lambda: os.mkdir("/.probe")),
    }
    proc = os.listdir("/proc") if os.path.isdir("/proc") else []
    report["proc"] = "none" if not proc else "fresh" if sorted(p for p in proc if p.isdigit()) == ["1"] else "host"
    with socket.socket(socket.AF_UNIX) as sock:
        flags = struct.unpack_from("H", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16s24x", b"lo")), 16)[0]
        report["loopback_up"] = bool(flags & IFF_UP)
        buffer = ctypes.create_string_buffer(40 * 32)
        ifconf = struct.pack("iL", len(buffer), ctypes.addressof(buffer))
        report["addressed_interfaces"] = struct.unpack_from("i", fcntl.ioctl(sock, SIOCGIFCONF, ifconf))[0] // 40
    return report


def holds(report: dict[str, Any]) -> bool:
    """Whether ``seen()``'s report shows every layer of the user-namespace mode."""
    return report.get("error") is None and all(report.get(k) == v for k, v in EXPECTED.items()) \
        and report.get("proc") in ("fresh", "none")


def _errno(attempt: Any) -> str:
    try:
        result = attempt()
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
    if result == -1:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return "ok"


def probe_kernel(config: dict[str, Any]) -> dict[str, Any]:
    """Fork a child, sandbox it with ``config`` (a ``SandboxConfig`` as a dict; its workdir a fresh
    temporary directory) and return its ``seen()``, or ``{"error": ...}`` where ``enter`` failed."""
    from kernels.sandbox.sandbox import enter  # the sandbox imports nothing of this module

    read_end, write_end = os.pipe()
    with tempfile.TemporaryDirectory(prefix="bi-probe-") as workdir:
        child = os.fork()
        if child == 0:
            os.close(read_end)
            try:
                enter({**config, "workdir": workdir, "keep_fds": (write_end,)})
                report = seen()
            except BaseException as e:  # reported to the agent, never raised in the fork
                report = {"error": f"{type(e).__name__}: {e}"}
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.close(read_end)
        os.waitpid(child, 0)
    return json.loads(b"".join(chunks) or b'{"error": "the sandboxed child wrote nothing"}')
