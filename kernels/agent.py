"""The executor agent: an HTTP service (default :8080) that hands out sandboxed kernels.

Routes (all but ``/health`` need ``Authorization: Bearer <jwt>``, a short-lived EdDSA token
signed by the server; the agent holds only the public key, so nothing here can forge a call):

    GET    /health                              {"status": "ok" or "draining", "image_version", "sandbox": {...},
                                                 "pool": {...}, "tenancy", "capacity", "in_use", "spares",
                                                 "tenant", "draining"}
    POST   /kernels  [{"tenant": "...",         201 {"kernel_id", "connection": {jupyter connection info},
                   "spare": "<kernel id>"}]          "limits": {"memory_mb"}, "agent_id"}; 400, 409 or 503 when
                                                 ``kernels.admission`` refuses the tenant. With ``spare``, that
                                                 spare if it still is one (the server is connected already),
                                                 else a fresh kernel (and the spare, if dead, is destroyed)
    POST   /kernels/spare                       201, the same of a warm kernel relayed ahead of need and handed
                                                 to no tenant (no capacity counts it); 503 when draining or
                                                 holding (or starting) as many spares as its capacity, 409 when
                                                 a single-tenant agent turned to another tenant meanwhile.
                                                 Datasets reach a kernel only once handed out (409 before)
    GET    /kernels/{id}                        {"kernel_id", "alive", "exit": null or {"status", "oom", "code",
                                                 "message"}} (``code``: the bound the agent stopped it for)
    DELETE /kernels/{id}                        204, the kernel is destroyed
    GET    /events?after=N&timeout=S            {"agent_id", "last", "events": [kernels that ended by
                                                 themselves, after N]}, waiting up to S (<= 60) s for one
    POST   /kernels/{id}/interrupt              204, SIGINT reaches the kernel
    POST   /kernels/{id}/gap                    {"messages": [[frame, ...] base64, ...], "lost": n}: what the
                                                 kernel published while no server was attached (``kernels.gap``),
                                                 taken once by the server that reattaches; 404 if none is kept
    PUT    /kernels/{id}/datasets/{name}        204, the body (Parquet, streamed, at most ``DATASET_BYTES``)
           [?version=V]                          becomes load_dataset(name), and with ``version`` (64 hex digits
                                                 naming that content) is kept in the agent's cache
                                                 (``kernels.dataset_cache``); 413 past the limit
    PUT    /kernels/{id}/datasets/{name}/same-as/{other}
                                                 204, load_dataset(name) reads the dataset placed as ``other``
                                                 (a renamed dataset's earlier name: a hard link, no second
                                                 copy); 404 if there is none
    POST   /kernels/{id}/datasets/{name}/link   {"version": V} or, on an agent started with ``--dataset-root``,
                                                 {"file": path under that root}: place that file or cached
                                                 version without the bytes crossing the network ->
                                                 {"placed": true, "mechanism": "hard_link" or "copy",
                                                 "bytes_copied"}, or {"placed": false} (not cached: PUT it)
    GET    /kernels/{id}/tables/{name}          the table file the kernel wrote for a shown DataFrame, once
                                                 (``kernels.table_files``); 404, 409 or 413
    GET    /usage                               {"cpu_seconds": {kernel id: CPU seconds it has used}} of the
                                                 live kernels (``kernels.usage``)

Errors are ``{"error": {"code", "message"}}`` with 401, 404, 400, 409 or 503.

A kernel no server has been attached to for ``orphan_seconds`` (its server died and none reattached) is
destroyed (``reap_orphans``): no server is left to cull it for idleness. A kernel whose folders on the
agent's disk pass their bounds is killed (``stop_over_disk``, ``kernels.disk_bounds``).

The server never reaches a kernel's own sockets: ``POST /kernels`` relays them (``kernels.relay``,
which bounds every message the kernel sends) and returns the relay's connection info: ``ipc`` on
unix sockets only the agent's uid can reach (the server runs on this host), or, when the agent was
started with ``--relay`` (or ``--advertise-host``), ``tcp`` on ports of the agent's address with the
advertised host (else that address). ``DELETE`` closes the relay first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import errno
import json
import os
import re
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import structlog
from tornado import web
from tornado.http1connection import HTTP1Connection

from . import disk_bounds
from .admission import Admission, AdmissionError
from .dataset_cache import VERSION, DatasetCache
from .events import ExitLog
from .helpers import SUFFIX, dataset_filename
from .launcher import KernelLauncher, LaunchedKernel
from .limits import DATASET_BYTES, DATASET_CACHE_BYTES
from .pool import WarmPool
from .relay import Relays
from .table_files import TableFileError, open_table
from .usage import kernel_cpu_seconds
from .wire import TABLE_FILE_NAME

log = structlog.get_logger("bi.executor")

ISSUER = "bi-server"
AUDIENCE = "bi-executor"
MAX_TOKEN_LIFETIME = 300
MAX_POLL_SECONDS = 60
ORPHAN_CHECK_SECONDS = 30
IN_FLIGHT_POLL_SECONDS = 0.01
TABLE_CHUNK = 1 << 20
KERNEL_ID = re.compile(r"[0-9a-f]{32}")
CACHE_DIRECTORY = "dataset-cache"  # in the run directory (kernel directories are hex)


class InFlight:
    """The requests the agent is answering, so that it exits only once each answer has gone out.

    A request counts from ``prepare`` until its response is written to the socket (or its client
    has gone): the last ``DELETE`` of a draining agent ends the drain before it has answered.
    """

    def __init__(self) -> None:
        self._handlers: set[web.RequestHandler] = set()
        self._writes: set[asyncio.Future[None]] = set()

    def begin(self, handler: web.RequestHandler) -> None:
        self._handlers.add(handler)

    def end(self, handler: web.RequestHandler, written: asyncio.Future[None] | None = None) -> None:
        self._handlers.discard(handler)
        if written is not None and not written.done():
            self._writes.add(written)
            written.add_done_callback(self._written)

    def _written(self, written: asyncio.Future[None]) -> None:
        self._writes.discard(written)
        if not written.cancelled():
            written.exception()  # a client that went away is no error here

    async def finished(self, timeout: float) -> None:
        """Return once no request is open and every response is written, or after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._handlers or self._writes:
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(IN_FLIGHT_POLL_SECONDS)


class AgentHandler(web.RequestHandler):
    def initialize(self, pool: WarmPool, public_key: Any, health: dict[str, Any], exits: ExitLog,
                   admission: Admission, cache: DatasetCache, dataset_root: Path | None) -> None:
        self.pool = pool
        self.launcher: KernelLauncher = pool.launcher
        self.public_key = public_key
        self.health = health
        self.exits = exits
        self.admission = admission
        self.cache = cache
        self.dataset_root = dataset_root

    def prepare(self) -> None:
        self.settings["in_flight"].begin(self)
        if self.request.path != "/health":
            self._authenticate()

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> asyncio.Future[None]:
        written = super().finish(chunk)
        self.settings["in_flight"].end(self, written)
        return written

    def on_connection_close(self) -> None:
        self.settings["in_flight"].end(self)

    def _authenticate(self) -> None:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise web.HTTPError(401, "a bearer token from the server is required")
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["EdDSA"], issuer=ISSUER,
                                audience=AUDIENCE, options={"require": ["exp", "iat", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            raise web.HTTPError(401, f"bad token: {exc}") from exc
        if claims["exp"] - claims["iat"] > MAX_TOKEN_LIFETIME:
            raise web.HTTPError(401, f"tokens may live at most {MAX_TOKEN_LIFETIME} s")

    def kernel(self, kernel_id: str, handed_out: bool = False) -> LaunchedKernel:
        """The agent's kernel ``kernel_id``, or 404; ``handed_out``: one a tenant holds, or 409 (a dataset
        never reaches a spare or a warm kernel, which no tenant has yet)."""
        kernel = self.launcher.kernels.get(kernel_id)
        if kernel is None:
            raise web.HTTPError(404, f"no kernel {kernel_id}")
        if handed_out and not self.admission.holds(kernel_id):
            raise web.HTTPError(409, f"kernel {kernel_id} is not handed out: claim it with POST /kernels first")
        return kernel

    def described(self, kernel: LaunchedKernel, connection: dict[str, Any]) -> dict[str, Any]:
        """What ``POST /kernels`` answers of a kernel: how to reach it through its relay, and its limits."""
        return {"kernel_id": kernel.kernel_id, "connection": connection,
                "limits": {"memory_mb": self.launcher.memory_mb}, "agent_id": self.exits.agent_id}

    def json_body(self, shape: str) -> Any:
        """The request's body as JSON, or 400 saying it must be ``shape``."""
        try:
            return json.loads(self.request.body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's depth
            raise web.HTTPError(400, f"the body must be JSON: {shape}") from exc

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
        self.finish({"error": {"code": status_code, "message": message}})


class HealthHandler(AgentHandler):
    def get(self) -> None:
        admission = self.admission
        self.write_json({**self.health, "status": "draining" if admission.draining else self.health["status"],
                         "pool": {"ready": self.pool.ready, "size": self.pool.size},
                         "kernels": len(self.launcher.kernels), "tenancy": admission.tenancy,
                         "capacity": admission.max_kernels, "in_use": admission.in_use,
                         "spares": len(self.settings["spares"].ids()),
                         "tenant": admission.tenant, "draining": admission.draining})


class KernelsHandler(AgentHandler):
    async def post(self) -> None:
        tenant, spare = self._body()
        try:
            reservation = self.admission.reserve(tenant)
        except AdmissionError as exc:
            raise web.HTTPError(exc.status, str(exc)) from exc
        try:
            if self.admission.needs_fresh_kernels(tenant):
                await self.pool.flush()
                await self._stop_spares()
                self.cache.purge()  # nothing of the last tenant's is left for this one
            kernel = await self._claim(spare) if spare is not None else None
            if kernel is None:
                kernel = await self.pool.acquire(refill=False)
        except BaseException:
            self.admission.cancel(reservation)
            self.pool.refill()
            raise
        self.admission.hand_out(reservation, kernel.kernel_id)
        relays: Relays = self.settings["relays"]
        connection = relays.connection(kernel.kernel_id)
        try:
            if connection is None:
                connection = await relays.open(kernel.kernel_id, kernel.connection)
        except BaseException:
            await self.launcher.stop(kernel.kernel_id)
            raise
        finally:  # the replacement's fork and start (competing for the CPU and this loop) wait for the relay
            self.pool.refill()
        self.write_json(self.described(kernel, connection), 201)

    def _body(self) -> tuple[str | None, str | None]:
        """The body's optional ``tenant`` and ``spare`` (an empty body has neither)."""
        if not self.request.body.strip():
            return None, None
        body = self.json_body('{"tenant": "...", "spare": "..."}')
        body = body if isinstance(body, dict) else {}
        tenant, spare = body.get("tenant"), body.get("spare")
        if tenant is not None and not isinstance(tenant, str):
            raise web.HTTPError(400, "tenant must be a string")
        if spare is not None and not (isinstance(spare, str) and KERNEL_ID.fullmatch(spare)):
            raise web.HTTPError(400, "spare must be a kernel id (32 hex digits)")
        return tenant, spare

    async def _claim(self, kernel_id: str) -> LaunchedKernel | None:
        """The spare ``kernel_id``, a spare no more, if it is one and lives (a dead one is destroyed)."""
        spares: Spares = self.settings["spares"]
        if kernel_id not in spares.ids():
            return None
        spares.discard(kernel_id)
        if not self.launcher.is_alive(kernel_id):
            await destroy(self.settings["relays"], self.launcher, self.admission, kernel_id)
            return None
        return self.launcher.kernels[kernel_id]

    async def _stop_spares(self) -> None:
        """Destroy every spare: they lived beside the last tenant's kernels."""
        for kernel_id in self.settings["spares"].ids():
            await destroy(self.settings["relays"], self.launcher, self.admission, kernel_id)


class SpareHandler(AgentHandler):
    async def post(self) -> None:
        """A warm kernel relayed ahead of need, handed to no tenant: the server connects to it at leisure and
        claims it with ``POST /kernels {"spare": id}``. Spares count against no capacity (as warm kernels);
        an agent keeps at most its capacity of them, those being started included. A spare started while a
        single-tenant agent turned to another tenant (``WarmPool.generation``) lived beside the last one's
        kernels: it is destroyed (409), as the warm kernels were."""
        spares: Spares = self.settings["spares"]
        if self.admission.draining:
            raise web.HTTPError(503, "this executor is draining")
        if spares.count >= self.admission.max_kernels:
            raise web.HTTPError(503, f"this executor holds {self.admission.max_kernels} spare kernels already")
        generation = self.pool.generation
        with spares.starting():
            kernel = await self.pool.acquire(refill=False)
            try:
                connection = await self.settings["relays"].open(kernel.kernel_id, kernel.connection)
            except BaseException:
                await self.launcher.stop(kernel.kernel_id)
                raise
            finally:
                self.pool.refill()
            if self.pool.generation != generation:
                await destroy(self.settings["relays"], self.launcher, self.admission, kernel.kernel_id)
                raise web.HTTPError(409, "this executor turned to another user while the spare started")
        spares.add(kernel.kernel_id)
        self.write_json(self.described(kernel, connection), 201)


class Spares:
    """The kernels relayed ahead of need and handed to no tenant yet (``SpareHandler``), by id, and how many
    are being started."""

    def __init__(self, relays: Relays):
        self.relays = relays
        self._ids: set[str] = set()
        self._starting = 0

    @property
    def count(self) -> int:
        """The spares there are and those being started: what the agent's bound counts."""
        return len(self.ids()) + self._starting

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Count a spare being started while the block runs."""
        self._starting += 1
        try:
            yield
        finally:
            self._starting -= 1

    def add(self, kernel_id: str) -> None:
        self._ids.add(kernel_id)

    def discard(self, kernel_id: str) -> None:
        self._ids.discard(kernel_id)

    def ids(self) -> list[str]:
        """The spares whose relay is open (those destroyed since are forgotten)."""
        self._ids &= set(self.relays.relays)
        return list(self._ids)


class KernelHandler(AgentHandler):
    def get(self, kernel_id: str) -> None:
        kernel = self.kernel(kernel_id)
        ended = kernel.exit and {**dataclasses.asdict(kernel.exit),
                                 "message": kernel.exit.describe(self.launcher.memory_mb)}
        self.write_json({"kernel_id": kernel_id, "alive": self.launcher.is_alive(kernel_id), "exit": ended})

    async def delete(self, kernel_id: str) -> None:
        self.kernel(kernel_id)
        await destroy(self.settings["relays"], self.launcher, self.admission, kernel_id)
        self.set_status(204)


async def destroy(relays: Relays, launcher: KernelLauncher, admission: Admission, kernel_id: str) -> None:
    """Close the kernel's relay, stop it and free its place."""
    await relays.close(kernel_id)
    await launcher.stop(kernel_id)
    admission.release(kernel_id)


async def reap_orphans(relays: Relays, launcher: KernelLauncher, admission: Admission, seconds: float) -> None:
    """Destroy, for ever, the kernels no server has been attached to for ``seconds``: their server died and
    none reattached, so none will cull them for idleness."""
    while True:
        await asyncio.sleep(min(seconds / 4, ORPHAN_CHECK_SECONDS))
        for kernel_id in relays.orphans(seconds):
            log.warning("kernel_orphaned", kernel_id=kernel_id, seconds=seconds)
            await destroy(relays, launcher, admission, kernel_id)


async def stop_over_disk(launcher: KernelLauncher) -> None:
    """Kill, for ever, the kernels whose folders on the agent's disk pass their bounds (``disk_bounds``)."""
    while True:
        await asyncio.sleep(disk_bounds.CHECK_SECONDS)
        for kernel in launcher.on_agent_disk():
            if kernel.stopped_for is None and await asyncio.to_thread(
                    disk_bounds.over_bounds, (kernel.directory / "ipc", kernel.tables_dir)):
                log.warning("kernel_over_disk", kernel_id=kernel.kernel_id, max_bytes=disk_bounds.MAX_BYTES,
                            max_entries=disk_bounds.MAX_ENTRIES)
                launcher.kill(kernel.kernel_id, disk_bounds.DISK_LIMIT)


class InterruptHandler(AgentHandler):
    def post(self, kernel_id: str) -> None:
        os.kill(self.kernel(kernel_id).pid, signal.SIGINT)
        self.set_status(204)


@web.stream_request_body
class DatasetHandler(AgentHandler):
    """``PUT`` a dataset: its chunks go to the kernel's dataset folder as they arrive, never whole in memory."""

    dataset: DatasetFile | None = None

    def prepare(self) -> None:
        super().prepare()
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > DATASET_BYTES:
            raise web.HTTPError(413, f"a dataset may have at most {DATASET_BYTES} bytes")
        connection = self.request.connection
        assert isinstance(connection, HTTP1Connection)
        connection.set_max_body_size(DATASET_BYTES)  # a chunked body ends at the limit too
        kernel_id, name = self.path_args
        self.version = self.get_query_argument("version", None)
        if self.version is not None and not VERSION.fullmatch(self.version):
            raise web.HTTPError(400, "version must be 64 hex digits")
        try:
            self.dataset = DatasetFile(self.kernel(kernel_id, handed_out=True).dataset_dir, dataset_filename(name))
        except UnsafeDirectory as exc:
            raise web.HTTPError(409, str(exc)) from exc

    def data_received(self, chunk: bytes) -> None:
        assert self.dataset is not None
        self.dataset.write(chunk)

    def put(self, kernel_id: str, name: str) -> None:
        assert self.dataset is not None
        self.dataset.place()
        if self.version is not None:
            kernel = self.kernel(kernel_id)
            self.cache.adopt(self.version, kernel.dataset_dir / self.dataset.filename, link=may_link(kernel))
        self.set_status(204)

    def on_finish(self) -> None:
        if self.dataset is not None:
            self.dataset.discard()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.on_finish()


class DatasetLinkHandler(AgentHandler):
    """``POST`` a dataset the agent has on its disk: a cached version, or a file of the local server's."""

    def post(self, kernel_id: str, name: str) -> None:
        kernel = self.kernel(kernel_id, handed_out=True)
        body = self.json_body('{"version": "..."}')
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str) or not VERSION.fullmatch(version):
            raise web.HTTPError(400, "version must be 64 hex digits")
        source = self._local_file(body["file"]) if body.get("file") is not None else self.cache.path(version)
        if source is None:
            self.write_json({"placed": False})
            return
        try:
            dataset = DatasetFile(kernel.dataset_dir, dataset_filename(name))
        except UnsafeDirectory as exc:
            raise web.HTTPError(409, str(exc)) from exc
        try:
            mechanism, copied = dataset.put(source, may_link(kernel))
        finally:
            dataset.discard()
        self.write_json({"placed": True, "mechanism": mechanism, "bytes_copied": copied})

    def _local_file(self, file: Any) -> Path:
        """``file`` beneath the dataset root: a regular Parquet file, or 400."""
        if self.dataset_root is None:
            raise web.HTTPError(400, "this agent has no --dataset-root: send the dataset's version or its bytes")
        root = self.dataset_root.resolve()
        path = (root / str(file)).resolve() if isinstance(file, str) else root
        if not path.is_relative_to(root) or path.suffix != SUFFIX or not path.is_file():
            raise web.HTTPError(400, f"file must name a Parquet file beneath {root}")
        return path


def may_link(kernel: LaunchedKernel) -> bool:
    """Whether ``kernel`` may see the agent's own files by hard link: it runs as another uid, so it can neither
    write nor chmod them (a kernel of the agent's uid gets copies)."""
    return kernel.uid is not None and kernel.uid != os.geteuid()


class TableHandler(AgentHandler):
    async def get(self, kernel_id: str, name: str) -> None:
        try:
            descriptor, size = open_table(self.kernel(kernel_id, handed_out=True).tables_dir, name)
        except TableFileError as exc:
            raise web.HTTPError(exc.status, str(exc)) from exc
        self.set_header("Content-Type", "application/vnd.apache.arrow.stream")
        self.set_header("Content-Length", str(size))
        with os.fdopen(descriptor, "rb", buffering=0) as file:
            left = size
            while left:
                chunk = file.read(min(TABLE_CHUNK, left))
                if not chunk:  # the kernel truncated it: the server's read comes up short and fails
                    raise web.HTTPError(409, f"table {name} shrank while it was served")
                left -= len(chunk)
                self.write(chunk)
                await self.flush()


class UnsafeDirectory(RuntimeError):
    """The dataset folder is not the one the launcher made (a kernel moved or replaced it)."""


class DatasetFile:
    """A dataset written as ``directory/filename`` chunk by chunk, then put in place read-only and atomically.

    The kernel's uid owns the folder above ``directory``, so everything goes through a handle of
    ``directory`` opened without following a symlink and checked to be root's: a kernel that
    swapped the folder for a link or one of its own makes this fail instead of writing elsewhere.
    Until ``place`` the chunks go to a partial file, which ``discard`` removes (a body cut short).
    """

    def __init__(self, directory: Path, filename: str):
        self._dir = open_dataset_folder(directory)
        try:
            self.filename = filename
            self._partial = f".partial-{uuid.uuid4().hex}"
            self._placed = False
            self._file = os.fdopen(os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                           | os.O_CLOEXEC, 0o444, dir_fd=self._dir), "wb")
        except BaseException:
            os.close(self._dir)
            raise

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def put(self, source: Path, link: bool) -> tuple[str, int]:
        """Place the file ``source``: with ``link``, a hard link to its very inode when the kernel may read it
        and cannot write it (readable by all, writable by none but its owner, on this file system); else a
        copy. ``(mechanism, bytes copied)``."""
        if link:
            status = os.stat(source, follow_symlinks=False)
            if status.st_mode & 0o004 and not status.st_mode & 0o022:
                self._file.close()
                os.unlink(self._partial, dir_fd=self._dir)
                try:
                    os.link(source, self._partial, dst_dir_fd=self._dir, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    self._file = os.fdopen(os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                                   | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444, dir_fd=self._dir), "wb")
                else:
                    self.place()
                    return "hard_link", 0
        with open(source, "rb") as file:
            copied = os.path.getsize(source)
            shutil.copyfileobj(file, self._file, TABLE_CHUNK)
        self.place()
        return "copy", copied

    def place(self) -> None:
        """Replace ``directory/filename`` with what was written."""
        self._file.close()
        os.replace(self._partial, self.filename, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        self._placed = True
        self.discard()

    def discard(self) -> None:
        """Remove the partial file (unless placed) and let go of the folder; again is a no-op."""
        if self._dir < 0:
            return
        self._file.close()
        if not self._placed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._partial, dir_fd=self._dir)
        os.close(self._dir)
        self._dir = -1


def open_dataset_folder(directory: Path) -> int:
    """A handle of ``directory``, opened without following a symlink and checked to be ours (``UnsafeDirectory``
    if the kernel replaced it)."""
    try:
        folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:  # a symlink (ELOOP), a file (ENOTDIR), gone (ENOENT)
        raise UnsafeDirectory(f"the dataset folder {directory} was replaced ({exc.strerror}); "
                              "stop this kernel") from exc
    if os.fstat(folder).st_uid != os.geteuid():
        os.close(folder)
        raise UnsafeDirectory(f"the dataset folder {directory} was replaced; stop this kernel")
    return folder


def link_dataset(directory: Path, existing: str, filename: str) -> None:
    """Place ``filename`` as a second name of the dataset file ``existing`` of ``directory`` (a hard link put in
    place atomically); ``FileNotFoundError`` if there is no such file."""
    folder = open_dataset_folder(directory)
    partial = f".partial-{uuid.uuid4().hex}"
    try:
        os.link(existing, partial, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        os.replace(partial, filename, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial, dir_fd=folder)
        os.close(folder)


class DatasetAliasHandler(AgentHandler):
    """``PUT`` another name of a dataset placed already (a renamed dataset's earlier name)."""

    def put(self, kernel_id: str, name: str, existing: str) -> None:
        try:
            link_dataset(self.kernel(kernel_id, handed_out=True).dataset_dir, dataset_filename(existing), dataset_filename(name))
        except UnsafeDirectory as exc:
            raise web.HTTPError(409, str(exc)) from exc
        except FileNotFoundError as exc:
            raise web.HTTPError(404, f"no dataset {existing!r} was placed in kernel {kernel_id}") from exc
        self.set_status(204)


class GapHandler(AgentHandler):
    def post(self, kernel_id: str) -> None:
        self.kernel(kernel_id)
        gap = self.settings["relays"].gap(kernel_id)
        if gap is None:
            raise web.HTTPError(404, f"kernel {kernel_id} has no gap buffer (the agent keeps none)")
        messages, lost = gap.take()
        self.write_json({"messages": [[base64.b64encode(frame).decode() for frame in frames] for frames in messages],
                         "lost": lost})


class UsageHandler(AgentHandler):
    def get(self) -> None:
        self.write_json({"cpu_seconds": {kernel_id: kernel_cpu_seconds(kernel)
                                         for kernel_id, kernel in list(self.launcher.kernels.items())
                                         if self.launcher.is_alive(kernel_id)}})


class EventsHandler(AgentHandler):
    async def get(self) -> None:
        try:
            after = int(self.get_query_argument("after", "0"))
            timeout = min(float(self.get_query_argument("timeout", "30")), MAX_POLL_SECONDS)
        except ValueError as exc:
            raise web.HTTPError(400, "after must be an integer and timeout a number of seconds") from exc
        events = await self.exits.after(after, max(timeout, 0))
        self.write_json({"agent_id": self.exits.agent_id, "last": self.exits.last, "events": events})


def make_app(pool: WarmPool, public_key: Any, health: dict[str, Any], relays: Relays, *,
             admission: Admission | None = None, dataset_root: Path | None = None,
             cache_bytes: int = DATASET_CACHE_BYTES) -> web.Application:
    """The agent's routes; kernels are handed out through ``relays``.

    Without ``admission``: multi-tenant, with the default capacity. ``dataset_root``: where the files of a
    server on this host are that kernels may get by hard link (its dataset blobs).
    """
    exits = ExitLog(pool.launcher.memory_mb)
    pool.launcher.exit_listeners.append(exits.record)
    admission = admission or Admission(pool.launcher.is_alive, single_tenant=False)
    cache = DatasetCache(pool.launcher.run_dir / CACHE_DIRECTORY, cache_bytes)
    cache.prepare()
    args = {"pool": pool, "public_key": public_key, "health": health, "exits": exits, "admission": admission,
            "cache": cache, "dataset_root": dataset_root}
    return web.Application([
        (r"/health", HealthHandler, args),
        (r"/events", EventsHandler, args),
        (r"/usage", UsageHandler, args),
        (r"/kernels", KernelsHandler, args),
        (r"/kernels/spare", SpareHandler, args),
        (r"/kernels/([0-9a-f]{32})", KernelHandler, args),
        (r"/kernels/([0-9a-f]{32})/interrupt", InterruptHandler, args),
        (r"/kernels/([0-9a-f]{32})/gap", GapHandler, args),
        (r"/kernels/([0-9a-f]{32})/datasets/([^/]+)", DatasetHandler, args),
        (r"/kernels/([0-9a-f]{32})/datasets/([^/]+)/same-as/([^/]+)", DatasetAliasHandler, args),
        (r"/kernels/([0-9a-f]{32})/datasets/([^/]+)/link", DatasetLinkHandler, args),
        (rf"/kernels/([0-9a-f]{{32}})/tables/({TABLE_FILE_NAME})", TableHandler, args),
    ], exits=exits, relays=relays, admission=admission, in_flight=InFlight(), cache=cache, spares=Spares(relays))
