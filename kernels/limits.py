"""The bounds on what a kernel may produce, shared by the kernel, the agent's relay and the server.

The server imports these (``server/limits.py``); ``kernels/`` never imports ``server``.
"""

from __future__ import annotations

OUTPUT_BYTES = 5 * 1024 * 1024
"""Output kept per execution (text, images, bundles); the rest is dropped with a notice."""

ARROW_BYTES = 50 * 1024 * 1024
"""The largest Arrow table a DataFrame output carries for paging."""

# A shown DataFrame's whole table travels as a file, never inside a message (``kernels.table_output``):
# the kernel writes it to its tables folder, the server fetches it from the agent as it reads the output.
TABLES_DIR_BYTES = 4 * ARROW_BYTES
"""Size of a kernel's tables folder (a tmpfs where the agent can mount): tables not yet fetched."""

TABLES_DIR_INODES = 64
"""Files in a kernel's tables folder at once."""

# What a kernel writes to its own fds 1 and 2 reaches the agent's log only as bounded events
# (``kernels.kernel_output``).
KERNEL_LOG_LINE_BYTES = 8 * 1024
"""The longest line of a kernel's stdout/stderr that is logged, counted as logged (JSON-escaped: a control
character takes six bytes); the rest of the line is cut."""

KERNEL_LOG_LINES_PER_SECOND = 50
"""Lines of one kernel's stdout/stderr logged per second (and as a burst); the rest are counted and dropped."""

KERNEL_LOG_BYTES_PER_SECOND = 32 * 1024
"""Bytes of one kernel's stdout/stderr logged per second (and as a burst), counted as logged (escaped, with
``KERNEL_LOG_EVENT_BYTES`` per line); the lines past them are counted and dropped."""

KERNEL_LOG_EVENT_BYTES = 200
"""What one ``kernel_output`` event costs the log besides its line (time, level, logger, kernel id)."""

# Inodes: a kernel makes no socket file after start (``kernels.sandbox.seccomp_filter``), and where the
# agent can mount, its ipc directory and its workdir are tmpfs with these bounds.
IPC_DIR_INODES = 16
"""Inodes of a kernel's ipc directory: its five sockets and the directory itself, with room to spare."""

IPC_DIR_BYTES = 64 * 1024
"""Size of a kernel's ipc directory (sockets take no blocks)."""

WORKDIR_INODES = 16384
"""Files and directories a kernel may have in its workdir at once."""

# Arrow tables (kernels.arrow_check): what a stored table may cost once read, whatever its stream says.
ARROW_ROWS = 5_000_000
"""Rows of an Arrow table a DataFrame output carries for paging."""

ARROW_VALUES = 50_000_000
"""Values of such a table, nested ones (list items, struct fields, dictionaries) included."""

ARROW_MESSAGES = 1_000
"""Messages (schema, record and dictionary batches) in its stream: each costs a little to check."""

PREVIEW_CELL_CHARS = 500
"""Characters of one text value (bytes of one binary value) in a page of rows, the kernel's first page of a
DataFrame and a dataset preview alike; longer ones are cut before they are converted and the cell is named
(``kernels.arrow_rows``)."""

# Kernel messages --------------------------------------------------------------
MESSAGE_FRAMING_BYTES = 64 * 1024
"""Headers, metadata and JSON escaping around a message's largest legitimate part."""

STREAM_MESSAGE_CHARS = 1024 * 1024
"""Characters of stdout/stderr one stream message carries: a longer write goes in several messages, each
well under ``KERNEL_MESSAGE_BYTES`` even with every character JSON-escaped."""

KERNEL_MESSAGE_BYTES = 2 * OUTPUT_BYTES + MESSAGE_FRAMING_BYTES
"""The largest ZeroMQ message a kernel may send: the largest legitimate one is an output within the output
cap, JSON-escaped (control characters take up to six bytes each, but past the cap the output is dropped
anyway), plus framing. Tables travel as files, not in messages. The agent's relay
(``kernels.relay``) drops its link to the server once a message passes it, all parts together; the
server's sockets refuse a larger part (``zmq.MAXMSGSIZE``) before it is allocated."""

# Datasets -----------------------------------------------------------------------
DATASET_BYTES = 1024 * 1024 * 1024
"""The largest dataset (a Parquet file) the agent places for a kernel; it is streamed to disk as it arrives."""

DATASET_CACHE_BYTES = 1024 * 1024 * 1024
"""The bytes of dataset versions an agent keeps on its disk (``kernels.dataset_cache``), least recently used
going first, so that a version crosses the network once (``ExecutorApp.dataset_cache_bytes``). The executor
image's run directory shares a 4 GB tmpfs (compose) or the task's storage with the kernels' own files."""

AGENT_BODY_BYTES = 1024 * 1024
"""The largest request body of any other agent route (``POST /kernels`` carries a tenant)."""

GAP_BYTES = 8 * 1024 * 1024
"""Bytes of kernel messages the agent keeps per kernel while no server is attached to it (``gap``), for the
server that reattaches; past them the oldest are dropped and counted as lost."""

GAP_MARGIN_SECONDS = 1.0
"""What a kernel published this long before its last server's link dropped is kept too (``gap``): a server
killed mid-stream may never have read it."""

ORPHAN_SECONDS = 900.0
"""Seconds a kernel may stay with no server attached before the agent destroys it (``agent.reap_orphans``):
its server died and no other reattached, so no server culls it for idleness."""

KERNELS_PER_TENANT_WITHOUT_CGROUPS = 2
"""Kernels one tenant may hold at once on a multi-tenant agent without cgroups (``--user-namespaces``):
its kernels share the agent's uid, so RLIMIT_NPROC and memory are shared by every tenant; a tenant past
this gets 409 and the server places the kernel on another executor."""
