"""``bi executor``: run the executor agent with a warm pool of sandboxed kernels.

Every sandbox layer is checked at start (``kernels.sandbox.probe``). Where one cannot be
applied (not root, no namespaces, ...) the agent refuses to start unless given
``--allow-weaker-sandbox``; then it runs without those layers and says so in its logs and
in ``/health``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import structlog
from cryptography.hazmat.primitives import serialization
from tornado import httpserver
from tornado.netutil import bind_sockets
from traitlets import Bool, Integer, Unicode, default
from traitlets.config import Application

from .agent import make_app
from .image import image_version
from .launcher import KernelLauncher
from .pool import WarmPool
from .relay import Relays
from .sandbox import UidAllocator, probe, unavailable
from .sandbox._libc import PR_SET_PDEATHSIG, prctl

log = structlog.get_logger("bi.executor")

MAX_DATASET_BYTES = 1024 * 1024 * 1024  # a dataset's Parquet file, placed in one PUT


class ExecutorApp(Application):
    name = "bi-executor"
    description = "Run the executor agent: sandboxed kernels forked from a warm template."

    ip = Unicode("127.0.0.1", help="Address to listen on.").tag(config=True)
    port = Integer(8080, help="Port to listen on.").tag(config=True)
    run_dir = Unicode("/tmp/bi-kernels", help="Directory of the kernels' ipc sockets (keep the path short).").tag(config=True)
    pool_size = Integer(2, help="Ready kernels kept warm.").tag(config=True)
    public_key_file = Unicode(help="PEM file of the server's Ed25519 public key (verifies calls).").tag(config=True)
    allow_weaker_sandbox = Bool(False, help="Start even when some sandbox layers cannot be applied.").tag(config=True)
    uid_first = Integer(61000, help="First uid of the kernel uid range.").tag(config=True)
    uid_count = Integer(1000, help="Size of the kernel uid range.").tag(config=True)
    parent_pid = Integer(0, help="Stop when this process exits (how bi serve ties its local agent to "
                                 "itself, so no agent outlives its server).").tag(config=True)
    socket_fd = Integer(-1, help="Serve on this inherited listening socket instead of ip:port "
                                 "(how bi serve starts its local agent).").tag(config=True)
    advertise_host = Unicode("", help="Host the server reaches this agent's kernels at: kernels are relayed "
                                      "on TCP ports of --ip and handed out with this host. Empty: ipc "
                                      "connection info (the server runs on this host).").tag(config=True)

    aliases = {"ip": "ExecutorApp.ip", "port": "ExecutorApp.port", "run-dir": "ExecutorApp.run_dir",
               "pool-size": "ExecutorApp.pool_size", "public-key": "ExecutorApp.public_key_file",
               "advertise-host": "ExecutorApp.advertise_host"}
    flags = {"allow-weaker-sandbox": ({"ExecutorApp": {"allow_weaker_sandbox": True}},
                                      "Start even when some sandbox layers cannot be applied.")}

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    def fail(self, message: str) -> None:
        sys.stderr.write(f"bi executor: error: {message}\n")
        self.exit(2)

    def start(self) -> None:
        if self.parent_pid:
            prctl("executor", PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != self.parent_pid:  # it exited before the line above
                self.fail(f"the process that started this agent ({self.parent_pid}) is gone")
        if not self.public_key_file:
            self.fail("give the server's public key: --public-key=server_public.pem")
        public_key = serialization.load_pem_public_key(Path(self.public_key_file).read_bytes())
        report = probe()
        missing = unavailable(report)
        if missing and not self.allow_weaker_sandbox:
            self.fail(f"these sandbox layers cannot be applied here: {', '.join(missing)}; "
                      "run as root on Linux, or pass --allow-weaker-sandbox for a single trusted user")
        health = {"status": "ok", "image_version": image_version(), "sandbox": report,
                  "weaker_sandbox": list(missing)}
        if missing:
            log.warning("weaker_sandbox", missing=list(missing))
        asyncio.run(self.serve(public_key, health, {"skip": tuple(missing)} if missing else {}))

    async def serve(self, public_key, health: dict, sandbox_defaults: dict) -> None:
        launcher = KernelLauncher(Path(self.run_dir), UidAllocator(self.uid_first, self.uid_count),
                                  sandbox_defaults)
        await launcher.start()
        pool = WarmPool(launcher, self.pool_size)
        await pool.start()
        relays = Relays(self.ip, self.advertise_host) if self.advertise_host else None
        app = make_app(pool, public_key, health, relays=relays)
        server = httpserver.HTTPServer(app, max_body_size=MAX_DATASET_BYTES)
        if self.socket_fd >= 0:
            listening = socket.socket(fileno=self.socket_fd)
            listening.setblocking(False)
            sockets = [listening]
        else:
            sockets = bind_sockets(self.port, self.ip)
        server.add_sockets(sockets)
        host, port = sockets[0].getsockname()[:2]
        log.info("executor_started", url=f"http://{host}:{port}", pool_size=self.pool_size)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        await app.settings["exits"].close()
        if relays is not None:
            await relays.close_all()
        await pool.close()
        await launcher.close()
        log.info("executor_stopped")
