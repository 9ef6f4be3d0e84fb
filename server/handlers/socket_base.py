"""What our websockets share: writes bounded in bytes (``BoundedSocket``: every socket, Jupyter's
included), and for our JSON sockets authentication before the upgrade, the origin check, the
``bi.v1`` subprotocol and a client message read against a schema.

A browser cannot set headers on a websocket, so besides ``Authorization: Bearer <token>`` the
token may come as a second subprotocol, ``bearer.<token>``, beside ``bi.v1``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jsonschema.protocols import Validator
from tornado import websocket

from dashboards_spec import bounded

from .. import json_io, limits
from ..errors import AuthenticationError, BIError
from ..models import User
from ..services.auth import SESSION_ONLY, Scope
from ..services.revocations import Credential, Revocations
from .base import log, origin_allowed

SUBPROTOCOL = "bi.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."


TOO_SLOW = 4008
"""The close code of a socket whose client fell ``limits.SOCKET_PENDING_BYTES`` behind: reconnect (and resume)."""


class BoundedSocket(websocket.WebSocketHandler):
    """A websocket whose client must keep up: once more than ``limits.SOCKET_PENDING_BYTES`` wait to be
    written, the socket is closed with ``TOO_SLOW`` (``too_slow_reason`` says what to do) and what
    was queued for it is dropped, so that a client that stops reading costs at most that much. A sender
    with much to say (a dashboard's snapshot) waits for ``room_for`` between messages."""

    too_slow_reason = "Too far behind; reconnect."
    credential: Credential | None = None  # what the client authenticated with; revoked, it closes the socket
    _revocations_seen = 0
    pending_bytes = 0
    pending_frames = 0
    frame_bytes = limits.SOCKET_FRAME_BYTES
    _drained: asyncio.Future[None] | None = None

    @property
    def ping_interval(self) -> float:
        """Seconds between pings to the client (``limits.SOCKET_PING_SECONDS``)."""
        return limits.SOCKET_PING_SECONDS

    @property
    def max_message_size(self) -> int:
        """The largest frame Tornado reads from the client; a larger one closes the socket (1009)."""
        return self.frame_bytes

    def send_frame(self, frame: str | bytes, binary: bool = False) -> None:
        """Write ``frame`` unless the socket is closing; close it if its client is too far behind."""
        if self.closing():
            return
        if self.pending_bytes > limits.SOCKET_PENDING_BYTES:
            log.warning("socket_too_slow", endpoint=self.request.path, pending_bytes=self.pending_bytes,
                        pending_frames=self.pending_frames)
            self.close(TOO_SLOW, self.too_slow_reason[:120])  # its client learns why within Tornado's 5 s
            self.on_too_slow()
            return
        data = frame.encode() if isinstance(frame, str) else frame  # the bytes Tornado queues
        size = len(data)
        try:
            written = self.write_message(data, binary=binary)
        except websocket.WebSocketClosedError:
            return
        self.pending_bytes += size
        self.pending_frames += 1
        written.add_done_callback(lambda future: self._written(future, size))

    def _written(self, future: Any, size: int) -> None:
        self.pending_bytes -= size
        self.pending_frames -= 1
        if not future.cancelled():
            future.exception()  # a closed socket's write: nothing more to do
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def closing(self) -> bool:
        return self.ws_connection is None or self.ws_connection.is_closing()

    async def room_for(self, size: int) -> bool:
        """Wait until ``size`` more bytes fit in the client's budget (or nothing waits to be written);
        False once the socket is closing. Writes end when the socket closes, so no waiter outlives it."""
        while self.pending_bytes and self.pending_bytes + size > limits.SOCKET_PENDING_BYTES:
            if self.closing():
                return False
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        return not self.closing()

    def close_now(self, code: int, reason: str) -> None:
        """Close with ``code``, dropping at once what still waits to be written rather than keeping it
        until the client reads it or Tornado's close timeout (5 s) ends the connection (a client that
        is behind then never gets the close code: for sockets replaced by another)."""
        connection = self.ws_connection
        self.close(code, reason[:120])
        if connection is not None and connection.stream is not None and connection.stream.writing():
            connection.stream.close()

    def on_too_slow(self) -> None:
        """Called once the socket is closing for being too slow; the frames still pending may be lost."""

    @property
    def revocations(self) -> Revocations:
        return self.settings["revocations"]

    async def authenticate(self, token: str, accept: frozenset[Scope] = SESSION_ONLY) -> User:
        """The user ``token`` speaks for (``AuthService.authenticate``); its credential is kept, so that once
        the socket is open (``watch_revocations``) revoking it closes the socket."""
        self._revocations_seen = self.revocations.clock
        user, self.credential = await self.settings["auth"].authenticate_credential(token, accept)
        return user

    def watch_revocations(self) -> bool:
        """Close the socket when its credential is revoked (at once if it was while the socket opened);
        False if it is closing already. Call from ``open``; ``on_close`` calls ``stop_watching``."""
        self.revocations.track(self, self._revocations_seen)
        return not self.closing()

    def stop_watching(self) -> None:
        self.revocations.forget(self)


class JSONSocket(BoundedSocket):
    def initialize(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def token(self) -> str:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "token") and token.strip():
            return token.strip()
        for protocol in self.request.headers.get("Sec-WebSocket-Protocol", "").split(","):
            if protocol.strip().startswith(TOKEN_SUBPROTOCOL_PREFIX):
                return protocol.strip()[len(TOKEN_SUBPROTOCOL_PREFIX):]
        raise AuthenticationError("Sign in first: send 'Authorization: Bearer <token>' or the "
                                  f"subprotocols '{SUBPROTOCOL}, {TOKEN_SUBPROTOCOL_PREFIX}<token>'.")

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(self.settings, origin) or super().check_origin(origin)

    def read_message_as(self, validator: Validator, message: str | bytes) -> dict[str, Any]:
        """The client's message (``json_io.loads``) if ``validator`` accepts it; ``ValueError`` with a reason
        otherwise."""
        try:
            body = json_io.loads(message, limits.SOCKET_MESSAGE_BYTES)
        except BIError as exc:
            raise ValueError(exc.message.rstrip(".")) from None
        error = bounded.first_error(validator, body)
        if error is not None:
            raise ValueError(error.message[:300])
        return body
