"""libc and raw system calls through ctypes, for what the ``os`` module does not offer."""

from __future__ import annotations

import ctypes
import platform

from kernels.sandbox.errors import SandboxError, os_error

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
LIBC.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
LIBC.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
LIBC.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)

# Numbers of the system calls glibc 2.36 has no wrapper for, per machine.
SYSCALLS = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "landlock_create_ruleset": 444, "landlock_add_rule": 445,
               "landlock_restrict_self": 446},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "landlock_create_ruleset": 444, "landlock_add_rule": 445,
                "landlock_restrict_self": 446},
}


def check(layer: str, what: str, result: int) -> int:
    """Return ``result``, or raise ``SandboxError`` with the errno if it is -1."""
    if result == -1:
        raise os_error(layer, what, ctypes.get_errno())
    return result


def number(name: str) -> int | None:
    """The number of system call ``name`` on this machine, or None if not known here."""
    return SYSCALLS.get(platform.machine(), {}).get(name)


def syscall(layer: str, name: str, *args: object) -> int:
    """Call a system call by name on this machine, raising ``SandboxError`` on failure."""
    nr = number(name)
    if nr is None:
        raise SandboxError(layer, f"no number for system call {name} on machine {platform.machine()!r}")
    return check(layer, name, LIBC.syscall(ctypes.c_long(nr), *args))


def prctl(layer: str, option: int, arg: int = 0) -> int:
    """``prctl(option, arg, 0, 0, 0)``."""
    return check(layer, f"prctl({option})", LIBC.prctl(option, arg, 0, 0, 0))
PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent exits
