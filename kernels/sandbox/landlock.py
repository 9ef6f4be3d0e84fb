"""Landlock through raw system calls: files, TCP and scopes, at the best ABI the kernel offers.

Each right is handled from the ABI that introduced it (``RIGHTS_SINCE``): a ruleset naming a right
the running kernel does not know is refused (EINVAL), so no kernel would start.

- ABI 1-3: file access (2 adds ``REFER``, 3 ``TRUNCATE``; 5 adds ``IOCTL_DEV``). Read and execute
  beneath ``readable``; everything but making unix sockets beneath ``writable`` (a directory) or
  read and write of it (a file such as ``/dev/null``); beneath ``sockets`` (the kernel's ipc
  directory, which its uid owns) only reading, binding unix sockets and removing files (ZeroMQ
  unlinks its socket files), so a kernel can neither fill the host's disk there nor swap the
  agent's dataset folder for a symlink, and makes socket files nowhere else; nothing elsewhere.
- ABI >= 4: no TCP ``bind`` or ``connect`` at all.
- ABI >= 6: no signals to processes outside the sandbox's domain, no abstract unix sockets
  outside it.

Enforced for the caller and its future threads and children, even for root. The caller must be
single-threaded and have ``PR_SET_NO_NEW_PRIVS`` set (or ``CAP_SYS_ADMIN``).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass

from kernels.sandbox._libc import LIBC, number, syscall
from kernels.sandbox.errors import SandboxError

CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_FILE, MAKE_SOCK = 1 << 5, 1 << 9
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
ALL_FS_V1 = (1 << 13) - 1  # EXECUTE ... MAKE_SYM
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
# (ABI, file-system rights, network rights, scopes): what each ABI added (ABI 7 added only audit flags).
RIGHTS_SINCE = ((1, ALL_FS_V1, 0, 0), (2, REFER, 0, 0), (3, TRUNCATE, 0, 0),
                (4, 0, NET_BIND_TCP | NET_CONNECT_TCP, 0), (5, IOCTL_DEV, 0, 0),
                (6, 0, 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL))


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi() -> int:
    """The Landlock ABI version of the running kernel, or 0 without Landlock."""
    nr = number("landlock_create_ruleset")
    if nr is None:
        return 0
    flags = ctypes.c_uint32(CREATE_RULESET_VERSION)
    return max(LIBC.syscall(ctypes.c_long(nr), None, ctypes.c_size_t(0), flags), 0)


def handled(version: int) -> tuple[int, int, int]:
    """(file-system rights, network rights, scopes): everything Landlock ABI ``version`` can restrict."""
    fs = net = scoped = 0
    for since, fs_added, net_added, scoped_added in RIGHTS_SINCE:
        if version >= since:
            fs, net, scoped = fs | fs_added, net | net_added, scoped | scoped_added
    return fs, net, scoped


@dataclass(frozen=True)
class Landlock:
    """A Landlock domain: read/execute beneath ``readable``, full access but sockets beneath ``writable``,
    unix sockets beneath ``sockets``."""

    readable: Sequence[str] = ("/",)
    writable: Sequence[str] = ()
    sockets: Sequence[str] = ()

    def apply(self, version: int | None = None) -> int:
        """Restrict the calling process at ABI ``version`` (default: the kernel's); returns the version used."""
        version = abi() if version is None else min(version, abi())
        if version == 0:
            raise SandboxError("landlock", "the kernel offers no Landlock (ABI 0)")
        fs, net, scoped = handled(version)
        attr = _RulesetAttr(handled_access_fs=fs, handled_access_net=net, scoped=scoped)
        size = 8 if version < 4 else 16 if version < 6 else 24
        ruleset = syscall("landlock", "landlock_create_ruleset", ctypes.byref(attr), ctypes.c_size_t(size),
                          ctypes.c_uint32(0))
        try:
            for path in self.readable:
                self._allow(ruleset, path, fs & (EXECUTE | READ_FILE | READ_DIR))
            for path in self.writable:
                self._allow(ruleset, path, fs & ~MAKE_SOCK)
            for path in self.sockets:
                self._allow(ruleset, path, fs & (READ_FILE | READ_DIR | MAKE_SOCK | REMOVE_FILE))
            syscall("landlock", "landlock_restrict_self", ctypes.c_int(ruleset), ctypes.c_uint32(0))
        finally:
            os.close(ruleset)
        return version

    @staticmethod
    def _allow(ruleset: int, path: str, rights: int) -> None:
        """Allow ``rights`` beneath directory ``path``, or the file rights among them on file ``path``."""
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError as e:
            raise SandboxError("landlock", f"cannot open {path} for a rule: {e}") from e
        try:
            rule = _PathBeneathAttr(allowed_access=rights if os.path.isdir(path) else rights & FILE_RIGHTS,
                                    parent_fd=fd)
            syscall("landlock", "landlock_add_rule", ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH),
                    ctypes.byref(rule), ctypes.c_uint32(0))
        finally:
            os.close(fd)
