"""Start sandboxed kernels forked from the template, and stop them.

Each kernel gets a host directory ``<run_dir>/<first characters of its id>/`` holding its connection
file and its ipc sockets in ``ipc/`` (owned by the kernel's uid, mode 0700: no other kernel can
connect), a ``datasets/`` folder the agent fills and the kernel may only read, and a ``tables/`` folder
the kernel writes the tables of shown DataFrames to and the agent serves them from
(``kernels.table_output``; a tmpfs of ``TABLES_DIR_BYTES`` where the agent can mount). Where the agent
can mount (the mount view applies), ``ipc/`` is a tmpfs of ``IPC_DIR_INODES`` inodes, so the
kernel's socket files never take the host's; after start the kernel makes none anyway (``sandbox.seal``). The sandbox binds
that directory, and nothing else of the host that is writable, into the kernel's view.

Without the uid layer (an agent that is not root) every kernel runs as the agent's own uid (with
``user_namespace``, in namespaces of its own and a mount view: its ``ipc/`` then on the host's disk,
as such an agent cannot mount outside its kernels' namespaces, and the agent bounds ``ipc/`` and ``tables/``
itself: ``kernels.disk_bounds``); without
the mount view, the kernel's workdir is ``work/`` in that directory rather than a private tmpfs,
so Landlock's one writable path is still the kernel's own.

A kernel's stdout and stderr are a pipe of its own that the launcher reads (``kernels.kernel_output``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo

from .disk_bounds import DISK_LIMIT, MAX_BYTES, MAX_ENTRIES
from .kernel_output import KernelOutput
from .limits import (IPC_DIR_BYTES, IPC_DIR_INODES, KERNEL_LOG_BYTES_PER_SECOND, KERNEL_LOG_LINES_PER_SECOND,
                     TABLES_DIR_BYTES, TABLES_DIR_INODES)
from .sandbox import SandboxConfig, UidAllocator, mounts
from .template_client import TemplateClient

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
DIRECTORY_NAME_LENGTH = 12
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL
SOCKET_SUFFIX = "/ipc/kernel-5"


@dataclasses.dataclass(frozen=True)
class KernelExit:
    """How a kernel ended by itself: its status (negative: the signal), whether the OOM killer did it, and the
    code of the bound the agent stopped it for (``disk_bounds.DISK_LIMIT``)."""

    status: int
    oom: bool
    code: str | None = None

    def describe(self, memory_mb: int) -> str:
        if self.code == DISK_LIMIT:
            return (f"the card kept more than {MAX_BYTES // (1024 * 1024)} MB or {MAX_ENTRIES} files in its kernel's "
                    "tables folder and its kernel was stopped")
        if self.oom:
            return f"the card exceeded the {memory_mb} MB memory limit and its kernel was stopped"
        if self.status < 0:
            return f"the kernel was killed by signal {-self.status}"
        return f"the kernel exited with status {self.status}"


@dataclasses.dataclass
class LaunchedKernel:
    kernel_id: str
    uid: int | None
    pid: int
    directory: Path
    connection: dict[str, Any]
    sandbox: SandboxConfig
    exit: KernelExit | None = None
    stopped_for: str | None = None  # the code of the bound it was killed for (``kill``)

    @property
    def dataset_dir(self) -> Path:
        return self.directory / "datasets"

    @property
    def tables_dir(self) -> Path:
        return self.directory / "tables"


def on_agent_disk(config: SandboxConfig) -> bool:
    """Whether a kernel's ipc and tables folders stay on the agent's disk rather than tmpfs of their own: the
    agent cannot mount there (not root, or in a user namespace of its uid)."""
    return not config.applies("mounts") or config.user_namespace


class KernelStartError(RuntimeError):
    """A forked kernel died or hung before it was ready."""


class KernelLauncher:
    """Forks kernels through the template, each in its own sandbox (with its own uid, given ``uids``)."""

    def __init__(self, run_dir: Path, uids: UidAllocator | None, sandbox_defaults: dict[str, Any] | None = None,
                 start_timeout: float = 30, log_lines_per_second: int = KERNEL_LOG_LINES_PER_SECOND,
                 log_bytes_per_second: int = KERNEL_LOG_BYTES_PER_SECOND):
        self.run_dir = run_dir
        self.start_timeout = start_timeout
        self.log_lines_per_second = log_lines_per_second
        self.log_bytes_per_second = log_bytes_per_second
        self.outputs: dict[str, KernelOutput] = {}
        self.uids = uids
        self.sandbox_defaults = sandbox_defaults or {}
        self.kernels: dict[str, LaunchedKernel] = {}
        self.exited: dict[str, asyncio.Future[int]] = {}
        self.template = TemplateClient(on_exit=self._on_exit)
        self.exit_listeners: list[Callable[[LaunchedKernel], None]] = []

    @property
    def memory_mb(self) -> int:
        """The memory limit of every kernel (the cgroup's, and the address space rlimit's)."""
        return self.sandbox_defaults.get("memory_mb", SandboxConfig.memory_mb)

    async def start(self) -> None:
        longest = len(str(self.run_dir.resolve())) + 1 + DIRECTORY_NAME_LENGTH + len(SOCKET_SUFFIX)
        if longest > SOCKET_PATH_MAX:
            raise ValueError(f"the run directory {self.run_dir} is too long for unix socket paths "
                             f"({longest} > {SOCKET_PATH_MAX} bytes); pick a shorter one")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o711)
        mounts.unmount_beneath(str(self.run_dir))  # ipc tmpfs of an agent that was killed
        await self.template.start()

    async def launch(self) -> LaunchedKernel:
        """Fork a new sandboxed kernel and wait until it answers ``kernel_info``."""
        kernel_id = uuid.uuid4().hex
        uid = self.uids.allocate() if self.uids is not None else None
        directory = self.run_dir.resolve() / kernel_id[:DIRECTORY_NAME_LENGTH]
        try:
            config = self._sandbox(kernel_id, directory, uid)
            # on a thread: its mounts and writes held up the agent's loop (the kernel just handed out, its
            # relay and its dataset's placement among them) for 5-20 ms
            preparing = asyncio.ensure_future(asyncio.to_thread(self._prepare_directory, directory, config))
            try:
                connection = await asyncio.shield(preparing)
            except asyncio.CancelledError:
                await asyncio.wait([preparing])  # cleaned up below once it no longer writes there
                raise
            self.exited[kernel_id] = asyncio.get_running_loop().create_future()
            read_end, write_end = os.pipe()
            self.outputs[kernel_id] = KernelOutput(kernel_id, read_end, self.log_lines_per_second,
                                                     bytes_per_second=self.log_bytes_per_second)
            try:
                pid = await self.template.spawn({
                    "kernel_id": kernel_id, "connection_file": str(directory / "connection.json"),
                    "dataset_dir": str(directory / "datasets"), "tables_dir": config.tables_dir,
                    "sandbox": dataclasses.asdict(config)}, write_end)
            finally:
                os.close(write_end)
        except BaseException:
            self._cleanup(kernel_id, directory, uid, None)
            raise
        kernel = LaunchedKernel(kernel_id, uid, pid, directory, connection, config)
        self.kernels[kernel_id] = kernel
        await self._wait_for_sockets(kernel)
        return kernel

    async def _wait_for_sockets(self, kernel: LaunchedKernel) -> None:
        """Return once the kernel has bound every socket, so clients connect at once.

        A ZeroMQ client that connects before the socket file exists retries only after its
        reconnect interval (100 ms).
        """
        paths = [Path(f"{kernel.connection['ip']}-{kernel.connection[f'{name}_port']}") for name in CHANNELS]
        deadline = asyncio.get_running_loop().time() + self.start_timeout
        while not all(path.exists() for path in paths):
            if self.exited[kernel.kernel_id].done():
                status = self.exited[kernel.kernel_id].result()
                await self.stop(kernel.kernel_id)
                raise KernelStartError(f"the kernel exited while starting (status {status})")
            if asyncio.get_running_loop().time() > deadline:
                await self.stop(kernel.kernel_id)
                raise KernelStartError(f"the kernel did not bind its sockets in {self.start_timeout} s")
            await asyncio.sleep(0.002)

    def _sandbox(self, kernel_id: str, directory: Path, uid: int | None) -> SandboxConfig:
        """The kernel's sandbox: its uid, or the agent's; its workdir in ``directory`` without a mount view."""
        user, group = (uid, uid) if uid is not None else (os.getuid(), os.getgid())
        config = SandboxConfig(uid=user, gid=group, ipc_dir=str(directory), socket_dir=str(directory / "ipc"),
                               tables_dir=str(directory / "tables"), name=kernel_id, **self.sandbox_defaults)
        if not config.applies("mounts"):
            workdir = str(directory / "work")
            config.workdir = workdir
            config.environment = {**config.environment, "HOME": workdir, "TMPDIR": workdir}
        return config

    def _prepare_directory(self, directory: Path, config: SandboxConfig) -> dict[str, Any]:
        directory.mkdir(mode=0o700)
        (directory / "datasets").mkdir(mode=0o755)
        (directory / "ipc").mkdir(mode=0o700)
        (directory / "tables").mkdir(mode=0o700)
        owned = [directory / "connection.json", directory, directory / "ipc", directory / "tables"]
        if not on_agent_disk(config):
            mounts.mount_tmpfs(str(directory / "ipc"), IPC_DIR_BYTES, IPC_DIR_INODES, (config.uid, config.gid))
            mounts.mount_tmpfs(str(directory / "tables"), TABLES_DIR_BYTES, TABLES_DIR_INODES, (config.uid, config.gid))
        else:
            (directory / "work").mkdir(mode=0o700)
            owned.append(directory / "work")
        connection = {"transport": "ipc", "ip": str(directory / "ipc" / "kernel"),
                      "key": secrets.token_hex(32), "signature_scheme": "hmac-sha256",
                      **{f"{name}_port": number for number, name in enumerate(CHANNELS, 1)}}
        file = directory / "connection.json"
        file.write_text(json.dumps(connection))
        file.chmod(0o400)
        if (config.uid, config.gid) != (os.getuid(), os.getgid()):
            for path in owned:
                os.chown(path, config.uid, config.gid)
        return connection

    def on_agent_disk(self) -> list[LaunchedKernel]:
        """The kernels whose ipc and tables folders are on the agent's disk (``disk_bounds``)."""
        return [kernel for kernel in self.kernels.values() if on_agent_disk(kernel.sandbox)]

    def kill(self, kernel_id: str, code: str) -> None:
        """Kill the kernel for the bound ``code``; its exit (``exit_listeners``) says so, then ``stop`` removes it."""
        kernel = self.kernels.get(kernel_id)
        if kernel is None or kernel.stopped_for is not None:
            return
        kernel.stopped_for = code
        with contextlib.suppress(ProcessLookupError):
            os.kill(kernel.pid, signal.SIGKILL)

    def is_alive(self, kernel_id: str) -> bool:
        return kernel_id in self.kernels and not self.exited[kernel_id].done()

    def client(self, kernel: LaunchedKernel) -> AsyncKernelClient:
        client = AsyncKernelClient()
        client.load_connection_info(cast(KernelConnectionInfo, kernel.connection))
        return client

    async def stop(self, kernel_id: str) -> None:
        """Kill the kernel (its reaper, so the whole PID namespace dies) and remove its traces.

        The removal (waiting for the cgroup to empty, unmounting, deleting the directory) runs on a thread:
        on the agent's loop it held up every other request meanwhile, the next kernel's hand-out among them.
        The kernel's uid is free again once its traces are gone.
        """
        kernel = self.kernels.pop(kernel_id, None)
        if kernel is None:
            return
        try:
            os.kill(kernel.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await asyncio.wait_for(asyncio.shield(self.exited[kernel_id]), 10)
        self._forget(kernel_id)
        def removed(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is None:  # not a uid whose processes may live on
                self._release(kernel.uid)

        removal = asyncio.ensure_future(asyncio.to_thread(self._remove_traces, kernel.directory, kernel.sandbox))
        removal.add_done_callback(removed)
        await asyncio.shield(removal)

    def _cleanup(self, kernel_id: str, directory: Path, uid: int | None, sandbox: SandboxConfig | None) -> None:
        self._forget(kernel_id)
        self._remove_traces(directory, sandbox)
        self._release(uid)

    def _forget(self, kernel_id: str) -> None:
        self.exited.pop(kernel_id, None)
        output = self.outputs.pop(kernel_id, None)
        if output is not None:
            output.close()

    @staticmethod
    def _remove_traces(directory: Path, sandbox: SandboxConfig | None) -> None:
        if sandbox is not None and sandbox.applies("cgroup"):
            sandbox.cgroup().remove()
        mounts.unmount_beneath(str(directory))
        shutil.rmtree(directory, ignore_errors=True)

    def _release(self, uid: int | None) -> None:
        if self.uids is not None and uid is not None:
            self.uids.release(uid)

    def _on_exit(self, kernel_id: str, status: int) -> None:
        future = self.exited.get(kernel_id)
        if future is not None and not future.done():
            future.set_result(status)
        kernel = self.kernels.get(kernel_id)
        if kernel is None:  # stopped on purpose: nobody needs to hear of it
            return
        oom = kernel.sandbox.applies("cgroup") and kernel.sandbox.cgroup().oom_killed()
        kernel.exit = KernelExit(status, oom, kernel.stopped_for)
        for listener in self.exit_listeners:
            listener(kernel)

    async def close(self) -> None:
        """Stop every kernel and the template; unmount the ipc tmpfs of launches cut short by the stop."""
        for kernel_id in list(self.kernels):
            await self.stop(kernel_id)
        await self.template.stop()
        mounts.unmount_beneath(str(self.run_dir))
