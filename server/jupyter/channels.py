"""The kernel channels websocket, ``/api/kernels/{id}/channels?session_id=``, as Jupyter clients use it.

It speaks ``v1.kernel.websocket.jupyter.org`` when the client offers it and the legacy JSON form
otherwise (``wire.py``), authenticates like the REST API (header or ``?token=``) before upgrading,
and sets TCP_NODELAY: without it every message after the first of a reply waits out the client's
delayed ACK (about 40 ms). A frame the server cannot use (not a kernel message, JSON past
``json_io``'s limits, a channel clients do not send on) is answered with an iopub ``error`` message
(``ename`` ``BadMessage``) and logged; the socket stays open. A client more than
``limits.SOCKET_PENDING_BYTES`` behind in reading is closed with code 4008; when it reconnects with
its ``session_id`` it gets what the kernel sent meanwhile (``kernel.py``).
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from .. import limits
from ..errors import BIError
from ..handlers.base import log, origin_allowed, refuse
from ..handlers.socket_base import BoundedSocket
from ..models import User
from .handlers import JUPYTER_SCOPES, jupyter_error, request_token
from .kernel import JupyterKernel
from .wire import V1, BadFrame, KernelMessage, decode, encode


class KernelChannelsHandler(BoundedSocket):
    too_slow_reason = "Too far behind; reconnect with the same session_id to get what was sent meanwhile."
    frame_bytes = limits.JUPYTER_FRAME_BYTES
    user: User | None = None
    kernel: JupyterKernel | None = None
    session_id: str | None = None

    def initialize(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.received = 0

    async def prepare(self) -> None:
        """Authenticate and find the caller's kernel before upgrading; failures are plain HTTP errors."""
        try:
            self.user = self.hold_place(await self.authenticate(request_token(self.request), JUPYTER_SCOPES))
            structlog.contextvars.bind_contextvars(user_id=self.user.id)
            self.kernel = await self.settings["jupyter_kernels"].find(
                self.user, self.path_kwargs["kernel_id"], self.get_query_argument("session_id", None) or None)
        except BIError as exc:
            refuse(self, exc, jupyter_error)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return V1 if V1 in subprotocols else None

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(self.settings, origin) or super().check_origin(origin)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        assert self.kernel is not None
        if not self.watch_revocations():
            return
        self.session_id = self.get_query_argument("session_id", None) or None
        self.kernel.attach(self)
        log.info("jupyter_socket_opened", endpoint=self.endpoint, kernel_id=self.kernel.id,
                 protocol=self.selected_subprotocol or "legacy")

    def on_message(self, frame: str | bytes) -> None:
        assert self.kernel is not None
        try:
            message = decode(frame, self.selected_subprotocol)
            self.kernel.receive(message)
        except BadFrame as exc:
            log.warning("jupyter_frame_refused", kernel_id=self.kernel.id, reason=str(exc))
            self.send(self.kernel.server_message("iopub", "error", {
                "ename": "BadMessage", "evalue": f"Cannot use that message: {exc}.", "traceback": []}, None))
            return
        self.received += 1

    def send(self, message: KernelMessage) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            frame = encode(message, self.selected_subprotocol)
        except BadFrame as exc:  # the kernel sent a part that is not JSON
            log.warning("jupyter_kernel_message_dropped", kernel_id=self.path_kwargs["kernel_id"], error=str(exc))
            return
        self.send_frame(frame, binary=isinstance(frame, bytes))

    def on_too_slow(self) -> None:
        if self.kernel is not None:  # what the kernel sends from now on is kept for this client's return
            self.kernel.detach(self, undelivered=self.pending_frames)

    def end(self, reason: str) -> None:
        self.close(1000, reason[:120])

    def on_close(self) -> None:
        self.stop_watching()
        if self.kernel is not None:
            self.kernel.detach(self)
        log.info("jupyter_socket_closed", endpoint=self.endpoint, kernel_id=self.kernel.id if self.kernel else None,
                 user_id=self.user.id if self.user else None, received=self.received,
                 duration_ms=round((time.perf_counter() - self.started) * 1000, 2), code=self.close_code)
