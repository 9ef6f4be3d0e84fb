"""All layers together: ``SandboxConfig``, ``enter`` (in a freshly forked child) and ``probe``.

The order of ``enter`` (each step needs the privileges the later ones give up):

1. create the kernel's memory + pids cgroup;
2. unshare the network, mount, PID, IPC and UTS namespaces (with ``user_namespace``, for an agent that
   is not root: inside a new user namespace that maps only the agent's own uid), then fork: the child is pid 1 of
   the new PID namespace and goes on; the caller's process stays outside as its reaper (it
   relays SIGINT, turns SIGTERM/SIGHUP into SIGKILL, and exits as the child did), and the
   child dies with it (``PR_SET_PDEATHSIG``). The reaper moves the child and itself into the cgroup meanwhile
   (the first move waits for an RCU grace period, 8 to 14 ms, which the child spends on the steps up to 6, where it
   waits for the reaper's word); without a new PID namespace the caller joins the cgroup itself;
3. a new session, and every inherited file descriptor but 0, 1, 2 and ``keep_fds`` pointed at
   ``/dev/null``;
4. the mount view (read-only root, tmpfs workdir, the ipc directory, a fresh ``/proc``; in a user
   namespace where procfs is refused, none), or without it just a change into the workdir;
5. rlimits, then the environment allowlist;
6. the kernel's own uid/gid (in a user namespace: the agent's uid kept, every capability dropped),
   ``PR_SET_DUMPABLE`` 0 (kernels sharing a uid cannot open each other's ``/proc`` files), then
   ``PR_SET_NO_NEW_PRIVS``;
7. Landlock (files, TCP, signal and abstract-socket scopes), then seccomp, last.

``seal`` comes later, once the kernel has bound its own sockets: no socket files from then on.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from kernels.limits import WORKDIR_INODES
from kernels.sandbox import (
    cgroups,
    environment,
    landlock,
    namespaces,
    privileges,
    seccomp_filter,
)
from kernels.sandbox._libc import PR_SET_PDEATHSIG, prctl
from kernels.sandbox.cgroups import Cgroup
from kernels.sandbox.errors import SandboxError
from kernels.sandbox.landlock import Landlock
from kernels.sandbox.mounts import MountView
from kernels.sandbox.rlimits import Rlimits
from kernels.sandbox.seccomp_filter import SeccompFilter, SocketSeal

LAYERS = ("cgroup", "namespaces", "mounts", "rlimits", "environment", "uid", "nnp", "landlock", "seccomp")
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
PROBE_UID = 65534  # the overflow uid: only ever used by probe's throwaway children
CGROUP_JOINED = b"j"  # the reaper to the kernel: both are in the kernel's cgroup


def default_readable() -> tuple[str, ...]:
    """What a kernel imports from: the Python prefix, the virtualenv and the ``kernels`` package."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return tuple(dict.fromkeys((sys.base_prefix, sys.prefix, package)))


@dataclass
class SandboxConfig:
    """Every knob of one kernel's sandbox. ``dataclasses.asdict`` and ``from_dict`` make it JSON."""

    uid: int
    gid: int
    ipc_dir: str | None = None          # host directory of the kernel's ipc sockets, bound read-write
    socket_dir: str | None = None       # where beneath ipc_dir the kernel binds its sockets (default: ipc_dir)
    tables_dir: str | None = None       # beneath ipc_dir, where the kernel writes shown tables (writable)
    name: str | None = None             # the kernel's cgroup name (its id)
    cgroup_parent: str = "bi"           # where that cgroup goes, under the caller's own cgroup
    workdir: str = "/tmp/workdir"
    workdir_size_mb: int = 256
    workdir_inodes: int = WORKDIR_INODES
    readable: tuple[str, ...] = field(default_factory=default_readable)
    environment: dict[str, str] = field(default_factory=lambda: dict(environment.DEFAULT))
    rlimits: Rlimits = field(default_factory=Rlimits)
    memory_mb: int = 2048
    pids_max: int = 64
    namespaces: int = namespaces.DEFAULT_FLAGS
    hostname: str = "kernel"
    keep_fds: tuple[int, ...] = ()
    skip: tuple[str, ...] = ()          # layers not to apply (a weaker sandbox, by choice)
    user_namespace: bool = False        # an agent without root: namespaces inside a user namespace of its uid
    landlock_abi: int | None = None     # the highest Landlock ABI to use (None: the kernel's)

    def __post_init__(self) -> None:
        unknown = set(self.skip) - set(LAYERS)
        if unknown:
            raise ValueError(f"unknown sandbox layers {sorted(unknown)}; known: {LAYERS}")
        pid_namespace = self.applies("namespaces") and self.namespaces & namespaces.CLONE_NEWPID
        if self.applies("mounts") and not pid_namespace:
            raise ValueError("the mount view needs a new PID namespace (for its /proc)")
        if self.applies("cgroup") and not self.name:
            raise ValueError("the cgroup layer needs a name")
        if self.user_namespace and not self.applies("namespaces"):
            raise ValueError("a user namespace comes with the namespaces layer")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SandboxConfig:
        values = dict(data)
        if "rlimits" in values:
            values["rlimits"] = Rlimits(**values["rlimits"])
        for key in ("readable", "keep_fds", "skip"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def applies(self, layer: str) -> bool:
        return layer not in self.skip

    def cgroup(self) -> Cgroup:
        """The kernel's cgroup; its owner calls ``remove()`` once the kernel has exited."""
        return Cgroup(self.name or "", memory_mb=self.memory_mb, pids_max=self.pids_max, parent=self.cgroup_parent)


def enter(config: SandboxConfig | Mapping[str, Any]) -> None:
    """Sandbox the calling (single-threaded; root, or any uid with ``user_namespace``) process; returns in
    the sandboxed process only.

    With a new PID namespace, the calling process never returns: it becomes the reaper of the
    sandboxed child and exits with its status.
    """
    if not isinstance(config, SandboxConfig):
        config = SandboxConfig.from_dict(config)
    cgroup = config.cgroup() if config.applies("cgroup") else None
    if cgroup is not None:
        cgroup.create()
    parent_alive = None
    if config.applies("namespaces"):
        if config.user_namespace:
            namespaces.unshare_as_user(config.namespaces)
        else:
            namespaces.unshare(config.namespaces)
        if config.namespaces & namespaces.CLONE_NEWPID:
            parent_alive = _fork_into_pid_namespace(cgroup)
            os.setsid()
        if config.namespaces & namespaces.CLONE_NEWUTS:
            namespaces.set_hostname(config.hostname)
    if cgroup is not None and parent_alive is None:
        cgroup.add(os.getpid())
    _detach_fds(config.keep_fds + ((parent_alive,) if parent_alive is not None else ()))
    block = environment.initial_block() if config.applies("environment") else None  # the view may lack /proc
    if config.applies("mounts"):
        MountView(readable=config.readable, owner=(config.uid, config.gid), workdir=config.workdir,
                  workdir_size_mb=config.workdir_size_mb, workdir_inodes=config.workdir_inodes,
                  ipc_dir=config.ipc_dir, ipc_writable=[path for path in (config.socket_dir or config.ipc_dir, config.tables_dir) if path],
                  proc_optional=config.user_namespace).apply()
    else:
        os.chdir(config.workdir)  # a host directory of the kernel's own (the mount view's chdir, without it)
    if config.applies("rlimits"):
        config.rlimits.apply()
    if config.applies("environment"):
        environment.apply(config.environment, block)
    if config.applies("uid") and config.user_namespace:
        privileges.drop_capabilities()
    elif config.applies("uid"):
        privileges.drop(config.uid, config.gid)
    privileges.not_dumpable()
    if parent_alive is not None:
        _die_with_parent(parent_alive)
    if config.applies("nnp"):
        privileges.no_new_privs()
    if config.applies("landlock"):
        writable = (config.workdir, "/dev/null") + ((config.tables_dir,) if config.tables_dir else ())
        Landlock(readable=("/",), writable=writable,
                 sockets=(config.socket_dir or config.ipc_dir,) if config.ipc_dir else ()).apply(config.landlock_abi)
    if config.applies("seccomp"):
        SeccompFilter().apply()


def seal(config: SandboxConfig | Mapping[str, Any]) -> None:
    """In the sandboxed kernel, once its own sockets are bound: no thread makes a socket file again."""
    if not isinstance(config, SandboxConfig):
        config = SandboxConfig.from_dict(config)
    if config.applies("seccomp"):
        SocketSeal().apply()


def _fork_into_pid_namespace(cgroup: Cgroup | None) -> int:
    """Fork; the child (pid 1 of the new namespace) gets a pipe end that reads ``CGROUP_JOINED`` once the parent
    has moved both into ``cgroup``, and EOF once the parent is gone.

    The relayed signals stay blocked across the fork until the parent relays them: one sent
    to the parent right after the fork waits for its handler instead of killing it. Then both
    sides unblock them, whatever mask the caller inherited (a process started from a thread that
    blocks SIGINT has it blocked too): a reaper that kept one blocked would never relay it.
    """
    read_end, write_end = os.pipe()
    signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED)
    child = os.fork()
    if child:
        os.close(read_end)
        if cgroup is not None:
            cgroup.add(child)
            cgroup.add(os.getpid())
        os.write(write_end, CGROUP_JOINED)
        _reap(child)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED)
    os.close(write_end)
    return read_end


def _reap(child: int) -> NoReturn:
    """The parent side: relay signals to the sandboxed child, wait for it, end the same way."""
    def relay(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone: waitpid reports it
            os.kill(child, signal.SIGKILL if signum in (signal.SIGTERM, signal.SIGHUP) else signum)

    for signum in RELAYED:
        signal.signal(signum, relay)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED)
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    if code < 0:  # killed by a signal: die of the same one, without a core file
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if -code != signal.SIGKILL:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code if code >= 0 else 128 - code)


def _die_with_parent(parent_alive: int) -> None:
    """SIGKILL this process when its reaper dies (set after the uid change, which clears it), once the reaper
    has moved it into its cgroup."""
    prctl("namespaces", PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.read(parent_alive, len(CGROUP_JOINED)) != CGROUP_JOINED:
        os._exit(1)  # the reaper died (before the signal was armed, or without moving us into the cgroup)
    os.close(parent_alive)


def _detach_fds(keep: tuple[int, ...]) -> None:
    """Point every inherited descriptor but 0, 1, 2 and ``keep`` at ``/dev/null``.

    Not closed: Python objects of the parent still own those numbers and may close them later,
    which would then close whatever reused the number (a ZeroMQ epoll, say).
    """
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd > 2 and fd != null and fd not in keep:
            os.dup2(null, fd, inheritable=False)
    os.close(null)


def probe(landlock_cap: int | None = None) -> dict[str, Any]:
    """Which layers this machine supports, each tried for real in a throwaway child (for ``/health``); the
    Landlock ABI kernels get (at most ``landlock_cap``, an agent's ``--landlock-abi``) and the one offered."""
    root = os.geteuid() == 0
    report: dict[str, Any] = {"root": root}
    report["uid"] = root and _works(lambda: privileges.drop(PROBE_UID, PROBE_UID))
    for name, flag in namespaces.NAMES.items():
        report[name] = _works(functools.partial(namespaces.unshare, flag))
    report["mounts"] = root and _works(_mount_view_works)
    report["rlimits"] = _works(Rlimits().apply)
    report["environment"] = _works(environment.apply)
    report["nnp"] = _works(privileges.no_new_privs)
    report["cgroup"] = cgroups.available()
    report["landlock_abi_offered"] = landlock.abi()
    report["landlock_abi"] = min(report["landlock_abi_offered"], landlock_cap or report["landlock_abi_offered"])
    report["seccomp"] = seccomp_filter.importable() and _works(SeccompFilter().apply)
    return report


def unavailable(report: Mapping[str, Any]) -> tuple[str, ...]:
    """The layers a ``probe()`` report says cannot be applied here (a ``skip`` for a weaker sandbox)."""
    missing = {
        "cgroup": report["cgroup"] is None,
        "namespaces": not all(report[name] for name in namespaces.NAMES),
        "mounts": not report["mounts"],
        "rlimits": not report["rlimits"],
        "environment": not report["environment"],
        "uid": not report["uid"],
        "nnp": not report["nnp"],
        "landlock": report["landlock_abi"] == 0,
        "seccomp": not report["seccomp"],
    }
    return tuple(layer for layer in LAYERS if missing[layer])


def _mount_view_works() -> None:
    namespaces.unshare(namespaces.CLONE_NEWPID)
    if not _works(MountView(readable=default_readable()).apply):
        raise SandboxError("mounts", "the mount view could not be built")


def _works(attempt: Callable[[], object]) -> bool:
    """Whether ``attempt`` runs without an exception in a forked child."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            attempt()
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
