"""One home for every bound the server puts on hostile input: bodies, frames, buffers, kernel output.

Kernels, anonymous callers and signed-in users past their rights are all hostile: each crossing
reads its bound from here before it parses anything. Bounds on what a kernel produces are shared
with the executor side and come from ``kernels/limits.py``.
"""

from __future__ import annotations

from kernels.limits import ARROW_BYTES, ARROW_MESSAGES, ARROW_ROWS, ARROW_VALUES, OUTPUT_BYTES

__all__ = ["ARROW_BYTES", "ARROW_MESSAGES", "ARROW_ROWS", "ARROW_VALUES", "CACHED_RESULTS_PER_VARIANT",
           "DASHBOARD_PENDING_BYTES", "JSON_BODY_BYTES", "OUTPUT_BYTES", "PAGE_VALUES", "SOCKET_MESSAGE_BYTES",
           "TABLE_QUOTA_BYTES", "TABLE_QUOTA_COUNT"]

JSON_BODY_BYTES = 1024 * 1024
"""A JSON request body, unless a route says otherwise."""

SOCKET_MESSAGE_BYTES = 256 * 1024
"""One websocket frame from a client (card and dashboard sockets)."""

DASHBOARD_PENDING_BYTES = 8 * 1024 * 1024
"""Bytes queued for one dashboard viewer before its socket is closed (code 4008) to resync."""

PAGE_VALUES = 1_000_000
"""Values (nested ones included) in one page of a stored table (``GET /api/outputs/{id}/rows``)."""

TABLE_QUOTA_BYTES = 1024 ** 3
"""Bytes of stored output tables one user's runs may keep; past it the least recently used go first."""

TABLE_QUOTA_COUNT = 2_000
"""How many stored output tables one user's runs may keep (each listing of them reads them all)."""

CACHED_RESULTS_PER_VARIANT = 3
"""Result cache entries kept per card and parameter values (older code or data versions go)."""
