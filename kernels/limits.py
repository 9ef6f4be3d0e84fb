"""The bounds on what a kernel may produce, shared by the kernel, the agent's relay and the server.

The server imports these (``server/limits.py``); ``kernels/`` never imports ``server``.
"""

from __future__ import annotations

OUTPUT_BYTES = 5 * 1024 * 1024
"""Output kept per execution (text, images, bundles); the rest is dropped with a notice."""

ARROW_BYTES = 50 * 1024 * 1024
"""The largest Arrow table a DataFrame output carries for paging."""

# Arrow tables (kernels.arrow_check): what a stored table may cost once read, whatever its stream says.
ARROW_ROWS = 5_000_000
"""Rows of an Arrow table a DataFrame output carries for paging."""

ARROW_VALUES = 50_000_000
"""Values of such a table, nested ones (list items, struct fields, dictionaries) included."""

ARROW_MESSAGES = 1_000
"""Messages (schema, record and dictionary batches) in its stream: each costs a little to check."""
