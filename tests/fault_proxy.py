"""A fault-injecting HTTP proxy in front of a real moto server, for the AWS store's failure tests.

The store's endpoints point at the proxy; every request is read whole, matched against the
injected rules (the first whose ``match`` accepts it and that has uses left applies), and then:

- ``THROTTLE``: DynamoDB's 400 ``ThrottlingException``, without reaching moto;
- ``SERVER_ERROR``: S3's 500 ``InternalError``, without reaching moto;
- ``RESET_BEFORE``: the connection is reset before the request reaches moto;
- ``RESET_AFTER``: moto handles the request, then the connection is reset (the response is lost);
- ``Latency(seconds)``: forwarded after a wait (delayed on the way to the store);
- ``Stall(seconds)``: forwarded at once, answered after a wait (the store works on it meanwhile: a
  transaction stays in progress);
- no rule: forwarded.

An outage is ``RESET_BEFORE`` on every request (``outage()``). Like DynamoDB, the proxy answers a
``TransactWriteItems`` whose ``ClientRequestToken`` it has seen with the same parameters by the
first answer, without running it again (with other parameters: ``IdempotentParameterMismatchException``),
and one whose token an earlier request still holds (forwarded, not yet answered) by
``TransactionInProgressException``, which moto does not do. ``in_progress = False`` forwards such a request
instead, as a store that keeps no tokens would run it.

The proxy runs its own event loop on a thread, so a sync fixture can share one per module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit


@dataclasses.dataclass(frozen=True)
class Request:
    service: str  # "dynamodb" or "s3"
    operation: str  # DynamoDB's operation ("TransactWriteItems"), or S3's method ("PUT")
    path: str  # S3: /bucket/key
    body: bytes

    @property
    def key(self) -> str:
        """The S3 object key (without the bucket), or ""."""
        parts = self.path.split("?", 1)[0].lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""


@dataclasses.dataclass(frozen=True)
class Latency:
    seconds: float


@dataclasses.dataclass(frozen=True)
class Stall:
    seconds: float


THROTTLE = "throttle"
SERVER_ERROR = "server_error"
RESET_BEFORE = "reset_before"
RESET_AFTER = "reset_after"
Fault = str | Latency | Stall
Match = Callable[[Request], bool]


def dynamodb(*operations: str) -> Match:
    """DynamoDB requests of these operations (of any, without operations)."""
    return lambda r: r.service == "dynamodb" and (not operations or r.operation in operations)


def s3(method: str | None = None, key_prefix: str = "") -> Match:
    """S3 requests with this method (any without) on keys under ``key_prefix``."""
    return lambda r: (r.service == "s3" and (method is None or r.operation == method)
                      and r.key.startswith(key_prefix))


def anything(request: Request) -> bool:
    return True


@dataclasses.dataclass
class Rule:
    fault: Fault
    match: Match
    times: int | None  # uses left; None: until cleared


class FaultProxy:
    """``endpoint`` is the URL to give the store; ``inject`` and ``clear`` may be called from any thread."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, bytes]] = {}  # ClientRequestToken -> (parameters digest, answer)
        self._in_flight: set[str] = set()  # tokens of transactions forwarded and not yet answered
        self.in_progress = True
        self.seen: list[tuple[Request, Fault | None]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.endpoint = ""

    # control -----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result()
        self.endpoint = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            serving = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in serving:  # connections still open (a client's idle one, an answer stalled)
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def inject(self, fault: Fault, match: Match = anything, times: int | None = None) -> None:
        with self._lock:
            self._rules.append(Rule(fault, match, times))

    def outage(self) -> None:
        self.inject(RESET_BEFORE)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.seen.clear()
            self.in_progress = True

    def faults(self) -> list[tuple[str, str, Fault]]:
        """(service, operation, fault) of every request that met a fault since the last ``clear``."""
        with self._lock:
            return [(r.service, r.operation, f) for r, f in self.seen if f is not None]

    def _choose(self, request: Request) -> Fault | None:
        with self._lock:
            fault = None
            for rule in self._rules:
                if (rule.times is None or rule.times > 0) and rule.match(request):
                    if rule.times is not None:
                        rule.times -= 1
                    fault = rule.fault
                    break
            self.seen.append((request, fault))
            return fault

    # serving -----------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                parsed = await _read_request(reader, writer)
                if parsed is None:
                    break
                head, body, request = parsed
                fault = self._choose(request)
                if isinstance(fault, Latency):
                    await asyncio.sleep(fault.seconds)
                if fault == RESET_BEFORE:
                    _reset(writer)
                    return
                if fault == THROTTLE:
                    answer = _error("ThrottlingException", "Rate of requests exceeds the allowed throughput.")
                elif fault == SERVER_ERROR:
                    answer = _answer(500, "application/xml", b"<Error><Code>InternalError</Code><Message>We "
                                     b"encountered an internal error. Please try again.</Message></Error>")
                else:
                    answer = await self._idempotent(request, head, body,
                                                    fault.seconds if isinstance(fault, Stall) else 0.0)
                if fault == RESET_AFTER:
                    _reset(writer)
                    return
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _idempotent(self, request: Request, head: bytes, body: bytes, stall: float) -> bytes:
        """Forward (and answer ``stall`` seconds later), answering a repeated ``TransactWriteItems`` token as
        DynamoDB does."""
        token = None
        if request.operation == "TransactWriteItems":
            parameters = json.loads(body or b"{}")
            token = parameters.pop("ClientRequestToken", None)
            digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()
            with self._lock:
                known = self._tokens.get(token) if token else None
                held = bool(token) and token in self._in_flight and self.in_progress
                if token and known is None and not held:
                    self._in_flight.add(token)
            if known is not None:
                if known[0] == digest:
                    return known[1]
                return _error("IdempotentParameterMismatchException", "The request uses the same client token as "
                              "a previous, but non-identical request.")
            if held:
                return _error("TransactionInProgressException", "The transaction with the given request token is "
                              "already in progress.")
        try:
            answer = await self._forward(head, body)
            await asyncio.sleep(stall)
            if token and answer.split(b" ", 2)[1] == b"200":
                with self._lock:
                    self._tokens[token] = (digest, answer)
        finally:
            if token:
                with self._lock:
                    self._in_flight.discard(token)
        return answer

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        try:
            upstream_writer.write(_with_header(head, "Connection", "close") + body)
            await upstream_writer.drain()
            answer = await upstream_reader.read()
        finally:
            upstream_writer.close()
        head_end = answer.index(b"\r\n\r\n") + 4
        return _with_header(answer[:head_end], "Connection", "close") + answer[head_end:]


async def _read_request(reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> tuple[bytes, bytes, Request] | None:
    """The request's head (without ``Expect``) and body, and what it asks; None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines[1:] if line)}
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        head = _without_header(head, "Expect")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    target_header = headers.get("x-amz-target", "")
    if target_header.startswith("DynamoDB_"):
        request = Request("dynamodb", target_header.split(".", 1)[1], target, body)
    else:
        request = Request("s3", method, target, body)
    return head, body, request


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body as it came (chunk sizes, trailers and all), to forward unchanged."""
    raw = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        raw += size_line
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:
                trailer = await reader.readuntil(b"\r\n")
                raw += trailer
                if trailer == b"\r\n":
                    return raw
        raw += await reader.readexactly(size + 2)


def _without_header(head: bytes, name: str) -> bytes:
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() != name.lower().encode()]
    return b"\r\n".join(kept) + b"\r\n\r\n"


def _with_header(head: bytes, name: str, value: str) -> bytes:
    return _without_header(head, name)[:-2] + f"{name}: {value}\r\n\r\n".encode()


def _answer(status: int, content_type: str, body: bytes) -> bytes:
    reason = {400: "Bad Request", 500: "Internal Server Error"}[status]
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"x-amzn-RequestId: fault-proxy\r\nConnection: close\r\n\r\n").encode() + body


def _error(code: str, message: str) -> bytes:
    """DynamoDB's 400 answer with this error code."""
    return _answer(400, "application/x-amz-json-1.0", json.dumps({
        "__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode())


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a TCP reset (SO_LINGER 0), as a load balancer or a crash does."""
    sock: Any = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
