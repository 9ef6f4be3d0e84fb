"""The base of every API handler: request ids, auth before the body, CORS, bounded JSON bodies, one error
shape, one log line."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, overload

import jsonschema
import structlog
from tornado import web
from tornado.http1connection import HTTP1Connection

from dashboards_spec import bounded

from .. import json_io
from ..errors import (AccessRevokedError, AuthenticationError, BIError, ConflictError, DatasetNotReadableError, ExecutionTimeoutError,
                      InvalidJSONError, InvalidRequestError, KernelLostError, NotFoundError, OutputTooLargeError,
                      PasswordChangeRequiredError, PayloadTooLargeError, PermissionDeniedError,
                      PreconditionRequiredError, RateLimitedError, ServiceUnavailableError, StorageQuotaError,
                      StorageUnavailableError, StoreClosedError, UnprocessableError, UnsupportedMediaTypeError,
                      quoted)
from ..client_address import TrustedProxies
from ..limits import IDEMPOTENT_ANSWER_BYTES, JSON_BODY_BYTES, PUBLIC_BODY_BYTES
from ..models import IdempotentAnswer, User
from ..services.auth import SESSION_ONLY, AuthService, Scope
from ..services.cards import CardService
from ..services.datasets import DatasetService
from ..services.idempotency import IdempotencyService, check_key, keyed
from ..services.users import UserService
from ..storage.base import request_scope

STATUS_OF_ERROR: dict[type[BIError], int] = {
    InvalidRequestError: 400,
    InvalidJSONError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    DatasetNotReadableError: 403,
    AccessRevokedError: 403,
    PasswordChangeRequiredError: 403,
    NotFoundError: 404,
    ExecutionTimeoutError: 408,
    ConflictError: 409,
    KernelLostError: 409,
    PayloadTooLargeError: 413,
    StorageQuotaError: 413,
    UnsupportedMediaTypeError: 415,
    UnprocessableError: 422,
    OutputTooLargeError: 422,
    PreconditionRequiredError: 428,
    RateLimitedError: 429,
    StoreClosedError: 503,
    StorageUnavailableError: 503,
    ServiceUnavailableError: 503,
}

CODE_OF_STATUS = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 408: "timeout", 409: "conflict", 411: "length_required",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "unprocessable",
    428: "precondition_required", 429: "rate_limited", 503: "unavailable",
}

UNAVAILABLE_RETRY_SECONDS = 5  # Retry-After of a 503: an executor or the store may be back by then

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")  # ASCII digits only: int() would also take "１", "+1", " 1", "1_0"

# What a replayed idempotent answer repeats besides its status and body; an answer whose body is larger than
# IDEMPOTENT_ANSWER_BYTES and that names its resource (Content-Location) is kept without it, and its replay
# reads the resource again (``APIHandler.answer_again``).
REPLAYED_HEADERS = ("Location", "ETag", "Content-Location")

log = structlog.get_logger("bi.http")


def origin_allowed(settings: dict[str, Any], origin: str) -> bool:
    """Whether the server's ``cors_origins`` let a page from ``origin`` call it."""
    allowed = settings.get("cors_origins", ())
    return origin in allowed or "*" in allowed


def same_origin(handler: web.RequestHandler) -> bool:
    """Whether a request comes from a page of ours, as far as the browser says: its ``Origin`` names the
    host it asked for (as Tornado checks a websocket's) or is one of ``cors_origins`` by name; without
    ``Origin``, its ``Sec-Fetch-Site`` is ``same-origin`` or ``none`` (typed by the user); with neither
    header it is no browser's, and no other site's page sent it."""
    origin = handler.request.headers.get("Origin")
    if origin is not None:
        return (urllib.parse.urlparse(origin).netloc.lower() == handler.request.headers.get("Host", "").lower()
                or origin in handler.settings.get("cors_origins", ()))
    return handler.request.headers.get("Sec-Fetch-Site", "none") in ("same-origin", "none")


def is_json(content_type: str) -> bool:
    """Whether a ``Content-Type`` header says JSON (``application/json``, any case, any parameters)."""
    return content_type.partition(";")[0].strip().lower() == "application/json"


def error_document(error: dict[str, Any], status: int) -> dict[str, Any]:
    """The body of an error response: ``{"error": {"code", "message", "details"}}``."""
    return {"error": error}


def refuse(handler: web.RequestHandler, exc: BIError,
           document: Callable[[dict[str, Any], int], dict[str, Any]] = error_document) -> None:
    """Answer a websocket handshake with the API's JSON error for ``exc``, without upgrading."""
    status = STATUS_OF_ERROR.get(type(exc), 400)
    handler.set_status(status)
    if isinstance(exc, RateLimitedError):
        handler.set_header("Retry-After", str(exc.retry_after))
    handler.finish(document({"code": exc.code, "message": exc.message, "details": exc.details}, status))


@web.stream_request_body
class APIHandler(web.RequestHandler):
    """Subclasses set ``auth_required = False`` for public routes and get ``self.user`` otherwise;
    ``token_scopes`` say which tokens may call them (sign-in access tokens unless a route says more).

    Every API handler streams its body, so that ``prepare`` checks the token before a byte of it is
    read. Then the body may have ``max_body_bytes`` (at most ``PUBLIC_BODY_BYTES`` without a signed-in
    caller); it is collected in ``self.request.body`` before the method runs.
    """

    auth_required = True
    token_scopes: frozenset[Scope] = SESSION_ONLY
    max_body_bytes = JSON_BODY_BYTES
    user: User | None = None
    request_id = ""
    answer: bytes | None = None  # the JSON body written, for ``idempotent``
    kept_answer: asyncio.Future[IdempotentAnswer | None] | None = None  # the read of an Idempotency-Key's answer

    def initialize(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self._body = bytearray()

    # services ----------------------------------------------------------------
    @property
    def auth(self) -> AuthService:
        return self.settings["auth"]

    @property
    def users(self) -> UserService:
        return self.settings["users"]

    @property
    def datasets(self) -> DatasetService:
        return self.settings["datasets"]

    @property
    def cards(self) -> CardService:
        return self.settings["cards"]

    # request lifecycle -------------------------------------------------------
    def set_default_headers(self) -> None:
        if not self.request_id:
            incoming = self.request.headers.get("X-Request-ID", "")
            self.request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Request-ID", self.request_id)
        self._set_cors_headers()

    async def prepare(self) -> None:
        structlog.contextvars.bind_contextvars(request_id=self.request_id)
        request_scope.set(self.request_id)
        if self.auth_required and self.request.method != "OPTIONS":
            self.user = await self.auth.authenticate(self._bearer_token(), self.token_scopes)
            structlog.contextvars.bind_contextvars(user_id=self.user.id)
        self.accept_body(*self.body_limit())
        key = self.request.headers.get("Idempotency-Key")
        handler = getattr(self, (self.request.method or "").lower(), None)
        if key is not None and self.user is not None and getattr(handler, "idempotent", False):
            # read while the body arrives (and beside what a handler's prepare reads next)
            self.kept_answer = self.settings["idempotency"].read_answer(
                self.user, self.request.method or "", self.request.path, key)

    def body_limit(self) -> tuple[int, str]:
        """The most body bytes this request may send, known once its caller is, and what to say past it."""
        limit = self.max_body_bytes if self.user is not None else min(self.max_body_bytes, PUBLIC_BODY_BYTES)
        return limit, f"A request body here may have at most {megabytes(limit)}."

    def accept_body(self, limit: int, too_large: str) -> None:
        """Read at most ``limit`` bytes of body; one that declares more is refused (413) unread."""
        connection = self.request.connection
        assert isinstance(connection, HTTP1Connection)
        connection.set_max_body_size(limit)
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(too_large, {"limit_bytes": limit})

    def data_received(self, chunk: bytes) -> None:
        """Collect the body (the connection stops it past the limit ``accept_body`` set)."""
        if not self._finished:
            self._body += chunk
            self.request.body = self._body  # type: ignore[assignment]

    def body_unread(self) -> bool:
        """Whether the handler answers before the body was read (from ``prepare``)."""
        body = getattr(self.request, "_body_future", None)  # set by Tornado for streaming handlers
        return body is not None and not body.done()

    @property
    def client_ip(self) -> str:
        """The caller's address: the connection's, or what our trusted proxies say it is."""
        proxies: TrustedProxies = self.settings.get("trusted_proxies") or TrustedProxies()
        return proxies.client_address(self.request.remote_ip or "",
                                      self.request.headers.get_list("X-Forwarded-For"))

    @property
    def is_https(self) -> bool:
        """Whether the client reached us over HTTPS, by this connection or our trusted proxies' word."""
        proxies: TrustedProxies = self.settings.get("trusted_proxies") or TrustedProxies()
        return proxies.is_https(self.request.remote_ip or "", self.request.protocol,
                                self.request.headers.get_list("X-Forwarded-Proto"))

    def _bearer_token(self) -> str:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            raise AuthenticationError("Sign in first: send 'Authorization: Bearer <token>'.")
        return token.strip()

    def _set_cors_headers(self) -> None:
        origin = self.request.headers.get("Origin")
        if origin and origin_allowed(self.settings, origin):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers",
                            "X-Request-ID, Retry-After, Location, ETag, Idempotent-Replayed")
            self.add_header("Vary", "Origin")

    def options(self, *args: Any, **kwargs: Any) -> None:
        """CORS preflight: allowed origins get the methods and headers they may send."""
        if "Access-Control-Allow-Origin" in self._headers:
            self.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
            self.set_header("Access-Control-Allow-Headers",
                            "Authorization, Content-Type, If-Match, X-Request-ID, Idempotency-Key")
            self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)

    def on_finish(self) -> None:
        status = self.get_status()
        seconds = time.perf_counter() - self.started
        self.settings["metrics"].observe_request(self.request.method or "", self.endpoint, status, seconds)
        level = "error" if status >= 500 else "warning" if status >= 400 else "info"
        getattr(log, level)("request", request_id=self.request_id,
                            user_id=self.user.id if self.user else None,
                            method=self.request.method, endpoint=self.endpoint, path=self.request.path,
                            status=status, duration_ms=round(seconds * 1000, 2),
                            ip=self.client_ip)

    # bodies ------------------------------------------------------------------
    def json_body(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The JSON body (``json_io.loads``), validated against ``schema``; 400 naming the first problem otherwise.

        A body must say ``Content-Type: application/json`` (415 otherwise): the types a page of another
        site may POST without asking first (``text/plain`` forms) are never read as JSON."""
        content_type = self.request.headers.get("Content-Type", "")
        if self.request.body and not is_json(content_type):
            raise UnsupportedMediaTypeError(
                f"Send the body as JSON with 'Content-Type: application/json', not {quoted(content_type or '(none)')}.",
                {"content_type": content_type[:100]}, code="json_content_type_required")
        body = json_io.loads(self.request.body or b"null", JSON_BODY_BYTES)
        error = bounded.first_error(bounded.validator_for(schema), body)
        if error is not None:
            pointer = json_io.pointer_of(list(error.absolute_path)) or "/"
            raise InvalidRequestError(f"{pointer}: {schema_message(error)}", {"pointer": pointer})
        return body

    def write_json(self, body: Any, status: int = 200) -> None:
        self.write_encoded(json_io.dumps(body), status)

    async def write_page_json(self, body: Any, status: int = 200) -> None:
        """``write_json`` for a page of table rows (up to megabytes): encoded in a thread, off the event loop."""
        self.write_encoded(await asyncio.to_thread(json_io.dumps, body), status)

    def write_encoded(self, encoded: bytes, status: int = 200) -> None:
        """Answer with ``encoded``, a JSON document already serialised (``json_io.dumps``)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.answer = encoded
        self.finish(self.answer)

    @overload
    def int_argument(self, name: str, default: int, low: int, high: int) -> int: ...

    @overload
    def int_argument(self, name: str, default: None, low: int, high: int) -> int | None: ...

    def int_argument(self, name: str, default: int | None, low: int, high: int) -> int | None:
        """The query argument ``name`` as a whole number from ``low`` to ``high``, ``default`` if absent;
        anything else (signs, spaces, other digits than 0-9, out of range) is a 400."""
        raw = self.get_query_argument(name, None, strip=False)
        if raw is None or raw == "":
            return default
        if WHOLE_NUMBER.fullmatch(raw) and low <= int(raw) <= high:
            return int(raw)
        raise InvalidRequestError(f"{name} must be a whole number from {low:,} to {high:,}, not {quoted(raw)}.",
                                  {"argument": name, "min": low, "max": high}, code="invalid_argument")

    # errors ------------------------------------------------------------------
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error, ours or Tornado's, as ``{"error": {"code", "message", "details"}}``.

        An answer before the body was read ends the connection (the body is never read), and says
        so: a keep-alive client then opens a new one for its next request."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if self.body_unread():
            self.set_header("Connection", "close")
        if isinstance(exc, BIError):
            status_code = STATUS_OF_ERROR.get(type(exc), 400)
            message = exc.message
            if isinstance(exc, StorageUnavailableError) and self.request.method not in ("GET", "HEAD"):
                message += (" Your change may have been saved: reload before making it again, or repeat"
                            " the request with the same Idempotency-Key.")
            body = {"code": exc.code, "message": message, "details": exc.details}
            if isinstance(exc, RateLimitedError):
                self.set_header("Retry-After", str(exc.retry_after))
            elif status_code == 503:
                self.set_header("Retry-After", str(UNAVAILABLE_RETRY_SECONDS))
            if isinstance(exc, AuthenticationError):
                self.set_header("WWW-Authenticate", 'Bearer realm="bi"')
        elif status_code >= 500:
            body = {"code": "internal_error",
                    "message": f"Something went wrong on our side. Quote request id {self.request_id}.",
                    "details": {}}
        else:
            reason = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
            body = {"code": CODE_OF_STATUS.get(status_code, "error"), "message": reason, "details": {}}
        self.write_json(self.error_document(body, status_code), status_code)

    def error_document(self, error: dict[str, Any], status: int) -> dict[str, Any]:
        return error_document(error, status)

    async def answer_again(self, location: str, status: int) -> None:
        """Write the resource at ``location`` with ``status``: the replay of an idempotent answer kept without
        its body (``idempotent``), by handlers whose answers name their resource in ``Content-Location``."""
        raise NotImplementedError(location)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Domain and HTTP errors are logged by ``on_finish``; anything else with its traceback."""
        if isinstance(value, (BIError, web.HTTPError)):
            return
        log.error("unhandled_exception", request_id=self.request_id, endpoint=self.endpoint,
                  exc_info=(typ, value, tb))


def idempotent(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Marks a create or save: sent with an ``Idempotency-Key``, its retries get its first successful
    answer again instead of running (``services/idempotency.py``)."""
    @functools.wraps(method)
    async def run_once(self: APIHandler, *args: Any, **kwargs: Any) -> None:
        key = self.request.headers.get("Idempotency-Key")
        if key is None or self.user is None or self.kept_answer is None or self._finished:  # _finished: an upload
            return await method(self, *args, **kwargs)                                       # refused before its body
        service: IdempotencyService = self.settings["idempotency"]
        request = (self.user, self.request.method or "", self.request.path, key, self.request.body or b"")
        first = await service.first_answer(self.kept_answer, request[-1])
        if first is not None:
            headers = json.loads(first.headers)
            for name, value in headers.items():
                self.set_header(name, value)
            self.set_header("Idempotent-Replayed", "true")
            if not first.body and "Content-Location" in headers:  # kept without its body: read it again
                await self.answer_again(headers["Content-Location"], first.status)
                return
            self.set_status(first.status)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(first.body.encode())
            return
        with keyed(*request):
            await method(self, *args, **kwargs)
        if 200 <= self.get_status() < 300 and self.answer is not None:
            headers = {name: str(self._headers[name]) for name in REPLAYED_HEADERS if name in self._headers}
            small = len(self.answer) <= IDEMPOTENT_ANSWER_BYTES or "Content-Location" not in headers
            await service.keep(*request, self.get_status(), headers, self.answer if small else b"")
    run_once.idempotent = True  # type: ignore[attr-defined]  # its answer's read starts in ``prepare``
    return run_once


def replays_itself(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Marks a save that knows an earlier attempt of its ``Idempotency-Key`` by itself: the retry's If-Match is
    stale then, and the version that attempt stored carries the request's mark (``idempotency.own_edit``), so the
    retry answers that version from the store. No answer is read before it (nor kept after it): a keyed save
    makes one sequential store call fewer. The same key with another body is a stale edit (409)."""
    @functools.wraps(method)
    async def run(self: APIHandler, *args: Any, **kwargs: Any) -> None:
        key = self.request.headers.get("Idempotency-Key")
        if key is None or self.user is None:
            return await method(self, *args, **kwargs)
        check_key(key)
        with keyed(self.user, self.request.method or "", self.request.path, key, self.request.body or b""):
            await method(self, *args, **kwargs)
    return run


def megabytes(size: int) -> str:
    """``1 MB``, ``16 KB``: a byte limit as a person reads it."""
    return f"{size // (1024 * 1024)} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


def schema_message(error: jsonschema.ValidationError) -> str:
    """A validation error in words: limits without quoting a long value back, and the failing
    subschema's ``description`` as what was expected."""
    message = bounded.reason(error)
    if isinstance(error.schema, dict) and "description" in error.schema:
        message += f" (expected {error.schema['description']})"
    return message


class NotFoundHandler(APIHandler):
    """Unknown routes: the same JSON 404 as everything else."""

    auth_required = False

    def initialize(self, endpoint: str = "unknown") -> None:
        super().initialize(endpoint)

    async def prepare(self) -> None:
        raise NotFoundError(f"There is nothing at {self.request.path}.")
