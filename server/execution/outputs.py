"""Turn a kernel's iopub messages into outputs (nbformat v4 shapes), under the output cap.

Outputs are ``{"output_type": "stream", "name", "text"}``, ``display_data`` / ``execute_result``
(``data``, ``metadata``, and ``execution_count`` for results), ``update_display_data`` (with
``display_id``), ``clear_output`` (``wait``), ``error`` (``ename``, ``evalue``, ``traceback``
without terminal colours), and ours: ``bokeh_patch`` (``root_id``, ``seq``, ``patch``), a live
change of a shown Bokeh figure, from a ``comm_msg`` whose data names the ``bi.bokeh`` target
(``kernels.bokeh_output``; the comm's opening is not tracked).

The collector takes the table out of DataFrame outputs (the session fetched its file; ``keep_table``
stores it and names it by the output's ``output_id``, or refuses it: an error output with the
refusal's code follows the output, which keeps its first rows) and sanitises every output (``sanitize``; SVG and
Bokeh in a thread, in order) before counting it: once the outputs of one execution pass the cap, one notice is added and the rest is dropped.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from collections.abc import Callable

from kernels.wire import BOKEH_COMM_TARGET

from .. import json_io
from ..errors import BIError
from ..limits import ARROW_BYTES, RUN_TABLE_BYTES, RUN_TABLES
from .sanitize import PixelBudget, needs_thread, sanitize_output
from .tables import strip_table

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MEMORY_ERROR = "MemoryError"
TIMEOUT = "timeout"  # the ename (an error code) of the output that says a run passed its wall clock
PLATFORM_FRAME = re.compile(r"^File [^\n]*[/\\]kernels[/\\][\w/\\]+\.py:\d+")  # a frame of our kernel code

OutputListener = Callable[[dict[str, Any]], None]
TableKeeper = Callable[[Path], str]  # stores (and removes) a DataFrame output's table file, returns its output_id


def output_of(message: dict[str, Any]) -> dict[str, Any] | None:
    """The output an iopub message carries, or None (status, execute_input and the like)."""
    kind, content = message["msg_type"], message["content"]
    if kind == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if kind in ("display_data", "update_display_data", "execute_result"):
        output = {"output_type": kind, "data": content.get("data", {}), "metadata": content.get("metadata", {})}
        display_id = content.get("transient", {}).get("display_id")
        if display_id:
            output["display_id"] = display_id
        if kind == "execute_result":
            output["execution_count"] = content.get("execution_count")
        return output
    if kind == "comm_msg":
        data = content.get("data")
        if isinstance(data, dict) and data.get("target") == BOKEH_COMM_TARGET:
            return {"output_type": "bokeh_patch", "root_id": data.get("root_id"), "seq": data.get("seq"),
                    "patch": data.get("patch")}
        return None
    if kind == "clear_output":
        return {"output_type": "clear_output", "wait": bool(content.get("wait"))}
    if kind == "error":
        return {"output_type": "error", "ename": content["ename"], "evalue": content["evalue"],
                "traceback": card_frames([ANSI_ESCAPE.sub("", str(entry)) for entry in content.get("traceback", [])])}
    return None


def card_frames(traceback: list[str]) -> list[str]:
    """The traceback without the frames of the platform's own kernel code (``kernels/``: ``load_dataset``, the
    import hook): the card's author reads the lines of their code that led there, then the error."""
    return [entry for entry in traceback if not PLATFORM_FRAME.match(entry.lstrip())]


def timeout_output(seconds: float, traceback: list[str]) -> dict[str, Any]:
    """The error output of a run stopped at its wall clock: the limit first, then where the code was."""
    return {"output_type": "error", "ename": TIMEOUT, "evalue": f"The code ran longer than the {seconds:g} s limit "
            "and was stopped.", "details": {"seconds": seconds}, "traceback": traceback}


def amount(size: int) -> str:
    """``5 MB`` for sizes of whole MiB, ``1500 bytes`` otherwise."""
    mib = 1024 * 1024
    return f"{size // mib} MB" if size >= mib and size % mib == 0 else f"{size} bytes"


def truncation_notice(limit_bytes: int) -> str:
    """The stderr text that replaces the output of a run past the cap."""
    return (f"\n[output truncated: this run produced more than {amount(limit_bytes)} "
            "of output; the rest was dropped and the run was stopped]\n")


def tables_notice(tables: int, table_bytes: int) -> str:
    """The stderr text of a run that showed more tables than it may keep for paging."""
    return (f"\n[this run showed more tables than it may keep ({tables}, {amount(table_bytes)} together): the later "
            "ones show their first rows only]\n")


def error_output(ename: str, evalue: str) -> dict[str, Any]:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}


class OutputCollector:
    """Keeps (and passes on to ``listener``) the outputs of one execution, up to ``limit_bytes``, and the tables of
    its DataFrame outputs up to ``RUN_TABLES`` and ``RUN_TABLE_BYTES`` (``table_room``)."""

    def __init__(self, limit_bytes: int, memory_mb: int, listener: OutputListener | None = None,
                 keep_table: TableKeeper | None = None):
        self.limit_bytes = limit_bytes
        self.memory_mb = memory_mb
        self.listener = listener
        self.keep_table = keep_table
        self.outputs: list[dict[str, Any]] = []
        self.size = 0
        self.tables = 0  # tables kept for paging, and their bytes
        self.table_bytes = 0
        self.tables_refused = False
        self.truncated = False
        self.timed_out: float | None = None  # the wall clock a run passed: its KeyboardInterrupt is the timeout
        self.pixels = PixelBudget()  # the figure pixels the run's charts may still add

    def table_room(self) -> int:
        """Bytes the run's next table may take (0: it keeps its first rows only, and is not fetched)."""
        if self.truncated or self.keep_table is None or self.tables >= RUN_TABLES:
            return 0
        return min(ARROW_BYTES, RUN_TABLE_BYTES - self.table_bytes)

    async def add_message(self, message: dict[str, Any], table: Path | None = None) -> None:
        """Add the message's output; ``table``: the file of the table its DataFrame bundle names.

        An SVG or Bokeh output is cleaned in a thread (bounded work, yet up to a few hundred
        milliseconds): the caller awaits it before its next message, so outputs keep their order.
        """
        output = output_of(message)
        if output is None:
            _discard(table)
            return
        if self.timed_out is not None and output["output_type"] == "error" and output["ename"] == "KeyboardInterrupt":
            frames = [entry for entry in output["traceback"]  # not IPython's rule, header or "KeyboardInterrupt: "
                      if entry.strip("-\n ") and not entry.startswith("KeyboardInterrupt")]
            output = timeout_output(self.timed_out, frames)
        named = strip_table(output)
        if not self.truncated and needs_thread(output):
            try:
                output = await asyncio.to_thread(sanitize_output, output, self.pixels)
            except asyncio.CancelledError:  # the run ended meanwhile: its table file goes too
                _discard(table)
                raise
        else:
            output = sanitize_output(output, self.pixels)
        self._keep(output, named, table)

    def add(self, output: dict[str, Any], table: Path | None = None) -> None:
        """Add an output (one the server made: an error, a notice)."""
        named = strip_table(output)
        self._keep(sanitize_output(output, self.pixels), named, table)

    def _keep(self, output: dict[str, Any], named: bool, table: Path | None) -> None:
        """Count and pass on a sanitised output; ``named``: whether its bundle named a table (``table``)."""
        if self.truncated or not named or self.keep_table is None:  # the whole table is kept apart, paged later
            _discard(table)
            table = None
        if self.truncated:
            return
        if named and table is None and not self.table_room() and not self.tables_refused:
            self.tables_refused = True
            self.add({"output_type": "stream", "name": "stderr", "text": tables_notice(RUN_TABLES, RUN_TABLE_BYTES)})
        refused = None
        if output["output_type"] == "error" and output["ename"] == MEMORY_ERROR:
            output["evalue"] = f"the card exceeded the {self.memory_mb} MB memory limit"
        self.size += len(json_io.dumps(output))
        if self.size > self.limit_bytes:
            self.truncated = True
            notice = {"output_type": "stream", "name": "stderr", "text": truncation_notice(self.limit_bytes)}
            self.outputs.insert(0, notice)  # read first in the result, not after everything it cut
            _discard(table)
            if self.listener is not None:
                self.listener(notice)
            return
        elif table is not None and self.keep_table is not None:
            self.tables += 1
            self.table_bytes += table.stat().st_size
            try:
                output["output_id"] = self.keep_table(table)
            except BIError as exc:
                refused = error_output(exc.code, exc.message)
        for kept in (output, refused) if refused else (output,):
            self.outputs.append(kept)
            if self.listener is not None:
                self.listener(kept)

    @property
    def has_error(self) -> bool:
        return any(output["output_type"] == "error" for output in self.outputs)


def _discard(table: Path | None) -> None:
    if table is not None:
        table.unlink(missing_ok=True)
