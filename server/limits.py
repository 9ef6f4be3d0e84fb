"""One home for every bound the server puts on hostile input: bodies, frames, buffers, kernel output.

Kernels, anonymous callers and signed-in users past their rights are all hostile: each crossing
reads its bound from here before it parses anything. Bounds on what a kernel produces are shared
with the executor side and come from ``kernels/limits.py``.
"""

from __future__ import annotations

from kernels.limits import ARROW_BYTES, ARROW_MESSAGES, ARROW_ROWS, ARROW_VALUES, KERNEL_MESSAGE_BYTES, OUTPUT_BYTES

__all__ = ["ARROW_BYTES", "ARROW_MESSAGES", "ARROW_ROWS", "ARROW_VALUES", "KERNEL_MESSAGE_BYTES", "OUTPUT_BYTES"]

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

QUERY_INTEGER_MAX = 2**53 - 1
"""The largest whole number a query argument (an offset, a version) may carry: JSON numbers hold it
exactly and SQLite stores it."""

SOCKET_MESSAGE_BYTES = 256 * 1024
"""One message from a client on a card or dashboard socket; a larger one gets an error, the socket stays."""

SOCKET_FRAME_BYTES = 1024 * 1024
"""The largest frame read at all from a card or dashboard socket's client: a larger one closes it (1009)."""

JUPYTER_FRAME_BYTES = 2 * 1024 * 1024
"""The largest frame read from a Jupyter client (a cell's code, a widget's buffers): a larger one closes
the socket (1009)."""

JUPYTER_SESSIONS_PER_KERNEL = 4
"""Jupyter sessions (notebook paths bound to kernels) one user may hold per kernel they may hold
(``KernelPool.sessions_per_user``); ``JupyterSessions.sessions_per_kernel`` changes it."""

JUPYTER_SESSION_FIELD_CHARS = 1024
"""Characters of a Jupyter session's ``path``, ``name`` and ``type`` (and of a kernel's id or name in it)."""

# Per-client buffers ---------------------------------------------------------------------------

SOCKET_PENDING_BYTES = 8 * 1024 * 1024
"""Bytes queued for one websocket client (card, dashboard and Jupyter sockets) before its socket is
closed with code 4008: the client reconnects and resumes, or rejoins for a fresh snapshot."""

REPLAY_BYTES = 8 * 1024 * 1024
"""Messages kept per card session and per Jupyter kernel for a client that reconnects (oldest dropped
first; the client is told how many it lost). ``LiveSessions.replay_buffer_bytes`` and
``JupyterKernels.replay_buffer_bytes`` change it."""

PAGE_VALUES = 1_000_000
"""Values (nested ones included) in one page of a stored table (``GET /api/outputs/{id}/rows``)."""

TABLE_QUOTA_BYTES = 1024 ** 3
"""Bytes of stored output tables one user's runs may keep; past it the least recently used go first."""

TABLE_QUOTA_COUNT = 2_000
"""How many stored output tables one user's runs may keep (each listing of them reads them all)."""

CACHED_RESULTS_PER_VARIANT = 3
"""Result cache entries kept per card and parameter values (older code or data versions go)."""

# Kernels between runs -----------------------------------------------------------
BACKGROUND_BYTES = 1024 * 1024
"""Output a kernel may send outside runs (a thread a cell left behind) before it is restarted."""

BACKGROUND_CPU_SECONDS = 5.0
"""CPU seconds a kernel may use outside runs before it is restarted."""

KERNEL_JSON_DEPTH = 512
"""Arrays and objects nested in one JSON part of a kernel message (a Bokeh layout nests deeply, yet
far less): checked before the part is parsed, so a hostile kernel cannot exhaust the parser's stack."""

BACKGROUND_POLL_SECONDS = 2.0
"""How often the executor agents are asked for their kernels' CPU time."""

# JSON from clients (server/json_io.py) -------------------------------------------------------------
JSON_DEPTH = 64
"""Arrays and objects nested in one JSON document (a dashboard document needs 6)."""

JSON_NUMBER_DIGITS = 40
"""Characters of one number literal: enough for any double (``-1.7976931348623157e+308``)."""

JSON_INT_MAX = 2**63 - 1
"""The largest magnitude of a whole number (what SQLite, Arrow and pandas hold as int64)."""

# Sign-in -------------------------------------------------------------------------------------
PASSWORD_CHECK_WORKERS = 2
"""Threads that hash and verify passwords (argon2id: 64 MiB and tens of milliseconds each), apart from
the default executor, which also serves blob I/O, previews and name resolution
(``AuthService.password_check_workers``)."""

PASSWORD_CHECK_QUEUE = 8
"""Sign-ins that may wait for a password check thread; past them a sign-in is answered 429 with
``Retry-After`` at once, unhashed (``AuthService.password_check_queue``)."""

# CSV uploads ---------------------------------------------------------------------
CSV_COLUMNS = 2_000
"""Columns of an uploaded CSV, counted in its header before anything is converted
(``DatasetService.max_columns``): each costs the converter, every preview and every listing."""

CSV_ROW_BYTES = 8 * 1024 * 1024
"""The longest row of an uploaded CSV (a 422 past it): converting one costs about ten times its size."""

CSV_HEADER_CHARS = 128 * 1024
"""Characters of a CSV's header row: the column names stored with every version and listed with
every dataset."""

PREVIEW_VALUES = 20_000
"""Values in one page of a dataset preview: a wide dataset gets fewer rows per page."""

PREVIEW_CELL_CHARS = 500
"""Characters of one text value in a dataset preview; longer ones are cut and the cell is named."""

IMPORTS_RUNNING = 2
"""CSV conversions running at once (``DatasetService.max_concurrent_imports``)."""

IMPORTS_WAITING = 4
"""Uploads waiting for a conversion slot (``DatasetService.max_waiting_imports``); past them a 429."""

IMPORT_RETRY_SECONDS = 10
"""The ``Retry-After`` of an upload refused because every conversion slot is busy."""

# Lists (server/paging.py) ------------------------------------------------------------------------
PAGE_SIZE = 50
"""Records in one page of a list when the caller names no ``limit``."""

PAGE_SIZE_MAX = 200
"""The largest ``limit`` of a list page: each record of a page costs a read of its current version."""

LIST_FILTER_CHARS = 200
"""Characters of one list filter's value (``q``, ``tag``, ``owner``, ``dataset``)."""
