"""A memory + pids cgroup per kernel: cgroup v2 where it offers both, else the v1 controllers.

The memory limit covers what ``RLIMIT_AS`` misses (tmpfs and memfd pages, children) and the
pids limit what ``RLIMIT_NPROC`` misses (root, shared uids). Kernel cgroups live under
``<own cgroup>/<parent>/<name>``: below the agent's own cgroup, so limits set above the agent keep
applying to its kernels (``/sys/fs/cgroup/memory/bi/<agent>/<name>`` when the agent sits at the
root). Each agent keeps its kernels under a parent of its own, so whoever outlives an agent that
died removes what it left with ``remove_tree`` without touching other agents' kernels.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from kernels.sandbox.errors import SandboxError

MB = 1024 * 1024
V1_CONTROLLERS = ("memory", "pids")


def _mount_points() -> dict[str, str]:
    """``{"memory": ..., "pids": ...}`` for v1 hierarchies and ``{"unified": ...}`` for cgroup2."""
    points: dict[str, str] = {}
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            _, point, fstype, options, *_ = line.split()
            if fstype == "cgroup2":
                points["unified"] = point
            elif fstype == "cgroup":
                for option in options.split(","):
                    if option in V1_CONTROLLERS:
                        points[option] = point
    return points


def _own_paths() -> dict[str, str]:
    """This process's cgroup per v1 controller, and ``"unified"`` for v2 (``/proc/self/cgroup``)."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else ["unified"]:
                paths[controller] = path
    return paths


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(value)


def _locations() -> dict[str, dict[str, str]]:
    """The directories a kernel cgroup would be created under, per usable version."""
    points, own = _mount_points(), _own_paths()
    found: dict[str, dict[str, str]] = {}
    if "unified" in points and "unified" in own:
        base = points["unified"] + own["unified"]
        controllers = _read(os.path.join(base, "cgroup.controllers")).split()
        if {"memory", "pids"} <= set(controllers) and os.access(base, os.W_OK):
            found["v2"] = {"unified": base}
    if all(c in points and c in own for c in V1_CONTROLLERS):
        bases = {c: points[c] + own[c] for c in V1_CONTROLLERS}
        if all(os.access(base, os.W_OK) for base in bases.values()):
            found["v1"] = bases
    return found


def available() -> str | None:
    """``"v2"`` or ``"v1"`` (the preferred one this process can create memory + pids cgroups in), or None."""
    found = _locations()
    return "v2" if "v2" in found else "v1" if "v1" in found else None


class Cgroup:
    """The cgroup(s) of one kernel: ``create``, ``add`` its processes, ``kill_all``, ``remove``."""

    def __init__(self, name: str, memory_mb: int = 2048, pids_max: int = 64, parent: str = "bi"):
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad cgroup name {name!r}")
        if not _relative(parent):
            raise ValueError(f"bad cgroup parent {parent!r}")
        found = _locations()
        self.version = "v2" if "v2" in found else "v1" if "v1" in found else None
        if self.version is None:
            raise SandboxError("cgroup", "no writable memory + pids cgroup (v2 or v1) on this machine")
        self.memory_bytes, self.pids_max = memory_mb * MB, pids_max
        self.bases = found[self.version]
        self.parent = parent
        self.parents = {c: os.path.join(base, parent) for c, base in self.bases.items()}
        self.paths = {c: os.path.join(p, name) for c, p in self.parents.items()}

    def create(self) -> None:
        """Create the cgroup(s) and set the limits (idempotent)."""
        try:
            if self.version == "v2":
                self._create_v2()
            else:
                self._create_v1()
        except OSError as e:
            raise SandboxError("cgroup", f"cannot create {list(self.paths.values())}: {e}") from e

    def _create_v1(self) -> None:
        memory, pids = self.paths["memory"], self.paths["pids"]
        os.makedirs(memory, exist_ok=True)
        os.makedirs(pids, exist_ok=True)
        _write(f"{memory}/memory.limit_in_bytes", str(self.memory_bytes))
        if os.path.exists(f"{memory}/memory.memsw.limit_in_bytes"):  # swap accounting is on
            _write(f"{memory}/memory.memsw.limit_in_bytes", str(self.memory_bytes))
        _write(f"{pids}/pids.max", str(self.pids_max))

    def _create_v2(self) -> None:
        base, path = self.bases["unified"], self.paths["unified"]
        try:
            _write(os.path.join(base, "cgroup.subtree_control"), "+memory +pids")
        except OSError as e:
            raise SandboxError("cgroup", f"cannot enable memory + pids in {base} ({e}): "
                               "cgroup v2 allows no processes there; move the agent into a child "
                               "cgroup (e.g. .../agent) so that kernel cgroups can sit beside it") from e
        level = base
        for part in self.parent.split("/"):  # the controllers reach a cgroup only through every level above
            level = os.path.join(level, part)
            os.makedirs(level, exist_ok=True)
            _write(f"{level}/cgroup.subtree_control", "+memory +pids")
        os.makedirs(path, exist_ok=True)
        _write(f"{path}/memory.max", str(self.memory_bytes))
        if os.path.exists(f"{path}/memory.swap.max"):
            _write(f"{path}/memory.swap.max", "0")
        _write(f"{path}/pids.max", str(self.pids_max))

    def add(self, pid: int) -> None:
        """Move process ``pid`` (0: the caller) into the cgroup(s)."""
        for path in self.paths.values():
            try:
                _write(f"{path}/cgroup.procs", str(pid))
            except OSError as e:
                raise SandboxError("cgroup", f"cannot add pid {pid} to {path}: {e}") from e

    def pids(self) -> set[int]:
        """The processes in the cgroup(s), as seen from the caller's PID namespace."""
        found: set[int] = set()
        for path in self.paths.values():
            if os.path.isdir(path):
                found.update(int(line) for line in _read(f"{path}/cgroup.procs").split())
        return found

    def oom_killed(self) -> bool:
        """Whether the OOM killer killed a process of this cgroup for its memory limit."""
        if self.version == "v2":
            events = _read(f"{self.paths['unified']}/memory.events")
        else:
            events = _read(f"{self.paths['memory']}/memory.oom_control")
        counters = dict(line.split() for line in events.splitlines() if line.strip())
        return int(counters.get("oom_kill", 0)) > 0

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process of the cgroup(s) and wait until they are gone."""
        kill_file = f"{self.paths.get('unified', '')}/cgroup.kill"
        if self.version == "v2" and os.path.exists(kill_file):
            _write(kill_file, "1")
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            if time.monotonic() > deadline:
                raise SandboxError("cgroup", f"processes {sorted(pids)} survived SIGKILL for {timeout} s")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left, then delete the cgroup(s) (not the shared parent)."""
        self.kill_all(timeout)
        deadline = time.monotonic() + timeout
        for path in self.paths.values():
            while os.path.isdir(path):
                try:
                    os.rmdir(path)
                except OSError as e:  # EBUSY while the killed processes finish exiting
                    if time.monotonic() > deadline:
                        raise SandboxError("cgroup", f"cannot remove {path}: {e}") from e
                    time.sleep(0.01)


def _relative(parent: str) -> bool:
    """Whether ``parent`` is a relative cgroup path of plain names (``bi`` or ``bi/agent-1``)."""
    parts = parent.split("/")
    return all(part and not part.startswith(".") for part in parts)


def agent_parent(agent: str) -> str:
    """The parent of one agent's kernel cgroups: a cgroup named ``agent`` under the shared ``bi``."""
    return f"bi/{agent}"


def remove_tree(parent: str, timeout: float = 5.0) -> None:
    """Kill the processes of every cgroup under ``parent`` and remove those cgroups, then ``parent``.

    For what an agent that died left: its kernels' cgroups (``<parent>/<kernel id>``). Nothing
    above ``parent`` is touched; without usable cgroups there is nothing to remove.
    """
    if not _relative(parent):
        raise ValueError(f"bad cgroup parent {parent!r}")
    found = _locations()
    version = "v2" if "v2" in found else "v1" if "v1" in found else None
    if version is None:
        return
    directories = [os.path.join(base, parent) for base in found[version].values()]
    names = {entry.name for directory in directories if os.path.isdir(directory)
             for entry in os.scandir(directory) if entry.is_dir()}
    for name in sorted(names):
        Cgroup(name, parent=parent).remove(timeout)
    for directory in directories:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(directory)
