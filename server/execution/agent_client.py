"""The server's side of the executor agent API (``kernels/agent.py``), one client per agent.

Every call carries a fresh EdDSA token signed with the server's private key; the agent holds only
the public key.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import ipaddress
import json
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tornado import httpclient, netutil

from kernels.agent import AUDIENCE, ISSUER

TOKEN_LIFETIME = 60
LONG_POLL_SECONDS = 25
DATASET_CHUNK = 1 << 20  # a dataset travels to the agent in reads of this size
USAGE_TIMEOUT = 5.0  # a reading repeated in a loop: an agent gone quiet must not hold it up


def load_private_key(pem: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``pem``; ValueError with the reason otherwise."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the executor signing key must be an Ed25519 private key")
    return key


class LiteralResolver(netutil.Resolver):
    """Answers IP literals itself; only names are looked up (on the default executor, as Tornado does).

    The local agent's address is a literal: its health checks then never wait behind whatever
    else occupies the default executor (blob I/O, previews).
    """

    def initialize(self) -> None:
        self._names = netutil.DefaultLoopResolver()

    async def resolve(self, host: str, port: int,
                      family: socket.AddressFamily = socket.AF_UNSPEC) -> list[tuple[int, Any]]:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return await self._names.resolve(host, port, family)
        if address.version == 6:
            return [(socket.AF_INET6, (host, port, 0, 0))]
        return [(socket.AF_INET, (host, port))]


class AgentError(RuntimeError):
    """The agent could not be reached or refused a call; ``status`` is its HTTP status (599: unreachable)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Placement:
    """How a dataset reached a kernel: ``hard_link`` (its stored file itself, no byte copied), ``copy`` (a copy
    the agent made from its disk) or ``sent`` (over the network); ``bytes_copied`` by the agent or sent."""

    mechanism: str
    bytes_copied: int


def dataset_version(parquet: Path) -> str:
    """The name agents cache the stored (immutable) file ``parquet`` under."""
    return hashlib.sha256(str(parquet).encode()).hexdigest()


class AgentClient:
    """``dataset_root``: where the dataset files of this server are, when the agent is on this host and may
    link them (``bi serve``'s local agent, started with that ``--dataset-root``)."""

    def __init__(self, base_url: str, private_key: Ed25519PrivateKey, timeout: float = 60,
                 dataset_root: Path | None = None):
        self.base_url = base_url.rstrip("/")
        self.private_key = private_key
        self.timeout = timeout
        self.dataset_root = dataset_root
        self._http = httpclient.AsyncHTTPClient(force_instance=True, max_clients=64, resolver=LiteralResolver())
        self.closed = False

    def _token(self) -> str:
        now = int(time.time())
        return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + TOKEN_LIFETIME},
                          self.private_key, algorithm="EdDSA")

    async def _call(self, method: str, path: str, body: bytes | None = None,
                    timeout: float | None = None, streaming_callback: Callable[[bytes], None] | None = None,
                    body_producer: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]] | None = None,
                    headers: dict[str, str] | None = None) -> Any:
        if self.closed:
            raise AgentError(f"executor agent {self.base_url} is gone", 599)
        if body is None and body_producer is None and method in ("POST", "PUT"):
            body = b""
        try:
            response = await self._http.fetch(
                self.base_url + path, method=method, body=body, body_producer=body_producer, raise_error=False,
                headers={"Authorization": f"Bearer {self._token()}", **(headers or {})},
                request_timeout=timeout or self.timeout, streaming_callback=streaming_callback)
        except (OSError, httpclient.HTTPClientError) as exc:
            raise AgentError(f"executor agent {self.base_url} unreachable: {exc}", 599) from exc
        if response.code >= 400:
            try:
                message = json.loads(response.body)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.reason or str(response.error)
            raise AgentError(f"executor agent {self.base_url}: {response.code} {message}", response.code)
        if streaming_callback is not None:
            return None
        return json.loads(response.body) if response.body else None

    async def health(self, timeout: float | None = None) -> dict[str, Any]:
        return await self._call("GET", "/health", timeout=timeout)

    async def create_kernel(self, tenant: str, spare: str | None = None) -> dict[str, Any]:
        """``{"kernel_id", "connection", "limits"}`` of a ready kernel for ``tenant`` (a pseudonym): the ``spare``
        kernel of that id when the agent still has it, else a fresh one."""
        body = {"tenant": tenant} if spare is None else {"tenant": tenant, "spare": spare}
        return await self._call("POST", "/kernels", json.dumps(body).encode())

    async def create_spare(self) -> dict[str, Any]:
        """The same of a kernel relayed ahead of need and handed to no tenant until ``create_kernel`` claims it."""
        return await self._call("POST", "/kernels/spare", b"")

    async def kernel_status(self, kernel_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/kernels/{kernel_id}")

    async def usage(self) -> dict[str, Any]:
        """``{"cpu_seconds": {kernel_id: CPU seconds used so far}}`` of the agent's kernels."""
        return await self._call("GET", "/usage", timeout=USAGE_TIMEOUT)

    async def delete_kernel(self, kernel_id: str) -> None:
        try:
            await self._call("DELETE", f"/kernels/{kernel_id}")
        except AgentError as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise

    async def take_gap(self, kernel_id: str) -> tuple[list[list[bytes]], int]:
        """What the kernel published while no server was attached (each message's frames, oldest first) and
        how many such messages the agent dropped; taken once."""
        gap = await self._call("POST", f"/kernels/{kernel_id}/gap")
        return [[base64.b64decode(frame) for frame in frames] for frames in gap["messages"]], gap["lost"]

    async def interrupt(self, kernel_id: str) -> None:
        await self._call("POST", f"/kernels/{kernel_id}/interrupt")

    async def place_dataset(self, kernel_id: str, name: str, parquet: Path) -> Placement:
        """Give the kernel the stored file ``parquet`` as the dataset ``name``: the local agent links the file
        itself; any agent places the version it has cached; else the file is sent (and cached there)."""
        version = dataset_version(parquet)
        body: dict[str, str] = {"version": version}
        if self.dataset_root is not None and parquet.is_relative_to(self.dataset_root):
            body["file"] = str(parquet.relative_to(self.dataset_root))
        path = f"/kernels/{kernel_id}/datasets/{urllib.parse.quote(name, safe='')}"
        try:
            placed = await self._call("POST", path + "/link", json.dumps(body).encode())
        except AgentError as exc:
            if exc.status != 404:  # 404: an agent older than the route (or no such kernel: the PUT says so)
                raise
            placed = {"placed": False}
        if placed["placed"]:
            return Placement(placed["mechanism"], placed["bytes_copied"])
        return Placement("sent", await self.put_dataset(kernel_id, name, parquet, version))

    async def put_dataset(self, kernel_id: str, name: str, parquet: Path, version: str | None = None) -> int:
        """Send the file ``parquet`` as the dataset ``name``, a chunk at a time as it is read (with ``version``,
        the agent caches it as that); the bytes sent."""
        size = (await asyncio.to_thread(parquet.stat)).st_size

        async def produce(write: Callable[[bytes], Awaitable[None]]) -> None:
            with parquet.open("rb") as file:
                while chunk := await asyncio.to_thread(file.read, DATASET_CHUNK):
                    await write(chunk)

        query = f"?version={version}" if version is not None else ""
        await self._call("PUT", f"/kernels/{kernel_id}/datasets/{urllib.parse.quote(name, safe='')}{query}",
                         body_producer=produce, headers={"Content-Length": str(size)})
        return size

    async def link_dataset(self, kernel_id: str, name: str, existing: str) -> None:
        """Make the dataset sent as ``existing`` readable as ``name`` too, without sending it again."""
        await self._call("PUT", f"/kernels/{kernel_id}/datasets/{urllib.parse.quote(name, safe='')}/same-as/"
                         f"{urllib.parse.quote(existing, safe='')}", body=b"")

    async def fetch_table(self, kernel_id: str, name: str, target: Path, max_bytes: int) -> int:
        """Write the table file the kernel named ``name`` to ``target`` as it arrives; its size.

        ``AgentError`` when the agent refuses it, or it is cut short or longer than ``max_bytes``.
        """
        received = 0
        with target.open("wb") as file:
            def write(chunk: bytes) -> None:
                nonlocal received
                received += len(chunk)
                if received > max_bytes:
                    raise AgentError(f"table {name} is longer than {max_bytes} bytes", 413)
                file.write(chunk)

            await self._call("GET", f"/kernels/{kernel_id}/tables/{name}", streaming_callback=write)
        return received

    async def events(self, after: int, timeout: float = LONG_POLL_SECONDS) -> dict[str, Any]:
        """Kernels that ended by themselves after event ``after`` (a long poll)."""
        return await self._call("GET", f"/events?after={after}&timeout={timeout}", timeout=timeout + 10)

    def close(self) -> None:
        self.closed = True
        self._http.close()
