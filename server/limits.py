"""One home for every bound the server puts on hostile input: bodies, frames, buffers, kernel output.

Kernels, anonymous callers and signed-in users past their rights are all hostile: each crossing
reads its bound from here before it parses anything. Bounds on what a kernel produces are shared
with the executor side and come from ``kernels/limits.py``.
"""

from __future__ import annotations

from kernels.limits import ARROW_BYTES, OUTPUT_BYTES

__all__ = ["ARROW_BYTES", "OUTPUT_BYTES", "JSON_BODY_BYTES", "PUBLIC_BODY_BYTES", "HEADER_BYTES",
           "HEADER_TIMEOUT", "BODY_TIMEOUT", "IDLE_TIMEOUT", "CONNECTIONS_PER_CLIENT",
           "SOCKET_MESSAGE_BYTES", "DASHBOARD_PENDING_BYTES"]

# HTTP: what a caller can make the server hold before and after sign-in ---------------------------
JSON_BODY_BYTES = 1024 * 1024
"""A JSON request body, unless a route says otherwise (``APIHandler.max_body_bytes``)."""

PUBLIC_BODY_BYTES = 16 * 1024
"""The body of a route open before sign-in (the login form), and of any request whose handler
does not stream (web UI, BokehJS, websocket handshakes): nothing anonymous costs more."""

HEADER_BYTES = 64 * 1024
"""The request line and headers of one request."""

HEADER_TIMEOUT = 10.0
"""Seconds a new connection has to send its first request's headers (``ServeApp.header_timeout``)."""

BODY_TIMEOUT = 120.0
"""Seconds a request has to send its whole body, a 100 MB upload included (``ServeApp.body_timeout``)."""

IDLE_TIMEOUT = 75.0
"""Seconds a keep-alive connection may wait for its next request; longer than the load balancer's
own idle timeout (60 s), so that the balancer, not the server, closes idle connections."""

CONNECTIONS_PER_CLIENT = 100
"""Connections one client address may hold open at once (trusted proxies are not counted)."""

SOCKET_MESSAGE_BYTES = 256 * 1024
"""One websocket frame from a client (card and dashboard sockets)."""

DASHBOARD_PENDING_BYTES = 8 * 1024 * 1024
"""Bytes queued for one dashboard viewer before its socket is closed (code 4008) to resync."""
