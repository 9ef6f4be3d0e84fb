"""One home for every bound the server puts on hostile input: bodies, frames, buffers, kernel output.

Kernels, anonymous callers and signed-in users past their rights are all hostile: each crossing
reads its bound from here before it parses anything. Bounds on what a kernel produces are shared
with the executor side and come from ``kernels/limits.py``.
"""

from __future__ import annotations

from kernels.limits import (ARROW_BYTES, ARROW_MESSAGES, ARROW_ROWS, ARROW_VALUES, KERNEL_MESSAGE_BYTES, OUTPUT_BYTES,
                            PREVIEW_CELL_CHARS)

__all__ = ["ARROW_BYTES", "ARROW_MESSAGES", "ARROW_ROWS", "ARROW_VALUES", "KERNEL_MESSAGE_BYTES", "OUTPUT_BYTES",
           "PREVIEW_CELL_CHARS"]

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

IDEMPOTENT_ANSWER_BYTES = 16 * 1024
"""The largest answer body kept for an ``Idempotency-Key``'s retries (24 hours): a larger answer that names
its resource (``Content-Location``: a card's or dashboard's) is kept without its body, and a retry gets the
resource as it is then, so that a save of a 1 MB document does not store it twice."""

USER_CACHE_ENTRIES = 10_000
"""User records a server task keeps for the requests of their tokens (``services/user_cache.py``)."""

CONNECTIONS_PER_CLIENT = 100
"""Connections one client address may hold open at once (trusted proxies are not counted)."""

SOCKETS_PER_USER = 50
"""Websockets one user may hold open on one server process, every kind together (dashboards, card editors,
Jupyter channels): an upgraded socket leaves ``CONNECTIONS_PER_CLIENT``, so this bounds what a signed-in
user's sockets cost (``ServeApp.max_sockets_per_user``). Past it the handshake is answered 429."""

SOCKETS_RETRY_SECONDS = 10
"""The ``Retry-After`` of a websocket handshake refused at ``SOCKETS_PER_USER``."""

QUERY_INTEGER_MAX = 2**53 - 1
"""The largest whole number a query argument (an offset, a version) may carry: JSON numbers hold it
exactly and SQLite stores it."""

SOCKET_MESSAGE_BYTES = 256 * 1024
"""One message from a client on a card or dashboard socket; a larger one gets an error, the socket stays."""

SYNTAX_TRANSFORM_CHARS = 5_000
"""Characters of an auto-run's cell that does not compile which the syntax check hands to IPython's input
transformer (to accept magics and ``!`` lines): it re-tokenises the cell for each transform (240 KB cost 2.7 s
of a server thread). A longer cell is only compiled."""

SYNTAX_TRANSFORMS = 8
"""Lines of IPython syntax (magics, ``!`` lines, help) in a cell that does not compile that the syntax check
has IPython's transformer rewrite: it passes over the whole cell for each (510 ``x?`` lines, 1.5 KB, cost
18 s). A cell with more is only compiled."""

SOCKET_FRAME_BYTES = 1024 * 1024
"""The largest frame read at all from a card or dashboard socket's client: a larger one closes it (1009)."""

SOCKET_PING_SECONDS = 60.0
"""Seconds between the server's pings on every websocket: CloudFront closes a websocket after 10 minutes
without a byte from the origin, which an idle dashboard or editor would otherwise reach. A client that
does not answer a ping before the next one is closed (Tornado's ping timeout)."""

JUPYTER_FRAME_BYTES = 2 * 1024 * 1024
"""The largest frame read from a Jupyter client (a cell's code, a widget's buffers): a larger one closes
the socket (1009)."""

JUPYTER_ANSWER_SECONDS = 5.0
"""Seconds a Jupyter kernel has to start a shell request (its ``busy`` status) while it runs nothing else
(``JupyterKernels.answer_seconds``): past them the server answers the request with an error and sends the
next one. A request the kernel started is held to the run limits (wall clock, interrupt grace, kernel
replacement); its reply may trail its ``idle`` status by a second."""

JUPYTER_MESSAGE_ID_CHARS = 256
"""Characters of a shell request's ``msg_id``. A kernel's last thousand are remembered: a repeated one is
refused (ipykernel drops a message whose signature it has seen, without a reply)."""

JUPYTER_USER_EXPRESSIONS = 100
"""Expressions one ``execute_request`` asks the kernel to evaluate (``user_expressions``)."""

JUPYTER_SESSIONS_PER_KERNEL = 4
"""Jupyter sessions (notebook paths bound to kernels) one user may hold per kernel they may hold
(``KernelPool.sessions_per_user``); ``JupyterSessions.sessions_per_kernel`` changes it."""

JUPYTER_HELD_BYTES = 8 * 1024 * 1024
"""Bytes of shell requests a Jupyter kernel's clients may have waiting for it (``JupyterKernel``): each
is held until the one before is answered; past this a request gets an error reply at once."""

JUPYTER_SESSION_FIELD_CHARS = 1024
"""Characters of a Jupyter session's ``path``, ``name`` and ``type`` (and of a kernel's id or name in it)."""

JUPYTER_WALL_SECONDS = 600.0
"""Seconds a Jupyter kernel's code may run per execution, where a card gets 10 (``KernelPool.jupyter_execution_timeout``):
notebook cells run longer than cards; memory, CPU and output limits are the same."""

JUPYTER_CONNECTED_IDLE_SECONDS = 8 * 3600.0
"""Seconds a Jupyter kernel with an open channels connection may go without use before it is culled
(``KernelPool.jupyter_connected_idle_timeout``); without a connection, ``KernelPool.idle_timeout``."""

JUPYTER_HISTORY_ENTRIES = 1000
"""Inputs a Jupyter kernel keeps for ``history_request`` (oldest dropped first)."""

JUPYTER_HISTORY_CHARS = 4 * 1024 * 1024
"""Characters of the inputs a Jupyter kernel keeps for ``history_request`` together (oldest dropped first; an
input longer than this alone is not kept): a client ran 1,000 cells of a 1.9 MB comment each, and the server
kept them all (about 2 GB a kernel)."""

JUPYTER_ENDED_KERNELS = 1000
"""Kernels whose end (culled, shut down) the server remembers, to tell a client that comes back why."""

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

PAGE_TEXT_BYTES = 1024 * 1024
"""Bytes of text and binary values (nested ones included, long cells already cut to ``PREVIEW_CELL_CHARS``)
in one page of a stored table, counted from Arrow's offsets before anything is converted: a page past it
keeps the rows that fit; a single row past it is refused (``table_too_large``). JSON may escape each byte
into six; the page is encoded off the event loop (``APIHandler.write_page_json``)."""

TABLE_QUOTA_BYTES = 1024 ** 3
"""Bytes of stored outputs one user's runs may keep: output tables and the outputs of cached results (every
distinct parameter value is a cache entry of its own); past it the least recently used go first."""

TABLE_QUOTA_COUNT = 2_000
"""How many stored outputs (tables and cached results) one user's runs may keep (each listing of them reads
them all)."""

RUN_TABLES = 20
"""DataFrame outputs of one run whose whole tables are kept for paging; later ones keep only their first rows (a
notice says so). Each table is up to ``ARROW_BYTES``, and its summary in the run's output is small: without
this, one run under the output cap could store a thousand tables."""

RUN_TABLE_BYTES = 4 * ARROW_BYTES
"""Bytes of tables one run may store together (fetched from the kernel's agent, validated, kept as blobs)."""

CACHED_RESULTS_PER_VARIANT = 3
"""Result cache entries kept per card and parameter values (older code or data versions go)."""

ACCESS_READ_AHEAD = 10
"""A card held by at most this many dashboards has their current versions read at the same time as the reader's
shares of them (one round trip less for a viewer); past it, only the versions of those that grant access."""

RECORD_MEMORY_BYTES = 16 * 1024 * 1024
"""Bytes of card and dataset records and versions an API task keeps in memory, so that viewing or running a
card reads none of them from the store (``RecordMemory.max_bytes``, ``services/record_memory.py``)."""

RESULT_MEMORY_BYTES = 64 * 1024 * 1024
"""Bytes of recent cached results (their serialised outputs) an API task keeps in memory, so that a cache hit
reads no entry or blob from the store (``CardRunner.memory_bytes``, ``services/result_memory.py``)."""

CARD_RUNS_PER_USER = 4
"""Card runs (dashboard tiles, the run route, schedules) one user has under way at once; more wait their
turn. They do not count against the user's interactive sessions (``KernelPool.sessions_per_user``)."""

CARD_RUNS_QUEUED = 64
"""Card runs an API task lets wait for a kernel while every executor is full and no idle session can be reclaimed
(``KernelPool.queued_runs``): each holds its kernel for one run, so they are answered in turn, within
``KernelPool.placement_timeout``; past them a run gets 503 ``no_capacity`` at once."""

# Kernels between runs -----------------------------------------------------------
BACKGROUND_BYTES = 1024 * 1024
"""Output a kernel may send outside runs (a thread a cell left behind) before it is restarted."""

BACKGROUND_CPU_SECONDS = 5.0
"""CPU seconds a kernel may use outside runs before it is restarted."""

KERNEL_RECEIVE_MESSAGES = 4
"""Messages of one kernel socket ZeroMQ holds before the server reads them (``zmq.RCVHWM``): past it
the kernel is made to wait, so a kernel sending faster than its outputs are handled costs at most
this many messages of ``KERNEL_MESSAGE_BYTES`` (the default is a thousand)."""

RUN_QUEUE_BYTES = 8 * 1024 * 1024
"""Parsed bytes (``KERNEL_VALUE_BYTES`` a value, plus the message's own) of a run's messages read but not
yet handled (``execution.run_queue``); past it the server stops reading the kernel's iopub until the run
catches up."""

KERNEL_DECODE_BYTES = 32 * 1024 * 1024
"""Parsed bytes of the kernel messages the server holds at once, read but not yet handled, across all
kernels (``execution.decode_budget``): a message past what is left waits its turn (one alone always goes),
so that sessions showing large outputs at once take turns instead of each holding its JSON tree."""

TABLE_FILES_CHECKED = 1
"""Output tables the server validates at once (``services/output_tables.py``): each maps its file."""

SVG_ELEMENTS = 40_000
"""Tags (``<`` counted, closing tags and comments included) of one SVG output: cleaning costs about 10 µs
each (a matplotlib scatter of 20,000 points has about 20,000). Past them the output is ``output_too_complex``."""

HTML_ELEMENTS = 40_000
"""Tags (``<`` counted) of one HTML table output (``execution/html_tables.py``): a table of 1,000 rows of 10
columns has about 25,000. Past them the output is ``output_too_complex`` (a DataFrame pages instead)."""

HTML_FORMATTING = 8
"""Formatting elements (``<a>``, ``<b>``, ``<font>``...) an HTML table or SVG output may leave open at once,
counted by a scan before parsing (``execution/markup_work.py``). The parser rebuilds each open one for every
later block of text ("reconstruct the active formatting elements"): 2,000 open ones and 1,000 ``<div>x</div>``
cost 16 s and 572 MB. pandas' tables and matplotlib's and Bokeh's SVGs leave none open. Past them
``output_too_complex``."""

HTML_DEPTH = 128
"""Elements nested in one HTML table or SVG output (counted by the same scan): the parser's work on each tag
grows with the depth (39,000 nested ``<div>`` cost 17 s). A styled table nests about 6 deep, a matplotlib
SVG about 10. Past it ``output_too_complex``."""

HTML_ATTRIBUTES = 128
"""Attributes of one tag (start or end) in an HTML table or SVG output (counted by the same scan): the parser
looks for a duplicate among a tag's attributes so far at each one (64,000 distinct ones in one tag cost 9.3 s).
pandas' cells and matplotlib's paths carry a few. Past it ``output_too_complex``."""

STYLE_CHARS = 250_000
"""Characters of the distinct ``style`` attributes of one HTML table output, each parsed to check its
declarations (about 3 µs a character: under a second). ``Styler.bar`` on 1,000 rows has about 100,000;
a colour scale repeats its few hundred colours. Past them ``output_too_complex``."""

STYLE_FUNCTION_DEPTH = 4
"""CSS functions nested in one declaration of an HTML table's ``style`` (``linear-gradient(rgba(...))`` nests 2):
a deeper one drops the declaration, before its checks or its serializer recurse past Python's limit."""

BOKEH_MODELS = 10_000
"""Models in one Bokeh item or patch (a figure has about 50, a grid of 100 plots a few thousand): each costs
the sanitiser a check of every property and a viewer's browser a view. Past them ``output_too_complex``."""

IMAGE_PIXELS = 25_000_000
"""Pixels of one PNG or JPEG output (5,000 x 5,000), read from its header (``execution/images.py``): a page
decodes an image whole, about 4 bytes a pixel (a 380 KB PNG of 20,000 x 20,000 cost a Chromium tab 2.2 GB).
A matplotlib figure at 300 dpi of 16 x 9 inches has 13 million. Past it ``output_too_complex``."""

BOKEH_LENGTH = 5_000
"""Pixels of a width, height, frame size or border of one Bokeh layout or figure: BokehJS allocates canvases
of a figure's size (one 30,000 x 8,000 figure cost a viewer's Chromium tab 21 s and 3.8 GB). Past it (in an
item or a patch) the output is ``output_too_complex``."""

BOKEH_PIXELS = 8_000_000
"""Pixels (width x height) of the figures of one Bokeh item together: about 22 figures of 600 x 600, a
2,800 px square (BokehJS's canvases cost a viewer about 15 bytes a pixel). Past them ``output_too_complex``."""

KERNEL_JSON_VALUES = 400_000
"""Values (arrays, objects, keys, strings, numbers) in one JSON part of a kernel message, counted on its
bytes before it is parsed: each costs the parser about ``KERNEL_VALUE_BYTES`` (10 MB of ``[],`` would
be a 210 MB tree). A Bokeh item of ``BOKEH_MODELS`` models has about 200,000; a DataFrame's first rows,
50 for each column."""

KERNEL_VALUE_BYTES = 64
"""What one parsed value costs the server (a list, a dict slot, a float), besides its text."""

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
"""Sign-ins of one account from addresses it has not signed in from that may be in progress at once;
past them a sign-in is answered 429 with ``Retry-After`` at once, unhashed
(``AuthService.password_check_queue``). Sign-ins from an address the account signed in from before are
not bounded here (only one per account and address at a time, by the throttle), and go first
(``services/check_queue.py``). One for an unknown email counts alike but waits on no thread."""

PASSWORD_CHECK_OTHER_LANE = 1000
"""Sign-ins from addresses their account has not signed in from, in progress at once over all accounts
(``AuthService.password_check_other_lane``): what a flood from new addresses may hold."""

LOGIN_KNOWN_PAIR_SECONDS = 30 * 24 * 3600.0
"""Seconds an (account, client address) pair counts as the account's usual place after a sign-in there
succeeded: its sign-ins go first (``LoginThrottle.known_pair_seconds``)."""

PASSWORD_CHECKS_PER_ADDRESS = 2
"""Sign-ins from one client address being checked at once; more from it are answered 429 at once, so no
address holds the queue (``AuthService.password_checks_per_address``)."""

LOGIN_FIRST_DELAY = 1.0
"""Seconds one account waits at one client address after a failed sign-in there; doubled after each
further failure (``LoginThrottle.first_delay``)."""

LOGIN_MAX_DELAY = 15 * 60.0
"""The longest such wait (``LoginThrottle.max_delay``); the right password from another address never waits."""

LOGIN_ADDRESS_FAILURES = 100
"""Failed sign-ins from one client address within ``LOGIN_ADDRESS_WINDOW`` before it must wait: one
address may be a whole office behind NAT (``LoginThrottle.max_failures_per_address``)."""

LOGIN_ADDRESS_WINDOW = 10 * 60.0
"""Seconds over which an address's failed sign-ins are counted."""

LOGIN_THROTTLED_AUDIT_WINDOW = 60.0
"""Seconds over which the refused (429) sign-ins of one account and address make one ``login_throttled``
audit event (``AuthService.throttled_audit_window``)."""

LOGIN_THROTTLED_AUDITS = 100
"""``login_throttled`` events written per such window over all accounts and addresses; the refusals past
them make one aggregated event (``AuthService.throttled_audits_per_window``): a flood fills no table."""

SIGN_IN_CHECK_SECONDS = 10.0
"""Seconds a server takes a sign-in it found live in the store to be live still: an access token's sign-in
is read from the store at most this often per sign-in. A sign-in ended on this server is refused at once,
one ended on another server of the same store within this time; creating a personal access token always
reads it from the store (``LiveSignIns``)."""

LIVE_SIGN_INS = 10_000
"""Sign-ins one server remembers as live (the least recently used are forgotten first, and read again)."""

RECHECKS_AT_ONCE = 8
"""Users whose open sockets a task re-checks against the store at once while its bus is down or once it is
back (``Revocations.recheck``): a task with thousands of viewers does not flood the store."""

PERSONAL_TOKENS_PER_USER = 50
"""Personal access tokens one user may hold at once (``POST /api/me/tokens`` past them is a 409)."""

# Audit trail ---------------------------------------------------------------------
AUDIT_EVENTS_PER_WINDOW = 30
"""Rows of one event one user may add to the audit trail per ``AUDIT_WINDOW_SECONDS``; the rest of the
window's are written as one row with their ``count`` (``services/audit.py`` names the events always written)."""

AUDIT_WINDOW_SECONDS = 60.0
"""The window over which ``AUDIT_EVENTS_PER_WINDOW`` counts."""

AUDIT_BATCH = 25
"""Audit rows a server writes in one store call (one DynamoDB BatchWriteItem: ``services/audit.py``)."""

AUDIT_LINGER_SECONDS = 0.05
"""Seconds a batch of audit rows that is not full waits for more before it is written."""

AUDIT_WAITING = 10_000
"""Audit rows a server holds for writing at most; past them a request that records one waits for room."""

# CSV uploads ---------------------------------------------------------------------
DATASET_QUOTA_BYTES = 10 * 1024 ** 3
"""Bytes of stored datasets (every version's Parquet file) each user may own; past it uploads are refused."""

DATASET_ALIASES = 20
"""Earlier names one dataset keeps after renames (``load_dataset`` resolves each; every one is one more file
linked in a kernel that loads the dataset, never a second copy); a rename past them is refused."""

CSV_COLUMNS = 500
"""Columns of an uploaded CSV, counted in its header before anything is converted
(``DatasetService.max_columns``): each costs the converter, every preview and every listing. The
Parquet footer costs about 1.3 KB per column and row group, kept until the file is closed: a 100 MB
upload of one-digit numbers at 500 columns converts within about 80 MB, at 1,000 within 100 MB,
at 2,000 in 175 MB."""

CSV_ROW_BYTES = 4 * 1024 * 1024
"""The longest row of an uploaded CSV (a 422 past it): converting one costs about ten times its size."""

CSV_HEADER_CHARS = 128 * 1024
"""Characters of a CSV's header row: the column names stored with every version and listed with
every dataset."""

PREVIEW_VALUES = 20_000
"""Values in one page of a dataset preview: a wide dataset gets fewer rows per page."""

UPLOAD_FORM_FIELDS = 16
"""Parts of a multipart upload form besides its ``file`` part (the options ``name``, ``encoding`` and
``delimiter``): the next one is refused (413) and the rest of the body is not read."""

UPLOAD_FORM_BYTES = 16 * 1024
"""Bytes of a multipart upload form besides the file's content: every part's headers and every other
part's value, so that a form of a million tiny fields costs no more than a few."""

UPLOAD_FIELD_BYTES = 1024
"""Bytes of one field's value in an upload form."""

IMPORTS_RUNNING = 2
"""CSV conversions running at once (``DatasetService.max_concurrent_imports``)."""

IMPORTS_WAITING = 4
"""Uploads waiting for a conversion slot (``DatasetService.max_waiting_imports``); past them a 429."""

IMPORT_RETRY_SECONDS = 10
"""The ``Retry-After`` of an upload refused because every conversion slot is busy."""

# Audit trail ---------------------------------------------------------------------
AUDIT_RETENTION_DAYS = 365
"""Days an audit event is kept in the store (``Store.audit_retention_days``, ``BI_AUDIT_RETENTION_DAYS``)."""

AUDIT_PAGE = 100
"""Events in a page of ``GET /api/audit`` without ``limit``."""

AUDIT_PAGE_MAX = 1_000
"""The most events one page of ``GET /api/audit`` may ask for."""

# Lists (server/paging.py) ------------------------------------------------------------------------
PAGE_SIZE = 50
"""Records in one page of a list when the caller names no ``limit``."""

PAGE_SIZE_MAX = 200
"""The largest ``limit`` of a list page."""

LIST_ITEM_BYTES = 12 * 1024
"""The most one item of a list page takes in its answer, and about the most the server reads to make it: a list
shows summaries (ids, title, a shortened description, tags, counts, access, times) kept with the catalogue, never
a record's document, code or parameters (those come from the record's own GET). The largest summary is a
dashboard's: 200 characters of title, ``LIST_DESCRIPTION_CHARS`` of description and 20 tags of 50, each character
up to six bytes of JSON."""

LIST_DESCRIPTION_CHARS = 300
"""Characters of a dashboard's description in a list; a longer one is cut and ends in an ellipsis."""

LIST_FILTER_CHARS = 200
"""Characters of one list filter's value (``q``, ``tag``, ``owner``, ``dataset``)."""

SEARCH_TOTAL_MAX = 1_000
"""Matches the embedded store counts for a search's ``total``; past them the page has no total (counting
every match of a common term in 100,000 cards took longer than the page itself, by 100 times and more)."""

# Seconds a kernel record (``models.KernelRecord``) outlives its last write when no task closes its session
# (the task that held it died and nobody reattached): longer than any session's idle limit.
KERNEL_RECORD_SECONDS = 24 * 3600
