"""``bi executor``: run the executor agent with a warm pool of sandboxed kernels.

Every sandbox layer is checked at start (``kernels.sandbox.probe``). Where one cannot be
applied (not root, no namespaces, ...) the agent refuses to start unless given
``--allow-weaker-sandbox``; then it runs without those layers and says so in its logs and
in ``/health``. Without the uid layer every kernel shares the agent's uid, so the agent serves
one tenant at a time (``kernels.admission``).

``--user-namespaces`` (an agent that is not root, as in its container): every kernel gets its
namespaces, mount view, Landlock, seccomp, rlimits and ``PR_SET_DUMPABLE`` 0 inside a user namespace
of the agent's uid (``SandboxConfig.user_namespace``). At start a sandboxed child reports what it
got (``kernels.sandbox.inside``, in ``/health`` as ``kernel_layers``); only when it shows every
layer is the agent multi-tenant (no cgroups though: kernels share the agent's process and memory
limits, so at most ``--max-kernels-per-tenant`` per tenant).

Stopping: the first SIGTERM drains (no new kernels, the warm pool is emptied, handed-out kernels
keep working) until none is alive or ``drain_timeout`` has passed; SIGINT or a second SIGTERM
stops at once, as does SIGTERM to an agent tied to its parent (``parent_pid``). Before it exits it
answers the requests in flight, then removes its kernels' cgroups, which live under one cgroup of
its own (``cgroup_name``: whoever outlives an agent that died removes that one whole).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import cast

import structlog
from cryptography.hazmat.primitives import serialization
from tornado import httpserver
from tornado.netutil import bind_sockets
from traitlets import Bool, Float, Integer, Unicode, default
from traitlets.config import Application

from .admission import DEFAULT_MAX_KERNELS, Admission
from .agent import make_app, reap_orphans, stop_over_disk
from .image import image_version
from .launcher import KernelLauncher
from .limits import (AGENT_BODY_BYTES, DATASET_CACHE_BYTES, GAP_BYTES, KERNEL_LOG_BYTES_PER_SECOND,
                     KERNEL_LOG_LINES_PER_SECOND, KERNEL_MESSAGE_BYTES, KERNELS_PER_TENANT_WITHOUT_CGROUPS,
                     ORPHAN_SECONDS)
from .logs import configure_logging
from .pool import WarmPool
from .relay import Listeners, Relays, TcpListeners, UnixListeners, parse_port_range
from .sandbox import SandboxConfig, UidAllocator, cgroups, probe, unavailable
from .sandbox.inside import holds, probe_kernel
from .sandbox._libc import PR_SET_PDEATHSIG, prctl
from .sandbox.rlimits import Rlimits

log = structlog.get_logger("bi.executor")

PUBLIC_KEY_VARIABLE = "BI_EXECUTOR_PUBLIC_KEY"
DRAIN_POLL_SECONDS = 0.02  # how soon the end of the last kernel is seen while draining
IN_FLIGHT_SECONDS = 10  # the last answers get this long to go out before the agent stops
RELAY_DIRECTORY = "relay"  # in the run directory: the unix relays' sockets (kernel directories are hex)


class ExecutorApp(Application):
    name = "bi-executor"
    description = "Run the executor agent: sandboxed kernels forked from a warm template."

    ip = Unicode("127.0.0.1", help="Address to listen on.").tag(config=True)
    port = Integer(8080, help="Port to listen on.").tag(config=True)
    run_dir = Unicode("/tmp/bi-kernels", help="Directory of the kernels' ipc sockets (keep the path short).").tag(config=True)
    pool_size = Integer(2, help="Ready kernels kept warm.").tag(config=True)
    public_key_file = Unicode(help="PEM file of the server's Ed25519 public key (verifies calls).").tag(config=True)
    allow_weaker_sandbox = Bool(False, help="Start even when some sandbox layers cannot be applied.").tag(config=True)
    user_namespaces = Bool(False, help="Not root: build each kernel's namespaces and mount view inside a user "
                                       "namespace of this uid (needs a seccomp profile allowing unshare and "
                                       "mount); multi-tenant when a sandboxed child shows every layer."
                           ).tag(config=True)
    max_kernels_per_tenant = Integer(KERNELS_PER_TENANT_WITHOUT_CGROUPS, help="With --user-namespaces (no "
                                     "cgroups: kernels share the agent's process and memory limits): kernels one "
                                     "tenant may hold at once; beyond, POST /kernels answers 409.").tag(config=True)
    landlock_abi = Integer(0, help="Use Landlock up to this ABI (0: the kernel's best), to test the "
                                   "sandbox as an older host kernel has it.").tag(config=True)
    uid_first = Integer(61000, help="First uid of the kernel uid range.").tag(config=True)
    uid_count = Integer(1000, help="Size of the kernel uid range.").tag(config=True)
    parent_pid = Integer(0, help="Stop when this process exits (how bi serve ties its local agent to "
                                 "itself, so no agent outlives its server).").tag(config=True)
    socket_fd = Integer(-1, help="Serve on this inherited listening socket instead of ip:port "
                                 "(how bi serve starts its local agent).").tag(config=True)
    advertise_host = Unicode("", help="Host the server reaches this agent's kernels at: kernels are relayed "
                                      "on TCP ports of --ip and handed out with this host (implies --relay). "
                                      "Empty: --ip.").tag(config=True)
    relay = Bool(False, help="Relay kernels on TCP ports of --ip. Off: relay them on unix sockets in the "
                             "run directory (the server runs on this host, as this uid or root).").tag(config=True)
    relay_ports = Unicode("", help="LOW-HIGH: relay on ports of this range (empty: OS-assigned "
                                   "ports).").tag(config=True)
    kernel_message_bytes = Integer(KERNEL_MESSAGE_BYTES, help="Largest message a kernel may send, all its parts "
                                   "together; a larger one ends the relay's link to the server (which then "
                                   "restarts the kernel).").tag(config=True)
    gap_bytes = Integer(GAP_BYTES, help="Bytes of each kernel's output kept while no server is attached to it, "
                                         "replayed to the server that reattaches (oldest dropped past them, and "
                                         "counted as lost); 0: none kept.").tag(config=True)
    orphan_seconds = Float(ORPHAN_SECONDS, help="Seconds a kernel may stay with no server attached (its server "
                                                "died and none reattached) before it is destroyed; 0: "
                                                "never.").tag(config=True)
    max_kernels = Integer(DEFAULT_MAX_KERNELS, help="Kernels handed out and alive at once; beyond, "
                                                    "POST /kernels answers 503.").tag(config=True)
    kernel_log_lines_per_second = Integer(KERNEL_LOG_LINES_PER_SECOND, help="Lines of each kernel's stdout and "
                                          "stderr logged per second; the rest are counted and dropped."
                                          ).tag(config=True)
    kernel_log_bytes_per_second = Integer(KERNEL_LOG_BYTES_PER_SECOND, help="Bytes of each kernel's stdout and "
                                          "stderr logged per second, counted JSON-escaped as logged; the lines "
                                          "past them are counted and dropped.").tag(config=True)
    cgroup_name = Unicode(help="The cgroup (under <own cgroup>/bi/) that holds this agent's kernel cgroups, "
                               "removed with them when it stops (default agent-<pid>). bi serve names the "
                               "one of its local agent, to remove what it left if it dies.").tag(config=True)
    dataset_root = Unicode("", help="Directory of the dataset files of a server on this host (bi serve's blobs): "
                                    "kernels get those files by hard link, not a byte sent.").tag(config=True)
    dataset_cache_bytes = Integer(DATASET_CACHE_BYTES, help="Bytes of dataset versions kept on disk, so each "
                                  "crosses the network once (least recently used go first).").tag(config=True)
    drain_timeout = Float(100, help="Seconds the first SIGTERM waits for handed-out kernels to end before "
                                    "stopping (keep it below ECS's stopTimeout, 120 s).").tag(config=True)

    aliases = {"ip": "ExecutorApp.ip", "port": "ExecutorApp.port", "run-dir": "ExecutorApp.run_dir",
               "pool-size": "ExecutorApp.pool_size", "public-key": "ExecutorApp.public_key_file",
               "advertise-host": "ExecutorApp.advertise_host", "relay-ports": "ExecutorApp.relay_ports",
               "max-kernels": "ExecutorApp.max_kernels", "drain-timeout": "ExecutorApp.drain_timeout",
               "cgroup-name": "ExecutorApp.cgroup_name", "kernel-message-bytes": "ExecutorApp.kernel_message_bytes",
               "dataset-root": "ExecutorApp.dataset_root", "gap-bytes": "ExecutorApp.gap_bytes",
               "landlock-abi": "ExecutorApp.landlock_abi", "max-kernels-per-tenant": "ExecutorApp.max_kernels_per_tenant"}
    flags = {"allow-weaker-sandbox": ({"ExecutorApp": {"allow_weaker_sandbox": True}},
                                      "Start even when some sandbox layers cannot be applied."),
             "relay": ({"ExecutorApp": {"relay": True}}, "Relay kernels on TCP ports of --ip."),
             "user-namespaces": ({"ExecutorApp": {"user_namespaces": True}},
                                 "Not root: kernels' namespaces inside a user namespace of this uid.")}

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    @default("cgroup_name")
    def _default_cgroup_name(self) -> str:
        return f"agent-{os.getpid()}"

    def fail(self, message: str) -> None:
        sys.stderr.write(f"bi executor: error: {message}\n")
        self.exit(2)

    def start(self) -> None:
        configure_logging(cast(int, self.log_level))
        if not self.cgroup_name or "/" in self.cgroup_name or self.cgroup_name.startswith("."):
            self.fail(f"--cgroup-name must be a plain name, not {self.cgroup_name!r}")
        if self.parent_pid:
            prctl("executor", PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != self.parent_pid:  # it exited before the line above
                self.fail(f"the process that started this agent ({self.parent_pid}) is gone")
        public_key = self._public_key()
        try:
            ports = parse_port_range(self.relay_ports) if self.relay_ports else None
        except ValueError as exc:
            self.fail(f"--relay-ports: {exc}")
        report = probe(self.landlock_abi or None)
        missing, kernel_layers = self.missing_layers(report)
        accepted = ("cgroup",) if kernel_layers is not None and holds(kernel_layers) else ()  # the mode's own limit
        if set(missing) - set(accepted) and not self.allow_weaker_sandbox:
            self.fail(f"these sandbox layers cannot be applied here: {', '.join(missing)}; "
                      "run as root on Linux, or pass --allow-weaker-sandbox for a single trusted user")
        health = {"status": "ok", "image_version": image_version(), "sandbox": report,
                  "weaker_sandbox": list(missing), "kernel_layers": kernel_layers}
        if missing:
            log.warning("weaker_sandbox", missing=list(missing))
        asyncio.run(self.serve(public_key, health, missing, ports))

    def missing_layers(self, report: dict) -> tuple[tuple[str, ...], dict | None]:
        """The layers the kernels lack, given ``probe()``'s ``report``, and with ``--user-namespaces`` what a
        child sandboxed in that mode saw (else None). The launcher takes the first (``launcher``)."""
        missing = unavailable(report)
        if self.user_namespaces and "uid" in missing:
            return self._user_namespace_layers(missing)
        return missing, None

    def _user_namespace_layers(self, missing: tuple[str, ...]) -> tuple[tuple[str, ...], dict]:
        """The layers missing in user-namespace mode, and what a child sandboxed in it saw. Only cgroups
        (which need root) stay missing when the child shows every layer; otherwise the mode is off and
        ``uid`` missing, as without it."""
        config = self._kernel_config(("cgroup",))
        seen = probe_kernel(config)
        if not holds(seen):
            log.warning("user_namespace_incomplete", seen=seen)
            return missing, seen
        return ("cgroup",), seen

    def _kernel_config(self, missing: tuple[str, ...]) -> dict:
        """A kernel's sandbox settings as the launcher gets them (``_sandbox_defaults``), for the probe."""
        return dataclasses.asdict(SandboxConfig(uid=os.getuid(), gid=os.getgid(), **self._sandbox_defaults(missing)))

    def _public_key(self):
        """The server's public key, from ``--public-key`` or else ``BI_EXECUTOR_PUBLIC_KEY`` (a PEM)."""
        if self.public_key_file:
            pem = Path(self.public_key_file).read_bytes()
        elif os.environ.get(PUBLIC_KEY_VARIABLE):
            pem = os.environ[PUBLIC_KEY_VARIABLE].encode()
        else:
            self.fail(f"give the server's public key: --public-key=server_public.pem or {PUBLIC_KEY_VARIABLE}")
        try:
            return serialization.load_pem_public_key(pem)
        except ValueError as exc:
            self.fail(f"the server's public key is not a PEM public key: {exc}")

    @property
    def cgroup_parent(self) -> str:
        """Where the kernels' cgroups go, under the agent's own cgroup."""
        return cgroups.agent_parent(self.cgroup_name)

    def _sandbox_defaults(self, missing: tuple[str, ...]) -> dict:
        """Kernel cgroups under the agent's own; skip what is missing; kernels sharing the agent's uid
        share its process limit too."""
        defaults: dict = {"cgroup_parent": self.cgroup_parent}
        if self.landlock_abi:
            defaults["landlock_abi"] = self.landlock_abi
        if not missing:
            return defaults
        defaults["skip"] = missing
        if self.user_namespaces and missing == ("cgroup",):
            defaults["user_namespace"] = True
        if "uid" in missing or defaults.get("user_namespace"):
            defaults["rlimits"] = Rlimits(processes=Rlimits.processes * (self.max_kernels + self.pool_size + 1))
        return defaults

    def launcher(self, missing: tuple[str, ...], run_dir: Path | None = None) -> KernelLauncher:
        """The kernel launcher of this agent, without the ``missing`` layers (its run dir, or ``run_dir``)."""
        own_uid = "uid" in missing or os.geteuid() != 0  # in user namespaces, kernels keep the agent's uid
        uids = None if own_uid else UidAllocator(self.uid_first, self.uid_count)
        return KernelLauncher(run_dir or Path(self.run_dir), uids, self._sandbox_defaults(missing),
                              log_lines_per_second=self.kernel_log_lines_per_second,
                              log_bytes_per_second=self.kernel_log_bytes_per_second)

    def _listeners(self, ports: range | None) -> Listeners:
        """TCP ports for a server on another host (``--relay``, ``--advertise-host``), else unix sockets."""
        if self.relay or self.advertise_host:
            return TcpListeners(self.ip, self.advertise_host or self.ip, ports)
        return UnixListeners(Path(self.run_dir) / RELAY_DIRECTORY)

    async def serve(self, public_key, health: dict, missing: tuple[str, ...], ports: range | None) -> None:
        single_tenant = "uid" in missing
        launcher = self.launcher(missing)
        await launcher.start()
        pool = WarmPool(launcher, self.pool_size)
        await pool.start()
        listeners = self._listeners(ports)
        listeners.prepare()
        relays = Relays(listeners, self.kernel_message_bytes, self.gap_bytes)
        shared_uid = launcher.sandbox_defaults.get("user_namespace", False)
        admission = Admission(launcher.is_alive, single_tenant, self.max_kernels,
                              per_tenant=self.max_kernels_per_tenant if shared_uid else None)
        app = make_app(pool, public_key, health, relays, admission=admission,
                       dataset_root=Path(self.dataset_root) if self.dataset_root else None,
                       cache_bytes=self.dataset_cache_bytes)
        server = httpserver.HTTPServer(app, max_body_size=AGENT_BODY_BYTES)
        if self.socket_fd >= 0:
            listening = socket.socket(fileno=self.socket_fd)
            listening.setblocking(False)
            sockets = [listening]
        else:
            sockets = bind_sockets(self.port, self.ip)
        server.add_sockets(sockets)
        host, port = sockets[0].getsockname()[:2]
        log.info("executor_started", url=f"http://{host}:{port}", pool_size=self.pool_size,
                 tenancy=admission.tenancy, max_kernels=self.max_kernels)
        reaper = (asyncio.create_task(reap_orphans(relays, launcher, admission, self.orphan_seconds))
                  if self.orphan_seconds > 0 and self.gap_bytes > 0 else None)
        disk_watch = asyncio.create_task(stop_over_disk(launcher))
        reason = await self._until_stopped(pool, admission)
        disk_watch.cancel()
        if reaper is not None:
            reaper.cancel()
        server.stop()
        await app.settings["exits"].close()
        await app.settings["in_flight"].finished(IN_FLIGHT_SECONDS)
        await relays.close_all()
        listeners.close()
        await pool.close()
        await launcher.close()
        app.settings["cache"].close()
        if "cgroup" not in missing:
            await asyncio.to_thread(cgroups.remove_tree, self.cgroup_parent)
        log.info("executor_stopped", reason=reason)

    async def _until_stopped(self, pool: WarmPool, admission: Admission) -> str:
        """Wait for a signal, drain on the first SIGTERM; return why the agent stops."""
        loop = asyncio.get_running_loop()
        received: asyncio.Queue[int] = asyncio.Queue()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, received.put_nowait, sig)
        first = await received.get()
        if first == signal.SIGINT or self.parent_pid:
            return signal.Signals(first).name
        admission.draining = True
        log.info("executor_draining", in_use=admission.in_use, timeout=self.drain_timeout)
        await pool.close()
        deadline = loop.time() + self.drain_timeout
        while admission.in_use:
            if loop.time() >= deadline:
                return "drain_timeout"
            try:
                second = await asyncio.wait_for(received.get(), min(DRAIN_POLL_SECONDS, deadline - loop.time()))
            except TimeoutError:
                continue
            return signal.Signals(second).name
        return "drained"
