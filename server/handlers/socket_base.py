"""What our JSON websockets share: authentication before the upgrade, the origin check, the
``bi.v1`` subprotocol, TCP_NODELAY, and a client message read against a schema.

A browser cannot set headers on a websocket, so besides ``Authorization: Bearer <token>`` the
token may come as a second subprotocol, ``bearer.<token>``, beside ``bi.v1``.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from tornado import websocket

from .. import json_io
from ..errors import AuthenticationError, BIError
from ..limits import SOCKET_MESSAGE_BYTES
from .base import origin_allowed

SUBPROTOCOL = "bi.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."


class JSONSocket(websocket.WebSocketHandler):
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

    def read_message_as(self, validator: jsonschema.Draft202012Validator, message: str | bytes) -> dict[str, Any]:
        """The client's message (``json_io.loads``) if ``validator`` accepts it; ``ValueError`` with a reason
        otherwise."""
        try:
            body = json_io.loads(message, SOCKET_MESSAGE_BYTES)
        except BIError as exc:
            raise ValueError(exc.message.rstrip(".")) from None
        try:
            validator.validate(body)
        except jsonschema.ValidationError as exc:
            raise ValueError(exc.message[:300]) from None
        return body

    def send_text(self, text: str | bytes) -> None:
        if self.ws_connection is not None and not self.ws_connection.is_closing():
            self.write_message(text)
