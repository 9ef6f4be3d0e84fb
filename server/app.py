"""The ``bi`` command: one traitlets application per subcommand, configured the same way.

Configuration comes from, weakest first: the environment (``environment.py``),
``bi_config.py`` in the working directory (or ``--config``), and
``--Class.trait=value`` flags. ``BIApp`` holds what every subcommand shares
(data directory, store); the subcommands add their own traits.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any, cast
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tornado import web
from tornado.netutil import bind_sockets
from traitlets import Bool, Enum, Float, Integer, List, Type, Unicode, default
from traitlets.config import Application

from . import kernel_keys, limits, secrets_file
from .bus import LocalBus, RedisBus, make_bus
from .client_address import TrustedProxies
from .environment import setting
from .errors import BIError
from .execution.agent_client import AgentClient, load_private_key
from .execution.records import KernelRecords
from .execution.discovery import EcsExecutors, StaticExecutors
from .execution.live import LiveSessions
from .execution.local_agent import LocalAgent, LocalAgentError, load_or_create_key, load_or_create_key_pair
from .execution.pool import KernelPool
from .handlers.base import NotFoundHandler
from .handlers.socket_base import UserSockets
from .handlers.system import MetricsHandler
from .http_server import BIHTTPServer
from .jupyter.manager import JupyterKernels
from .jupyter.sessions import JupyterSessions
from .logs import configure_logging, get_logger
from .metrics import Metrics
from .private_files import private_dir
from .models import User
from .services import audit
from .services.audit import AuditLog
from .services.record_memory import RecordMemory
from .services.auth import AuthService, SecretKeyError, check_signing_key
from .services.card_runs import CardRunner
from .services.cards import CardService
from .services.dashboard_live import DashboardHub
from .services.dashboards import DashboardService
from .services.output_tables import OutputTables
from .services.readiness import ReadinessService
from .services.revocations import Revocations
from .services.session_rights import SessionRights
from .services.datasets import DatasetService
from .services.idempotency import IdempotencyService
from .services.users import UserService
from .storage.aws import AWSStore
from .storage.base import Store
from .storage.sqlite import BLOB_DIR, DATASET_BLOBS, SQLiteStore
from .urls import url_specs

log = get_logger("bi.app")

INITIAL_ADMIN_EMAIL = "admin@bi.local"
UPLOAD_CHUNK_BYTES = 1024 * 1024  # fewer, larger reads of request bodies (Tornado's default is 64 KiB)


class StartupError(Exception):
    """The server cannot start; the message says what to fix."""


class BIApp(Application):
    name = "bi"
    description = "The Python-cards BI platform."
    version = "0.1.0"

    data_dir = Unicode(help="Directory for local state: the SQLite file, blobs, keys, temp files.").tag(config=True)
    store = Enum(["embedded", "aws"], help="Storage backend: embedded (SQLite + files) or aws (DynamoDB + S3).").tag(config=True)
    embedded_store_class = Type(SQLiteStore, klass=Store, help="Store used for --store=embedded.").tag(config=True)
    aws_store_class = Type(AWSStore, klass=Store, help="Store used for --store=aws.").tag(config=True)
    config_file = Unicode("bi_config.py", help="Python config file to load.").tag(config=True)

    aliases = {
        "data-dir": "BIApp.data_dir",
        "store": "BIApp.store",
        "config": "BIApp.config_file",
        "log-level": "Application.log_level",
    }
    flags: dict[str, Any] = {}

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return setting("BI_DATA_DIR", "./data")

    @default("store")
    def _default_store(self) -> str:
        return setting("BI_STORE", "embedded")

    subcommands = {
        "serve": ("server.app.ServeApp", "Start the API server."),
        "executor": ("kernels.agent_app.ExecutorApp", "Start the executor agent (sandboxed kernel pool)."),
        "init-tables": ("server.app.InitTablesApp", "Create the store's tables and buckets (idempotent)."),
        "executor-key": ("server.app.ExecutorKeyApp", "Create the key pair that signs calls to executor agents."),
        "user": ("server.app.UserApp", "Manage users: bi user add."),
        "dashboards": ("server.dashboards_cli.DashboardsApp", "Export and import dashboards: bi dashboards export|import."),
        "fsck": ("server.fsck_cli.FsckApp", "Check the store for what faults left behind; --repair fixes it."),
    }

    def initialize(self, argv: list[str] | None = None) -> None:
        self.parse_command_line(argv)
        if self.subapp is not None:
            return
        config_path = Path(self.config_file)
        if config_path.exists() or self.config_file != "bi_config.py":
            self.load_config_file(config_path.name, path=[str(config_path.parent.resolve())])

    def start(self) -> None:
        if self.subapp is not None:
            configure_logging(cast(int, self.subapp.log_level))  # kernels/ (bi executor) cannot import server/
            self.subapp.start()
        else:
            self.print_subcommands()
            self.exit(2)

    def make_store(self) -> Store:
        chosen = self.embedded_store_class if self.store == "embedded" else self.aws_store_class
        cls = cast(Callable[..., Store], chosen)
        return cls(parent=self, data_dir=str(Path(self.data_dir).resolve()))

    def fail(self, message: str) -> None:
        sys.stderr.write(f"bi: error: {message}\n")
        self.exit(2)


class ServeApp(BIApp):
    """``bi serve``: the Tornado API server."""

    description = "Start the API server."
    ip = Unicode("127.0.0.1", help="Address to listen on.").tag(config=True)
    port = Integer(8000, help="Port to listen on (0 picks a free one).").tag(config=True)
    cors_origins = List(Unicode(), help="Origins allowed to call the API from a browser.").tag(config=True)
    trusted_proxies = List(Unicode(), help="CIDRs of the proxies in front of the server (the load balancer's "
                                           "subnets): their X-Forwarded-For names the client. Empty: none, "
                                           "the connection's address is the client's.").tag(config=True)
    header_timeout = Float(limits.HEADER_TIMEOUT, help="Seconds a new connection has to send its request's "
                                                       "headers.").tag(config=True)
    body_timeout = Float(limits.BODY_TIMEOUT, help="Seconds a request has to send its whole body.").tag(config=True)
    idle_timeout = Float(limits.IDLE_TIMEOUT, help="Seconds a kept-alive connection may wait for its next "
                                                   "request.").tag(config=True)
    max_connections_per_client = Integer(limits.CONNECTIONS_PER_CLIENT, help="Connections one client address "
                                         "may hold open; more are closed at once.").tag(config=True)
    max_sockets_per_user = Integer(limits.SOCKETS_PER_USER, min=1, help="Websockets one user may hold open on "
                                   "this process, every kind together (dashboards, card editors, Jupyter "
                                   "channels); more are refused with 429 before the upgrade.").tag(config=True)
    admin_email = Unicode(help="Admin created on first start when the store has no user.").tag(config=True)
    admin_password = Unicode(help="Password of that admin.").tag(config=True)
    shutdown_timeout = Integer(10, help="Seconds open requests get to finish on shutdown.").tag(config=True)
    executor_urls = List(Unicode(), help="Base URLs of remote executor agents (http://10.0.3.7:8080).").tag(config=True)
    executor_private_key = Unicode(help="PEM of the Ed25519 key that signs calls to executor agents; "
                                        "embedded mode keeps one in the data dir.").tag(config=True)
    executor_private_key_file = Unicode(help="File holding that PEM instead (bi executor-key makes one).").tag(config=True)
    executor_ecs_cluster = Unicode(help="ECS cluster of the executor service (discovery through the ECS API).").tag(config=True)
    executor_ecs_service = Unicode(help="ECS service whose running tasks are the executor agents.").tag(config=True)
    executor_port = Integer(8080, help="Port of the agents found through ECS.").tag(config=True)
    local_executor = Bool(True, help="In embedded mode without executor_urls, start an executor agent "
                                     "beside the server (needs root to sandbox kernels).").tag(config=True)
    local_executor_pool_size = Integer(2, help="Ready kernels the local agent keeps warm.").tag(config=True)
    ui_dir = Unicode(help="Directory of the built web UI (index.html and assets/).").tag(config=True)
    allow_weaker_sandbox = Bool(False, help="Let the local agent run without the sandbox layers this "
                                            "machine lacks (one trusted user only).").tag(config=True)
    metrics_token = Unicode(help="Bearer token that reads /metrics on the API port; empty: closed there.").tag(config=True)
    redis_url = Unicode(help="Redis (ElastiCache, Valkey) that carries the bus between API tasks: redis:// or "
                             "rediss:// (TLS), with the AUTH password in it; empty: the in-process bus (one "
                             "task).").tag(config=True)
    kernel_keys = Unicode(help="The keys that seal kernels' HMAC keys in the store, so that another API task can "
                               "reattach to a kernel (kernel_keys.py): secrets of 32 or more characters, comma "
                               "separated, the current one first, the previous one second during a rotation; "
                               "embedded mode keeps one in the data dir.").tag(config=True)
    kernel_keys_file = Unicode(help="File holding those keys instead (bi executor-key --kernel-keys makes "
                                    "one).").tag(config=True)
    audit_events_per_window = Integer(limits.AUDIT_EVENTS_PER_WINDOW, help="Audit rows of one event one user "
                                      "may add per window; the rest become one counted row.").tag(config=True)
    audit_window_seconds = Float(limits.AUDIT_WINDOW_SECONDS, help="Seconds of that window.").tag(config=True)
    metrics_port = Integer(None, allow_none=True, help="Port of a listener on the same address serving only "
                                                       "/metrics, without a token (0 picks a free one); "
                                                       "None: no such listener.").tag(config=True)

    datasets: DatasetService | None = None

    aliases = {**BIApp.aliases, "ip": "ServeApp.ip", "port": "ServeApp.port"}
    flags = {"allow-weaker-sandbox": ({"ServeApp": {"allow_weaker_sandbox": True}},
                                      "Run the local executor agent with a weaker sandbox (one trusted user).")}
    subcommands: dict[str, Any] = {}

    @default("cors_origins")
    def _default_cors(self) -> list[str]:
        return [o.strip() for o in setting("CORS_ORIGINS").split(",") if o.strip()]

    @default("trusted_proxies")
    def _default_trusted_proxies(self) -> list[str]:
        return [c.strip() for c in setting("BI_TRUSTED_PROXIES").split(",") if c.strip()]

    @default("ui_dir")
    def _default_ui_dir(self) -> str:
        return setting("BI_UI_DIR", str(Path(__file__).resolve().parent.parent / "static" / "dist"))

    @default("executor_urls")
    def _default_executor_urls(self) -> list[str]:
        return [u.strip() for u in setting("BI_EXECUTOR_URLS").split(",") if u.strip()]

    @default("executor_private_key")
    def _default_executor_private_key(self) -> str:
        return setting("BI_EXECUTOR_PRIVATE_KEY")

    @default("executor_private_key_file")
    def _default_executor_private_key_file(self) -> str:
        return setting("BI_EXECUTOR_PRIVATE_KEY_FILE")

    @default("executor_ecs_cluster")
    def _default_executor_ecs_cluster(self) -> str:
        return setting("BI_EXECUTOR_ECS_CLUSTER")

    @default("executor_ecs_service")
    def _default_executor_ecs_service(self) -> str:
        return setting("BI_EXECUTOR_ECS_SERVICE")

    @default("redis_url")
    def _default_redis_url(self) -> str:
        return setting("BI_REDIS_URL")

    @default("kernel_keys")
    def _default_kernel_keys(self) -> str:
        return setting("BI_KERNEL_KEYS")

    @default("kernel_keys_file")
    def _default_kernel_keys_file(self) -> str:
        return setting("BI_KERNEL_KEYS_FILE")

    @default("metrics_token")
    def _default_metrics_token(self) -> str:
        return setting("BI_METRICS_TOKEN")

    @default("metrics_port")
    def _default_metrics_port(self) -> int | None:
        port = setting("BI_METRICS_PORT").strip()
        return int(port) if port else None

    @default("admin_email")
    def _default_admin_email(self) -> str:
        return setting("BI_ADMIN_EMAIL")

    @default("admin_password")
    def _default_admin_password(self) -> str:
        return setting("BI_ADMIN_PASSWORD")

    async def setup(self) -> web.Application:
        """Open the store, check the signing key, create the first admin, build the Tornado app."""
        try:
            self.proxies = TrustedProxies(self.trusted_proxies)
        except ValueError as exc:
            raise StartupError(f"BI_TRUSTED_PROXIES: {exc}") from exc
        private_dir(Path(self.data_dir).resolve())
        self.store_instance = self.make_store()
        await self.store_instance.open()
        audit.limit_rate(self.store_instance, self.audit_events_per_window, self.audit_window_seconds)
        audit.write_behind(self.store_instance)
        try:
            auth = self._make_auth()
            records = self._kernel_records()
        except BaseException:
            await self.store_instance.close()
            raise
        self.bus = make_bus(self.redis_url, parent=self)
        auth.user_cache.listen(self.bus)
        self.revocations = Revocations(self.bus, auth.lost, parent=self)
        auth.revoked.append(self.revocations.revoke)
        users = UserService(self.store_instance, auth)
        await self._ensure_first_admin(users)
        memory = RecordMemory(self.store_instance, auth.user_cache, parent=self)
        memory.listen(self.bus)
        datasets = self.datasets = DatasetService(self.store_instance, Path(self.data_dir).resolve() / "tmp",
                                                  memory, parent=self)
        datasets.sweep_uploads()
        metrics = Metrics()
        self.store_instance.failed.append(metrics.store_failed)
        self.store_instance.retried.append(metrics.store_attempt_failed)
        self.metrics_server: BIHTTPServer | None = None
        try:
            self.metrics_server = self._serve_metrics(metrics)
            executors, make_client = await self._start_executors()
        except BaseException:
            if self.metrics_server is not None:
                self.metrics_server.stop()
            await self.store_instance.close()
            raise
        cards = CardService(self.store_instance, datasets, parent=self)
        dashboards = DashboardService(self.store_instance, cards, datasets, parent=self)
        tables = OutputTables(self.store_instance, cards, Path(self.data_dir).resolve() / "tmp" / "tables", parent=self)
        self.kernel_pool = KernelPool(executors, make_client, metrics.registry, tables, self.bus, parent=self)
        self.kernel_pool.records = records
        await self.kernel_pool.start()
        self.agent_keeper: asyncio.Task[None] | None = None
        if self.local_agent is not None and isinstance(executors, StaticExecutors):
            self.agent_keeper = asyncio.create_task(
                self.local_agent.keep_running(executors, self.kernel_pool))
        self.jupyter_kernels = JupyterKernels(self.kernel_pool, datasets, parent=self)
        self.live_sessions = LiveSessions(self.kernel_pool, parent=self)
        session_rights = SessionRights(self.store_instance, cards, self.kernel_pool)
        dashboards.revoked.append(session_rights.revoked)
        card_runs = self.card_runs = CardRunner(self.store_instance, cards, self.kernel_pool, tables, self.bus,
                                                parent=self)
        self.dashboard_hub = DashboardHub(self.store_instance, dashboards, card_runs, tables, self.bus, parent=self)
        self.revocations.sweeps += [session_rights.sweep, self.dashboard_hub.recheck]
        self.revocations.holders.append(lambda: {session.user_id for session in self.kernel_pool.sessions.values()})
        await self.bus.start()
        self.dashboard_hub.start()
        self.revocations.start()
        return web.Application(
            url_specs(),
            default_handler_class=NotFoundHandler,
            auth=auth, users=users, datasets=datasets, metrics=metrics, kernel_pool=self.kernel_pool,
            cards=cards, card_runs=card_runs, dashboards=dashboards, dashboard_hub=self.dashboard_hub,
            live_sessions=self.live_sessions, output_tables=tables, audit=AuditLog(self.store_instance),
            user_sockets=UserSockets(self.max_sockets_per_user),
            session_rights=session_rights, revocations=self.revocations,
            readiness=ReadinessService(self.store_instance, self.kernel_pool, self.bus, parent=self),
            idempotency=IdempotencyService(self.store_instance, parent=self),
            jupyter_kernels=self.jupyter_kernels,
            jupyter_sessions=JupyterSessions(self.jupyter_kernels, parent=self),
            cors_origins=tuple(self.cors_origins), trusted_proxies=self.proxies,
            metrics_token=self.metrics_token,
            ui_dir=self.ui_dir,
            compress_response=True,
            log_function=lambda handler: None,
        )

    def _kernel_records(self) -> KernelRecords | None:
        """Where sessions' kernels are recorded for another task to reattach to them: with the configured
        kernel keys, or in embedded mode one kept in the data dir; None (no failover) on AWS without keys."""
        embedded = self.store == "embedded"
        if not (self.kernel_keys or self.kernel_keys_file or embedded):
            log.warning("kernel_failover_off", reason="set BI_KERNEL_KEYS or BI_KERNEL_KEYS_FILE")
            return None
        try:
            keys = kernel_keys.load(self.kernel_keys, self.kernel_keys_file,
                                    Path(self.data_dir).resolve() if embedded else None)
        except kernel_keys.KernelKeyError as exc:
            raise StartupError(f"bad kernel keys: {exc}") from exc
        return KernelRecords(self.store_instance, keys)

    def _serve_metrics(self, metrics: Metrics) -> BIHTTPServer | None:
        """The listener serving only ``/metrics`` to whoever reaches ``ip:metrics_port``, if there is one."""
        self.metrics_url = ""
        if self.metrics_port is None:
            return None
        app = web.Application([(r"/metrics", MetricsHandler, {"endpoint": "/metrics"})],
                              default_handler_class=NotFoundHandler, metrics=metrics, metrics_open=True,
                              log_function=lambda handler: None)
        try:
            sockets = bind_sockets(self.metrics_port, self.ip)
        except OSError as exc:
            raise StartupError(f"cannot listen for metrics on {self.ip}:{self.metrics_port}: {exc.strerror}") from exc
        server = self.make_http_server(app)
        server.add_sockets(sockets)
        self.metrics_url = f"http://{self.ip}:{sockets[0].getsockname()[1]}/metrics"
        log.info("metrics_listener_started", url=self.metrics_url)
        return server

    async def _start_executors(self) -> tuple[StaticExecutors | EcsExecutors, Callable[[str], AgentClient]]:
        """Where the executor agents are, and how to call one; in embedded mode, a local agent started now."""
        self.local_agent: LocalAgent | None = None
        data_dir = Path(self.data_dir).resolve()
        remote = bool(self.executor_urls or self.executor_ecs_service)
        key = self._executor_key(data_dir, remote)
        make_client = functools.partial(AgentClient, private_key=key)
        if self.executor_ecs_service:
            if not self.executor_ecs_cluster:
                raise StartupError("Set BI_EXECUTOR_ECS_CLUSTER together with BI_EXECUTOR_ECS_SERVICE.")
            executors = EcsExecutors(self.executor_ecs_cluster, self.executor_ecs_service, self.executor_port,
                                     region=setting("AWS_REGION") or None)
            return executors, make_client
        if self.executor_urls:
            return StaticExecutors(self.executor_urls), make_client
        none = StaticExecutors([])
        if self.store != "embedded" or not self.local_executor:
            log.warning("card_execution_off", reason="no executor agent configured")
            return none, make_client
        if os.geteuid() != 0:
            log.warning("card_execution_off", reason="the local executor agent needs root to sandbox kernels")
            return none, make_client
        dataset_root = data_dir / BLOB_DIR / DATASET_BLOBS  # the agent links these files into its kernels
        self.local_agent = LocalAgent(data_dir, self.local_executor_pool_size, self.allow_weaker_sandbox,
                                      message_bytes=self._kernel_message_bytes(), dataset_root=dataset_root)
        try:
            client = await self.local_agent.start(key)
        except LocalAgentError as exc:
            raise StartupError(str(exc)) from exc
        client.close()
        return StaticExecutors([client.base_url]), functools.partial(make_client, dataset_root=dataset_root)

    def _kernel_message_bytes(self) -> int:
        """``KernelPool.kernel_message_bytes`` as configured: the local agent, started before the pool, bounds
        each whole kernel message by it (the pool's sockets, only each part)."""
        return int(self.config.KernelPool.get("kernel_message_bytes", KernelPool.kernel_message_bytes.default_value))

    def _executor_key(self, data_dir: Path, remote: bool) -> Ed25519PrivateKey:
        """The key that signs agent calls: configured, or in embedded mode kept in the data dir."""
        pem = self.executor_private_key
        try:
            if not pem and self.executor_private_key_file:
                pem = Path(self.executor_private_key_file).read_text()
            if pem:
                return load_private_key(pem)
        except (OSError, ValueError) as exc:
            raise StartupError(f"bad executor signing key: {exc}") from exc
        if remote:
            raise StartupError("Set BI_EXECUTOR_PRIVATE_KEY (Ed25519 PEM) or BI_EXECUTOR_PRIVATE_KEY_FILE "
                               "to call the executor agents.")
        if self.store == "embedded":
            return load_or_create_key(data_dir)
        return Ed25519PrivateKey.generate()  # no agent to call: card execution is off

    async def shutdown(self, keep_kernels: bool = False) -> None:
        """Close live dashboards, finish caching the results of card runs answered, close sessions (their kernels,
        unless ``keep_kernels``: then the recorded ones are left on their agents for another task to reattach to),
        stop the local agent, close the store."""
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.agent_keeper is not None:
            self.agent_keeper.cancel()
            await asyncio.gather(self.agent_keeper, return_exceptions=True)
        await self.revocations.stop()
        await self.dashboard_hub.stop()
        await self.card_runs.settled()  # the results of runs answered are cached before the store closes
        await self.kernel_pool.close(keep_kernels)
        await self.bus.close()
        if self.local_agent is not None:
            await self.local_agent.stop()
        await audit.flush(self.store_instance)
        await self.store_instance.close()

    def _make_auth(self) -> AuthService:
        """The auth service with the configured key, or in embedded mode one kept in the data dir."""
        auth = AuthService(self.store_instance, parent=self)
        if not auth.jwt_secret_key:
            if self.store != "embedded":
                raise StartupError("Set JWT_SECRET_KEY (at least 32 characters) to run with --store=aws.")
            path = Path(self.data_dir).resolve() / "jwt_secret_key"
            auth.jwt_secret_key, created = secrets_file.read_or_create(path)
            if created:
                log.info("signing_key_created", path=str(path))
        try:
            check_signing_key(auth.jwt_secret_key)
        except SecretKeyError as exc:
            raise StartupError(str(exc)) from exc
        return auth

    async def _ensure_first_admin(self, users: UserService) -> None:
        admin = await users.ensure_first_admin(self.admin_email, self.admin_password)
        if admin is not None:
            log.info("admin_created", email=admin.email)
        elif self.store == "embedded" and not await users.any_user():
            path = Path(self.data_dir).resolve() / "initial_admin_password"
            password, _ = secrets_file.read_or_create(path, lambda: secrets.token_urlsafe(12))
            await users.ensure_first_admin(INITIAL_ADMIN_EMAIL, password)
            log.info("initial_admin_created", email=INITIAL_ADMIN_EMAIL, password_file=str(path))

    async def serve(self) -> None:
        app = await self.setup()
        try:
            sockets = bind_sockets(self.port, self.ip)
        except OSError as exc:
            await self.shutdown()
            raise StartupError(f"cannot listen on {self.ip}:{self.port}: {exc.strerror}") from exc
        server = self.make_http_server(app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        url = f"http://{self.ip}:{port}"
        log.info("server_started", url=url, store=self.store, data_dir=str(Path(self.data_dir).resolve()))
        self._print_banner(url)
        loop = asyncio.get_running_loop()
        stopping: asyncio.Future[signal.Signals] = loop.create_future()

        def stop(sig: signal.Signals) -> None:
            if not stopping.done():
                stopping.set_result(sig)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        # SIGTERM (a rolling deploy, ECS or compose stopping the task) leaves the kernels of remote agents
        # to the next task; SIGINT (Ctrl+C) ends them
        keep_kernels = await stopping == signal.SIGTERM and self.local_agent is None
        log.info("server_stopping", keep_kernels=keep_kernels)
        server.stop()
        try:
            await asyncio.wait_for(server.close_all_connections(), self.shutdown_timeout)
        except TimeoutError:
            log.warning("connections_not_closed_in_time", timeout=self.shutdown_timeout)
        await self.shutdown(keep_kernels)
        log.info("server_stopped")

    def make_http_server(self, app: web.Application) -> BIHTTPServer:
        """The HTTP server for ``app`` with the configured timeouts and connection cap."""
        return BIHTTPServer(app, trusted_proxies=self.proxies, header_timeout=self.header_timeout,
                            idle_timeout=self.idle_timeout, body_timeout=self.body_timeout,
                            max_connections_per_client=self.max_connections_per_client,
                            max_body_size=limits.PUBLIC_BODY_BYTES, max_header_size=limits.HEADER_BYTES,
                            chunk_size=UPLOAD_CHUNK_BYTES)

    def _print_banner(self, url: str) -> None:
        lines = [f"BI is running at {url}"]
        if self.store == "embedded" and not self.admin_email:
            path = Path(self.data_dir) / "initial_admin_password"
            if path.exists():
                lines.append(f"Sign in as {INITIAL_ADMIN_EMAIL} with the password in {path}")
        lines.append("Press Ctrl+C to stop.")
        sys.stderr.write("\n".join(lines) + "\n")

    def start(self) -> None:
        try:
            asyncio.run(self.serve())  # returns once the conversions still running have ended
        except StartupError as exc:
            self.fail(str(exc))
        finally:
            if self.datasets is not None:
                self.datasets.sweep_uploads()




class InitTablesApp(BIApp):
    """``bi init-tables``: create the store's tables and buckets; safe to run again."""

    description = "Create the store's tables and buckets (idempotent)."
    only = Enum(["", "tables", "buckets"], "", help="Create only the tables, or only the buckets.").tag(config=True)
    aliases = {**BIApp.aliases, "only": "InitTablesApp.only"}
    subcommands: dict[str, Any] = {}

    def start(self) -> None:
        configure_logging(cast(int, self.log_level))
        asyncio.run(self._create())

    async def _create(self) -> None:
        store = self.make_store()
        await store.create_schema(tables=self.only != "buckets", buckets=self.only != "tables")
        await store.close()
        log.info("tables_ready", store=self.store, only=self.only or "all")


class ExecutorKeyApp(BIApp):
    """``bi executor-key --private FILE --public FILE``: the key pair between the server and its agents."""

    description = ("Create the Ed25519 key that signs the server's calls to executor agents (kept if it "
                   "exists) and write its public half, which the agents verify with.")
    private_file = Unicode("executor_key.pem", help="The private key (mode 0600): the server's "
                                                    "BI_EXECUTOR_PRIVATE_KEY(_FILE).").tag(config=True)
    public_file = Unicode("executor_key.pub.pem", help="The public key: the agents' --public-key or "
                                                      "BI_EXECUTOR_PUBLIC_KEY.").tag(config=True)
    kernel_keys_file = Unicode("", help="Also make this file of the key that seals kernels' HMAC keys in the "
                                        "store (the API's BI_KERNEL_KEYS_FILE), kept if it exists.").tag(config=True)
    aliases = {**BIApp.aliases, "private": "ExecutorKeyApp.private_file", "public": "ExecutorKeyApp.public_file",
               "kernel-keys": "ExecutorKeyApp.kernel_keys_file"}
    subcommands: dict[str, Any] = {}

    def start(self) -> None:
        configure_logging(cast(int, self.log_level), sys.stderr)
        try:
            load_or_create_key_pair(Path(self.private_file), Path(self.public_file))
            if self.kernel_keys_file:
                secrets_file.read_or_create(Path(self.kernel_keys_file), kernel_keys.new_secret)
        except (OSError, ValueError) as exc:
            self.fail(f"cannot make the executor key pair: {exc}")
        log.info("executor_key_ready", private=self.private_file, public=self.public_file,
                 kernel_keys=self.kernel_keys_file or None)


class UserAddApp(BIApp):
    """``bi user add EMAIL --name NAME [--role admin|member] [--password-stdin]``."""

    description = "Add a user to the store. The password is prompted for, or read from stdin."
    user_name = Unicode(help="The user's display name (default: the part of the email before @).").tag(config=True)
    role = Enum(["admin", "member"], "member", help="The user's role.").tag(config=True)
    password_stdin = Bool(False, help="Read the password from the first line of stdin.").tag(config=True)

    aliases = {**BIApp.aliases, "name": "UserAddApp.user_name", "role": "UserAddApp.role"}
    flags = {"password-stdin": ({"UserAddApp": {"password_stdin": True}}, "Read the password from stdin.")}
    subcommands: dict[str, Any] = {}

    def start(self) -> None:
        configure_logging(cast(int, self.log_level), sys.stderr)
        if len(self.extra_args) != 1:
            self.fail("give exactly one email: bi user add ana@example.com --name Ana")
        email = self.extra_args[0]
        try:
            user = asyncio.run(self._add(email, self._password()))
        except BIError as exc:
            self.fail(exc.message)
        sys.stdout.write(f"Added {user.role} {user.email} ({user.id}).\n")

    def _password(self) -> str:
        if self.password_stdin:
            return sys.stdin.readline().rstrip("\n")
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            self.fail("the passwords differ")
        return first

    async def _add(self, email: str, password: str) -> User:
        store = self.make_store()
        await store.open()
        try:
            auth = AuthService(store, parent=self, jwt_secret_key="")
            return await UserService(store, auth).create(
                email, self.user_name or email.split("@")[0], self.role, password)
        finally:
            await store.close()


class UserApp(BIApp):
    description = "Manage users."
    subcommands = {"add": ("server.app.UserAddApp", "Add a user.")}


BIApp.classes = [BIApp, ServeApp, InitTablesApp, ExecutorKeyApp, UserAddApp, AuthService, DatasetService,
                 KernelPool, LiveSessions, JupyterKernels, JupyterSessions, DashboardHub, OutputTables, CardRunner,
                 SQLiteStore, AWSStore, LocalBus, RedisBus, Revocations]
