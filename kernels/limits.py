"""The bounds on what a kernel may produce, shared by the kernel, the agent's relay and the server.

The server imports these (``server/limits.py``); ``kernels/`` never imports ``server``.
"""

from __future__ import annotations

OUTPUT_BYTES = 5 * 1024 * 1024
"""Output kept per execution (text, images, bundles); the rest is dropped with a notice."""

ARROW_BYTES = 50 * 1024 * 1024
"""The largest Arrow table a DataFrame output carries for paging."""
