"""A private mount view: a read-only root of a few bound host paths and one writable tmpfs.

Must run as root (or with the capabilities of a user namespace of its own), as a process of a new
PID namespace (so that the fresh ``/proc`` shows that namespace only). The steps:

1. enter a new mount namespace of its own and make every mount private, so nothing done here
   reaches the host, whatever namespace the caller was in;
2. mount a small tmpfs on ``/tmp`` (hidden only in this namespace) and ``pivot_root`` into it,
   the host root going to ``/.host`` for a moment;
3. bind the host paths read-only at the *same* paths (``/usr``, ``/lib``, the Python prefix and
   the virtualenv, ...), so modules imported before keep their paths. The intermediate
   directories are fresh 0755 directories of the tmpfs: ``/root`` (0700 on the host) stays
   closed while the interpreter under it becomes readable;
4. a few ``/etc`` files, ``/dev/{null,zero,random,urandom}``, a fresh ``/proc``
   (``hidepid=invisible,subset=pid``; with ``proc_optional``, where the kernel refuses one, as in a
   user namespace beneath Docker's masked ``/proc``, an empty directory), a size- and inode-capped tmpfs workdir and the kernel's
   ipc directory (with the mounts beneath it: the agent's ipc tmpfs), both owned by the kernel's uid; the
   ipc directory read-only but for its ``ipc_writable`` subdirectories (its sockets and tables: where the
   agent's run dir lies beneath the workdir, as in the executor container, Landlock's workdir rule covers
   the ipc directory too); no ``/dev/shm``, ``/sys`` or other ``/tmp`` content;
5. detach the host root and remount the new root read-only.

``mount_tmpfs``, ``unmount`` and ``mounts_beneath`` serve the agent (as root, in its own mount
namespace): it puts each kernel's ipc sockets on a tmpfs of a few inodes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from kernels.limits import WORKDIR_INODES
from kernels.sandbox._libc import LIBC, check, syscall
from kernels.sandbox.errors import SandboxError
from kernels.sandbox.namespaces import CLONE_NEWNS, unshare

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

STAGE = "/tmp"        # where the new root's tmpfs is mounted before pivot_root
HOST_ROOT = "/.host"  # where the host root is while the view is built
DEVICES = ("null", "zero", "random", "urandom")


def existing(paths: Sequence[str]) -> tuple[str, ...]:
    """The paths of ``paths`` that exist on this host."""
    return tuple(p for p in paths if os.path.exists(p))


def _encode(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    check("mounts", f"mount {source or fstype or ''} on {target} ({flags:#x})",
          LIBC.mount(_encode(source), target.encode(), _encode(fstype), flags, _encode(data)))


@dataclass
class MountView:
    """The mount view of one kernel. ``readable`` host paths are bound read-only at the same paths."""

    readable: Sequence[str] = ()
    owner: tuple[int, int] = (0, 0)
    workdir: str = "/tmp/workdir"
    workdir_size_mb: int = 256
    workdir_inodes: int = WORKDIR_INODES
    ipc_dir: str | None = None
    ipc_writable: Sequence[str] = ()  # directories beneath ipc_dir the kernel writes (its sockets, its tables)
    proc_optional: bool = False  # where a fresh procfs is refused, keep /proc an empty directory
    system: Sequence[str] = field(default_factory=lambda: existing(("/usr", "/lib", "/lib64", "/bin")))
    etc: Sequence[str] = field(default_factory=lambda: existing(("/etc/ld.so.cache", "/etc/localtime")))

    def apply(self) -> None:
        """Build the view and enter it; raises ``SandboxError`` naming the step that failed."""
        try:
            self._build()
        except OSError as e:
            raise SandboxError("mounts", str(e)) from e

    def _build(self) -> None:
        read_only = self._read_only_paths()
        ipc = None if self.ipc_dir is None else (os.path.realpath(self.ipc_dir), self.ipc_dir)
        ipc_writable = [(os.path.realpath(path), path) for path in self.ipc_writable]
        unshare(CLONE_NEWNS)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        os.chdir(STAGE)
        os.mkdir(HOST_ROOT.lstrip("/"))
        syscall("mounts", "pivot_root", b".", HOST_ROOT.lstrip("/").encode())
        os.chdir("/")
        for target, source in read_only:
            _bind(HOST_ROOT + source, target, MS_RDONLY | MS_NOSUID | MS_NODEV)
        for name in DEVICES:
            _bind(f"{HOST_ROOT}/dev/{name}", f"/dev/{name}", MS_RDONLY | MS_NOSUID | MS_NOEXEC)
        os.mkdir("/proc")
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible,subset=pid")
        except SandboxError:
            if not self.proc_optional:
                raise
        os.makedirs(self.workdir, exist_ok=True)
        uid, gid = self.owner
        mount_tmpfs(self.workdir, self.workdir_size_mb << 20, self.workdir_inodes, self.owner)
        if ipc is not None:
            source, target = ipc
            _bind(HOST_ROOT + source, target, MS_NOSUID | MS_NODEV | MS_NOEXEC, recursive=True)
            os.chown(target, uid, gid)
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
            for inner_source, inner_target in ipc_writable:
                _bind(HOST_ROOT + inner_source, inner_target, MS_NOSUID | MS_NODEV | MS_NOEXEC, recursive=True)
        check("mounts", f"umount {HOST_ROOT}", LIBC.umount2(HOST_ROOT.encode(), MNT_DETACH))
        os.rmdir(HOST_ROOT)
        _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.chdir(self.workdir)

    def _read_only_paths(self) -> list[tuple[str, str]]:
        """(target, host source) pairs, outermost first, skipping paths an earlier bind shows."""
        pairs: list[tuple[str, str]] = []
        for path in sorted({os.path.normpath(p) for p in (*self.system, *self.etc, *self.readable)}):
            if not any(path.startswith(done.rstrip("/") + "/") for done, _ in pairs):
                pairs.append((path, os.path.realpath(path)))
        return pairs


def mount_tmpfs(target: str, size_bytes: int, inodes: int, owner: tuple[int, int]) -> None:
    """Mount a tmpfs of ``size_bytes`` and ``inodes`` on directory ``target``: ``owner``'s, 0700,
    nosuid, nodev, noexec."""
    uid, gid = owner
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
           f"size={size_bytes},nr_inodes={inodes},mode=0700,uid={uid},gid={gid}")


def unmount(target: str) -> None:
    """Detach the mount on ``target`` (lazily, should something still use it)."""
    check("mounts", f"umount {target}", LIBC.umount2(target.encode(), MNT_DETACH))


def mounts_beneath(directory: str) -> list[str]:
    """The mount points strictly beneath ``directory`` in this mount namespace, deepest first."""
    prefix = os.path.realpath(directory).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as table:
        # the mount point is field 5, with space, tab, newline and backslash escaped in octal
        points = [line.split()[4].encode().decode("unicode_escape") for line in table]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def unmount_beneath(directory: str) -> None:
    """Detach every mount beneath ``directory`` (deepest first), so that it can be removed: the ipc
    tmpfs of kernels whose agent is gone."""
    for mount in mounts_beneath(directory):
        unmount(mount)


def _bind(source: str, target: str, flags: int, recursive: bool = False) -> None:
    """Bind ``source`` (a directory or a file; with the mounts beneath it if ``recursive``) at
    ``target``, then apply ``flags`` to that mount."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    _mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    _mount(None, target, None, MS_REMOUNT | MS_BIND | flags)
