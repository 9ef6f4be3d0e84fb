"""What our websockets share: writes bounded in bytes and a place among their user's open sockets
(``BoundedSocket``: every socket, Jupyter's included; ``UserSockets`` counts them), and for our JSON
sockets authentication before the upgrade, the origin check, the ``bi.v1`` subprotocol and a client
message read against a schema.

A browser cannot set headers on a websocket, so besides ``Authorization: Bearer <token>`` the
token may come as a second subprotocol, ``bearer.<token>``, beside ``bi.v1``.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from jsonschema.protocols import Validator
from tornado import websocket
from tornado.iostream import IOStream, StreamClosedError

from dashboards_spec import bounded

from .. import json_io, limits
from ..errors import AuthenticationError, BIError, RateLimitedError
from ..models import User
from ..services.auth import SESSION_ONLY, Scope
from ..services.revocations import Credential, Revocations
from ..ws_frames import Frame, Writer
from .base import log, origin_allowed

SUBPROTOCOL = "bi.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."


TOO_SLOW = 4008
"""The close code of a socket whose client fell ``limits.SOCKET_PENDING_BYTES`` behind: reconnect (and resume)."""


class UserSockets:
    """The websockets each user holds open on this server process, at most ``limit`` each, every kind
    together: an upgraded socket leaves the per-address connection cap (``http_server``), so this is what
    bounds one user's sockets."""

    def __init__(self, limit: int):
        self.limit = limit
        self._open: collections.Counter[str] = collections.Counter()
        self._capped: set[str] = set()  # users told about in the log since they were last below the limit

    def take(self, user_id: str) -> None:
        """Count one more socket of ``user_id``; ``RateLimitedError`` (``too_many_sockets``) at the limit."""
        if self._open[user_id] >= self.limit:
            if user_id not in self._capped:
                self._capped.add(user_id)
                log.warning("sockets_capped", user_id=user_id, limit=self.limit)
            raise RateLimitedError(f"You have {self.limit} live connections open (dashboards, card editors, "
                                   "Jupyter kernels); close some tabs or notebooks, then try again.",
                                   limits.SOCKETS_RETRY_SECONDS, {"limit": self.limit}, code="too_many_sockets")
        self._open[user_id] += 1

    def give_back(self, user_id: str) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]
        self._capped.discard(user_id)


class BoundedSocket(websocket.WebSocketHandler):
    """A websocket whose client must keep up: once more than ``limits.SOCKET_PENDING_BYTES`` wait to be
    written, the socket is closed with ``TOO_SLOW`` (``too_slow_reason`` says what to do) and what
    was queued for it is dropped, so that a client that stops reading costs at most that much. A sender
    with much to say (a dashboard's snapshot) waits for ``room_for`` between messages.

    Its handshake takes a place among its user's open sockets (``hold_place``, right after the token is
    checked and before anything else is done for it), given back when the handshake is answered without
    an upgrade or the socket closes."""

    too_slow_reason = "Too far behind; reconnect."
    credential: Credential | None = None  # what the client authenticated with; revoked, it closes the socket
    _revocations_seen = 0
    pending_bytes = 0
    pending_frames = 0
    frame_bytes = limits.SOCKET_FRAME_BYTES
    _drained: asyncio.Future[None] | None = None
    _place: str | None = None  # the user whose place among open sockets this one holds

    def hold_place(self, user: User) -> User:
        """Count this socket among ``user``'s open ones (``UserSockets``) and return ``user``;
        ``RateLimitedError`` (``too_many_sockets``) if they hold as many as they may."""
        self.settings["user_sockets"].take(user.id)
        self._place = user.id
        return user

    def _give_back_place(self) -> None:
        if self._place is not None:
            self.settings["user_sockets"].give_back(self._place)
            self._place = None

    def on_finish(self) -> None:
        """The handshake is answered: with the upgrade (101) the place is kept until the socket closes."""
        if self.get_status() != 101:
            self._give_back_place()
        super().on_finish()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._give_back_place()

    @property
    def ping_interval(self) -> float:
        """Seconds between pings to the client (``limits.SOCKET_PING_SECONDS``)."""
        return limits.SOCKET_PING_SECONDS

    @property
    def max_message_size(self) -> int:
        """The largest frame Tornado reads from the client; a larger one closes the socket (1009)."""
        return self.frame_bytes

    def send_frame(self, frame: str | bytes | Frame, binary: bool = False) -> None:
        """Write ``frame`` (a message, or one framed once for many sockets) unless the socket is closing; close
        it if its client is too far behind. A frame for many sockets that the socket takes whole at once (the
        usual case: nothing waits ahead of it) costs one ``send`` and no Tornado future, callback or buffer."""
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return
        if self.pending_bytes > limits.SOCKET_PENDING_BYTES:
            log.warning("socket_too_slow", endpoint=self.request.path, pending_bytes=self.pending_bytes,
                        pending_frames=self.pending_frames)
            self.close(TOO_SLOW, self.too_slow_reason[:120])  # its client learns why within Tornado's 5 s
            self.on_too_slow()
            return
        if isinstance(frame, Frame):  # framed once for many sockets: written as it is (ws_frames.py)
            stream, data = connection.stream, frame.wire
            if stream is None:
                return
            sent = 0
            if type(stream) is IOStream and not stream.writing():
                try:
                    sent = stream.socket.send(data)
                except OSError:  # met again by IOStream.write, which closes the stream
                    sent = 0
                if sent == len(data):
                    return
            self.send_rest(data, sent)
            return
        data = frame.encode() if isinstance(frame, str) else frame  # one socket's own message: Tornado frames it
        try:
            written = self.write_message(data, binary=binary)
        except websocket.WebSocketClosedError:
            return
        self._pending(written, len(data))

    def send_rest(self, wire: bytes, sent: int) -> None:
        """Queue what the socket did not take at once of a frame for many sockets (``wire``, ``sent`` bytes of
        it written straight to the socket), as any write: the stream writes it as the client reads."""
        stream = self.ws_connection.stream if self.ws_connection is not None else None
        if stream is None:
            return
        rest = memoryview(wire)[sent:] if sent else wire
        try:
            written = stream.write(rest)
        except StreamClosedError:
            return
        self._pending(written, len(rest))

    def writer(self) -> Writer | None:
        """What ``send_to_all`` writes a frame for many sockets with, straight to this socket; None for a
        socket that takes every frame through its stream (TLS, or not open)."""
        connection = self.ws_connection
        stream = connection.stream if isinstance(connection, websocket.WebSocketProtocol) else None
        if type(stream) is not IOStream or stream.socket is None:
            return None
        return Writer(stream.socket.send, stream._write_buffer, connection, self)

    def _pending(self, written: Any, size: int) -> None:
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
