"""The bounds on what a kernel may produce, shared by the kernel, the agent's relay and the server.

The server imports these (``server/limits.py``); ``kernels/`` never imports ``server``.
"""

from __future__ import annotations

OUTPUT_BYTES = 5 * 1024 * 1024
"""Output kept per execution (text, images, bundles); the rest is dropped with a notice."""

ARROW_BYTES = 50 * 1024 * 1024
"""The largest Arrow table a DataFrame output carries for paging."""

# Kernel messages --------------------------------------------------------------
MESSAGE_FRAMING_BYTES = 64 * 1024
"""Headers, metadata and JSON escaping around a message's largest legitimate part."""

KERNEL_MESSAGE_BYTES = ARROW_BYTES * 4 // 3 + OUTPUT_BYTES + MESSAGE_FRAMING_BYTES
"""The largest ZeroMQ message part a kernel may send (``zmq.MAXMSGSIZE`` on every socket reading one):
the largest legitimate one is a DataFrame output, its Arrow table (base64) beside a first page
within the output cap, plus framing. A larger part is refused before it is allocated, and the
connection to the kernel dropped."""
