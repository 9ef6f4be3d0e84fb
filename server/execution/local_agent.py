"""The executor agent that ``bi serve`` starts beside itself in embedded mode.

It runs as a child process (``bi executor``) so that the agent's sandbox machinery stays out of
the server's process, with an environment that holds none of the server's secrets. The server
creates the listening socket and hands it over, so there is no port to pick or race for, and
keeps an Ed25519 key pair in the data directory: the private key signs calls, the agent gets the
public one.

``keep_running`` watches the agent: when it dies (killed, crashed), its template and kernels die
with it (a parent-death signal chain), the server removes what they left (their cgroups, the run
directory), tells the pool (whose sessions hear that their kernel was lost) and starts a new agent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernels.sandbox import cgroups, mounts
from kernels.sandbox.errors import SandboxError

from ..limits import KERNEL_MESSAGE_BYTES
from ..logs import get_logger
from .agent_client import AgentClient, AgentError, load_private_key
from .discovery import StaticExecutors
from .pool import KernelPool

log = get_logger("bi.executor.local")

PRIVATE_KEY_FILE = "executor_key.pem"
PUBLIC_KEY_FILE = "executor_key.pub.pem"
AGENT_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
LOST = "its executor agent stopped"
RESTART_DELAYS = (1, 2, 5, 10, 30)  # seconds between failed restarts; the last one repeats


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    """The server's agent-signing key from the data dir (created 0600 on first use), public half beside it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return load_or_create_key_pair(data_dir / PRIVATE_KEY_FILE, data_dir / PUBLIC_KEY_FILE)


def load_or_create_key_pair(private_path: Path, public_path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``private_path`` (created 0600 if absent); its public half written to ``public_path``."""
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = load_private_key(private_path.read_text())
    else:
        key = Ed25519PrivateKey.generate()
        with os.fdopen(fd, "wb") as file:
            file.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


class LocalAgentError(RuntimeError):
    """The local agent could not start; the message says why."""


class LocalAgent:
    def __init__(self, data_dir: Path, pool_size: int, allow_weaker_sandbox: bool, start_timeout: float = 120,
                 advertise_host: str = "", message_bytes: int = KERNEL_MESSAGE_BYTES, dataset_root: Path | None = None):
        self.data_dir = data_dir
        self.dataset_root = dataset_root  # the server's dataset files, which the agent may link into kernels
        self.pool_size = pool_size
        self.allow_weaker_sandbox = allow_weaker_sandbox
        self.advertise_host = advertise_host  # set: kernels come over the TCP relay, as from a remote agent
        self.message_bytes = message_bytes  # the agent's relay bounds each kernel message, all parts together
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.run_dir = ""
        self.key: Ed25519PrivateKey | None = None

    async def start(self, key: Ed25519PrivateKey) -> AgentClient:
        """Start the agent and return a client once its warm pool is full."""
        self.key = key
        listening = socket.create_server(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        self.run_dir = tempfile.mkdtemp(prefix="bi-k-")  # short: unix socket paths are limited
        command = [sys.executable, "-m", "server.cli", "executor",
                   f"--public-key={self.data_dir / PUBLIC_KEY_FILE}", f"--run-dir={self.run_dir}",
                   f"--pool-size={self.pool_size}", f"--ExecutorApp.socket_fd={listening.fileno()}",
                   f"--ExecutorApp.parent_pid={os.getpid()}", f"--cgroup-name={self.cgroup_name}",
                   f"--kernel-message-bytes={self.message_bytes}"]
        if self.allow_weaker_sandbox:
            command.append("--allow-weaker-sandbox")
        if self.advertise_host:
            command.append(f"--advertise-host={self.advertise_host}")
        if self.dataset_root is not None:
            command.append(f"--dataset-root={self.dataset_root}")
        self.process = subprocess.Popen(command, env=AGENT_ENVIRONMENT, pass_fds=(listening.fileno(),),
                                        start_new_session=True)
        listening.close()
        client = AgentClient(f"http://127.0.0.1:{port}", key, timeout=self.start_timeout)
        try:
            await self._wait_until_healthy(client)
        except BaseException:
            client.close()
            await self.stop()
            raise
        log.info("local_executor_started", port=port, pid=self.process.pid, run_dir=self.run_dir)
        return client

    async def _wait_until_healthy(self, client: AgentClient) -> None:
        health = asyncio.ensure_future(client.health())
        while not health.done():
            if self.process is not None and self.process.poll() is not None:
                health.cancel()
                raise LocalAgentError(f"the executor agent exited with status {self.process.returncode} "
                                      "(its message is above)")
            await asyncio.sleep(0.1)
        try:
            health.result()
        except AgentError as exc:
            raise LocalAgentError(f"the executor agent did not become healthy: {exc}") from exc

    @property
    def cgroup_name(self) -> str:
        """The agent's cgroup for its kernels' cgroups: named after its run directory, unique on this host."""
        return Path(self.run_dir).name

    async def exited(self) -> int:
        """Wait until the agent process ends; its exit status."""
        process = self.process
        assert process is not None
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        pidfd = os.pidfd_open(process.pid)  # readable once the process has ended
        loop.add_reader(pidfd, lambda: None if ended.done() else ended.set_result(None))
        try:
            await ended
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        return process.wait()

    def remove_leftovers(self) -> None:
        """After the agent died: kill what is left in its kernels' cgroups, remove them, unmount its kernels'
        ipc tmpfs and remove its run directory."""
        if self.run_dir:
            try:
                cgroups.remove_tree(cgroups.agent_parent(self.cgroup_name))
            except (SandboxError, OSError) as exc:
                log.error("local_executor_cgroups_not_removed", run_dir=self.run_dir, error=str(exc))
            try:
                mounts.unmount_beneath(self.run_dir)
            except (SandboxError, OSError) as exc:
                log.error("local_executor_unmount_failed", run_dir=self.run_dir, error=str(exc))
            shutil.rmtree(self.run_dir, ignore_errors=True)

    async def keep_running(self, executors: StaticExecutors, pool: KernelPool) -> None:
        """Once started, restart the agent whenever it dies, until cancelled (before ``stop``).

        ``executors`` lists the live agent; the new one listens on a new port.
        """
        assert self.key is not None, "start the agent first"
        while True:
            status = await self.exited()
            log.error("local_executor_died", status=status, run_dir=self.run_dir)
            pool.agent_lost(executors.urls[0], LOST)
            await asyncio.to_thread(self.remove_leftovers)
            client = await self._restart(self.key)
            executors.urls[:] = [client.base_url]
            client.close()
            await pool.refresh()
            log.info("local_executor_restarted", agent=client.base_url)

    async def _restart(self, key: Ed25519PrivateKey) -> AgentClient:
        """Start a new agent, trying again after each failure (with growing delays)."""
        attempt = 0
        while True:
            try:
                return await self.start(key)
            except (LocalAgentError, OSError) as exc:
                delay = RESTART_DELAYS[min(attempt, len(RESTART_DELAYS) - 1)]
                attempt += 1
                log.error("local_executor_restart_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)

    async def stop(self, timeout: float = 15) -> None:
        """SIGTERM (the agent stops its kernels and template), SIGKILL after ``timeout``; then remove
        whatever it left."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(process.wait), timeout)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait)
        await asyncio.to_thread(self.remove_leftovers)
