"""A seccomp filter (libseccomp through the ``pyseccomp`` package): allow by default, deny the
system calls that reach beyond one process, its threads and its files.

- Denied with EPERM: tracing and cross-process memory, mounts and namespaces, kernel modules,
  kexec, BPF, keyrings, perf, userfaultfd, io_uring, memfd (uncharged by ``RLIMIT_AS``),
  swap, reboot, clock setting, ``execve``, and every way to create a process: ``fork``,
  ``vfork``, and ``clone`` without ``CLONE_THREAD`` or with a namespace flag (threads stay
  possible).
- ``clone3`` fails with ENOSYS (its flags live in memory, out of a filter's reach), so glibc
  falls back to ``clone``.
- ``socket`` and ``socketpair`` work for ``AF_UNIX`` only.
- Signals: ``kill``, ``tgkill`` and ``rt_(tg)sigqueueinfo`` only to the calling process;
  ``tkill``, ``pidfd_open``, ``pidfd_send_signal`` and ``pidfd_getfd`` not at all.

The filter is synchronised to all threads, and libseccomp sets ``PR_SET_NO_NEW_PRIVS``.
System calls of another ABI (32-bit x86 on x86_64) kill the thread.

``SocketSeal`` is a second filter, loaded once the kernel has bound its own ipc sockets (threads
run by then, so it too is synchronised to all of them): ``bind``, ``mknod`` and ``link`` fail
with EPERM, so no socket file (nor a link to one) is made after start, anywhere.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from kernels.sandbox.errors import SandboxError

# Loaded at import, before any sandboxing: finding libseccomp runs ldconfig and writes a temp file.
IMPORT_ERROR: Exception | None
try:
    import pyseccomp as seccomp
except (ImportError, RuntimeError, OSError) as e:  # reported by importable() and apply()
    seccomp, IMPORT_ERROR = None, e
else:
    IMPORT_ERROR = None

CLONE_THREAD = 0x00010000
NAMESPACE_FLAGS = (0x00000080, 0x00020000, 0x02000000, 0x04000000, 0x08000000,  # time, ns, cgroup, uts, ipc
                   0x10000000, 0x20000000, 0x40000000)                            # user, pid, net

DENIED = (
    # other processes' memory and execution
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp",
    # mounts, roots and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "name_to_handle_at", "open_by_handle_at",
    # the kernel itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "swapon", "swapoff", "reboot", "acct", "syslog",
    "quotactl", "settimeofday", "clock_settime", "clock_adjtime", "iopl", "ioperm",
    # memory outside RLIMIT_AS, and new programs or processes
    "memfd_create", "memfd_secret", "execve", "execveat", "fork", "vfork",
    # signals to anything but this process
    "tkill", "pidfd_open", "pidfd_send_signal", "pidfd_getfd",
)
SIGNALLERS = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")  # first argument: a pid
SOCKET_MAKERS = ("bind", "mknod", "mknodat", "link", "linkat")


def importable() -> bool:
    """Whether ``pyseccomp`` and libseccomp loaded on this machine."""
    return seccomp is not None


@dataclass(frozen=True)
class SeccompFilter:
    """The filter; ``apply()`` loads it into the calling process (last of all layers)."""

    denied: Sequence[str] = DENIED

    def apply(self) -> None:
        """Load the filter into the calling process and all its threads."""
        if seccomp is None:
            raise SandboxError("seccomp", f"pyseccomp/libseccomp unavailable: {IMPORT_ERROR}")
        try:
            self._build().load()
        except OSError as e:
            raise SandboxError("seccomp", f"cannot load the filter: {e}") from e

    def _build(self) -> seccomp.SyscallFilter:
        f = self._denying()
        eperm = seccomp.ERRNO(errno.EPERM)
        self._rule(f, seccomp.ERRNO(errno.ENOSYS), "clone3")
        self._rule(f, eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
        for flag in NAMESPACE_FLAGS:
            self._rule(f, eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        for name in ("socket", "socketpair"):
            self._rule(f, eperm, name, seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
        pid = os.getpid()
        for name in SIGNALLERS:
            self._rule(f, eperm, name, seccomp.Arg(0, seccomp.NE, pid))
        return f

    def _denying(self) -> seccomp.SyscallFilter:
        """A filter for all threads that allows everything but ``denied`` (EPERM)."""
        f = seccomp.SyscallFilter(seccomp.ALLOW)
        f.set_attr(seccomp.Attr.CTL_TSYNC, 1)
        for name in self.denied:
            self._rule(f, seccomp.ERRNO(errno.EPERM), name)
        return f

    @staticmethod
    def _rule(f: seccomp.SyscallFilter, action: int, name: str, *args: seccomp.Arg) -> None:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        if number == -1:  # __NR_SCMP_ERROR: libseccomp does not know the name
            raise SandboxError("seccomp", f"libseccomp does not know the system call {name!r}")
        f.add_rule(action, number, *args)


@dataclass(frozen=True)
class SocketSeal(SeccompFilter):
    """No socket files after start: loaded once the kernel's own sockets are bound."""

    denied: Sequence[str] = SOCKET_MAKERS

    def _build(self) -> seccomp.SyscallFilter:
        return self._denying()
