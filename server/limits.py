"""One home for every bound the server puts on hostile input: bodies, frames, buffers, kernel output.

Kernels, anonymous callers and signed-in users past their rights are all hostile: each crossing
reads its bound from here before it parses anything. Bounds on what a kernel produces are shared
with the executor side and come from ``kernels/limits.py``.
"""

from __future__ import annotations

from kernels.limits import ARROW_BYTES, OUTPUT_BYTES

__all__ = ["ARROW_BYTES", "DASHBOARD_PENDING_BYTES", "JSON_BODY_BYTES", "JSON_DEPTH", "JSON_INT_MAX",
           "JSON_NUMBER_DIGITS", "OUTPUT_BYTES", "SOCKET_MESSAGE_BYTES"]

JSON_BODY_BYTES = 1024 * 1024
"""A JSON request body, unless a route says otherwise."""

SOCKET_MESSAGE_BYTES = 256 * 1024
"""One websocket frame from a client (card and dashboard sockets)."""

DASHBOARD_PENDING_BYTES = 8 * 1024 * 1024
"""Bytes queued for one dashboard viewer before its socket is closed (code 4008) to resync."""

# JSON from clients (server/json_io.py) -------------------------------------------------------------
JSON_DEPTH = 64
"""Arrays and objects nested in one JSON document (a dashboard document needs 6)."""

JSON_NUMBER_DIGITS = 40
"""Characters of one number literal: enough for any double (``-1.7976931348623157e+308``)."""

JSON_INT_MAX = 2**63 - 1
"""The largest magnitude of a whole number (what SQLite, Arrow and pandas hold as int64)."""
