"""One home for every bound the server puts on hostile input: bodies, frames, buffers, kernel output.

Kernels, anonymous callers and signed-in users past their rights are all hostile: each crossing
reads its bound from here before it parses anything. Bounds on what a kernel produces are shared
with the executor side and come from ``kernels/limits.py``.
"""

from __future__ import annotations

from kernels.limits import ARROW_BYTES, KERNEL_MESSAGE_BYTES, OUTPUT_BYTES

__all__ = ["ARROW_BYTES", "OUTPUT_BYTES", "KERNEL_MESSAGE_BYTES", "JSON_BODY_BYTES", "SOCKET_MESSAGE_BYTES",
           "DASHBOARD_PENDING_BYTES", "BACKGROUND_BYTES", "BACKGROUND_CPU_SECONDS", "BACKGROUND_POLL_SECONDS"]

JSON_BODY_BYTES = 1024 * 1024
"""A JSON request body, unless a route says otherwise."""

SOCKET_MESSAGE_BYTES = 256 * 1024
"""One websocket frame from a client (card and dashboard sockets)."""

DASHBOARD_PENDING_BYTES = 8 * 1024 * 1024
"""Bytes queued for one dashboard viewer before its socket is closed (code 4008) to resync."""

# Kernels between runs -----------------------------------------------------------
BACKGROUND_BYTES = 1024 * 1024
"""Output a kernel may send outside runs (a thread a cell left behind) before it is restarted."""

BACKGROUND_CPU_SECONDS = 5.0
"""CPU seconds a kernel may use outside runs before it is restarted."""

BACKGROUND_POLL_SECONDS = 2.0
"""How often the executor agents are asked for their kernels' CPU time."""
