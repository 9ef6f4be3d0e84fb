"""The card editing websocket: code in, ordered outputs out, like a notebook that keeps its kernel.

``GET /api/cards/scratch/ws?datasets=<id>,<id>`` opens a session for code not yet saved
(``load_dataset(name)`` reads the named datasets); ``GET /api/cards/{id}/ws`` one for editing a
saved card (needs edit access, since the socket runs any code), with the card's datasets or those of
``?datasets=``. Code here reads data with the
rights of the person editing: a scratch socket naming a dataset they may not read is refused (404);
a card's socket loads those of its datasets they may read and names the others in the ``session``
message's ``unreadable_datasets`` (a version they save runs with their rights, without those).
A session runs only while the rights it was opened on hold (to edit the card, to read the datasets it
loaded; ``services/session_rights.py``): every run and resume checks them, and once they are gone (a
share revoked, the card taken off the dashboard) the session ends, its socket is closed with 4403
(reason ``access_revoked``) and a resume or run by any route gets 403 ``access_revoked``.
Authenticate with ``Authorization: Bearer <jwt>``, or, from a browser, the subprotocols
``bi.v1, bearer.<jwt>``. To resume after a dropped
connection, reconnect within the grace period (30 s) with ``?session=<id>&after=<last seq seen>``:
the messages after that one are replayed in order, then new ones follow. A resume reaching another API
process than the one that held the session (that one died) reattaches to the same kernel, its variables
intact (``KernelPool.reattach``): numbering goes on after ``after``, and the outputs the kernel sent while no
server held it come first, with their run's ``run_id``; a run that ended meanwhile gets its ``idle`` status and
a ``done`` (status ``ok``, no time: its reply went to the server that died).

Client to server::

    {"type": "execute", "code": "df = load_dataset('sales')\\ndf.head()", "run_id": "r1"}
    {"type": "execute", "code": "df.groupby('店舗').sum()", "run_id": "r2", "auto": true}
    {"type": "interrupt"}
    {"type": "card", "card_id": "3be1..."}
    {"type": "close"}

``card`` says the editor saved its code as that card (a new card's first save): from then on the session
lists under the card's title and runs only while the caller may edit the card, as a card's socket would.
It is answered, not numbered, with ``{"type": "card", "card_id": ...}``, or for a card they may not edit with
``{"type": "error", "code": "not_found", ...}`` (or ``forbidden``), which changes nothing.

``close`` is an explicit leave (the editor's page was left): the session and its kernel end at once and
the socket is closed (1000, ``closed_by_user``); ``DELETE /api/card-sessions/{id}`` does the same from
``fetch(..., {keepalive: true})`` as a page is hidden. A socket that drops without it keeps the grace period.

A handshake whose caller signed in but whose session cannot be opened (``session_limit``, a dataset deleted
or not readable, ``no_capacity``, ``execution_off``) is refused with the API's error (an HTTP status, no
upgrade), except for a browser (subprotocol ``bi.v1``), which cannot read a refused handshake: its socket
opens, gets the error, not numbered, and is closed with ``4000 + status`` (4429, 4503, 4404, 4403)::

    {"type": "refused", "status": 429, "error": {"code": "session_limit", "message": "...", "details": {"held": 4, "limit": 4}}}

An ``auto`` run (the editor's Auto-run, when typing pauses) does not wait: a run still going is
interrupted first, and of auto-runs sent meanwhile only the newest runs; code that does not parse is
not run (``done`` with status ``syntax_error``). Auto-runs are audited per socket as one
``card_auto_runs`` event (how many, how many interrupted), not one per run.

Server to client; every message has ``seq``, one more than the one before::

    {"seq": 1, "type": "session", "session_id": "9f...", "limits": {"wall_seconds": 10, "output_bytes": 5242880, "memory_mb": 2048}}
    {"seq": 1, "type": "session", "session_id": "9f...", "limits": {...}, "unreadable_datasets": ["payments"]}
    {"seq": 2, "type": "status", "state": "busy", "run_id": "r1"}
    {"seq": 3, "type": "output", "run_id": "r1", "output": {"output_type": "stream", "name": "stdout", "text": "hi\\n"}}
    {"seq": 4, "type": "output", "run_id": "r1", "output": {"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {}, "execution_count": 1}}
    {"seq": 5, "type": "output", "run_id": "r1", "output": {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": ["..."]}}
    {"seq": 5, "type": "output", "run_id": "r1", "output": {"output_type": "execute_result", "output_id": "3be1...", "data": {"application/vnd.bi.dataframe.v1+json": {"columns": [{"name": "店舗", "dtype": "str"}], "index": [], "row_count": 1200, "rows": [["東京"], ...], "rows_available": 1200, "complete": true}, "text/plain": "..."}, ...}}
    {"seq": 5, "type": "output", "run_id": "r1", "output": {"output_type": "display_data", "display_id": "p1001", "data": {"application/vnd.bi.bokeh-item.v1+json": {"target_id": null, "root_id": "p1001", "doc": {...}}, "text/plain": "figure(id='p1001', ...)"}, "metadata": {}}}
    {"seq": 5, "type": "output", "run_id": "r2", "output": {"output_type": "bokeh_patch", "root_id": "p1001", "seq": 1, "patch": {"events": [{"kind": "ColumnsStreamed", ...}]}}}
    {"seq": 6, "type": "status", "state": "idle", "run_id": "r1"}
    {"seq": 7, "type": "done", "run_id": "r1", "status": "ok", "execution_count": 1, "execution_time_ms": 12, "truncated": false, "kernel_restarted": false}
    {"seq": 8, "type": "done", "run_id": "r2", "status": "timeout", "code": "timeout", "details": {"seconds": 10}, "message": "The code ran longer than the 10 s limit and was stopped.", ...}
    {"seq": 8, "type": "done", "run_id": "r3", "status": "error", "code": "kernel_lost", "details": {}, "message": "...", "execution_time_ms": null, ...}
    {"seq": 9, "type": "done", "run_id": "r4", "status": "syntax_error", "syntax": {"line": 2, "column": 9, "message": "'(' was never closed"}, "execution_time_ms": null, ...}
    {"seq": 9, "type": "kernel_restarted", "reason": "the card exceeded the 2048 MB memory limit and its kernel was stopped"}
    {"seq": 10, "type": "error", "code": "busy", "run_id": "r3", "message": "The previous run has not finished; ..."}
    {"seq": 11, "type": "closed", "reason": "idle"}
    {"seq": 12, "type": "broken", "reason": "Its kernel stopped (...) and no new one could be started: ..."}

A run stopped at the wall clock ends with the error output ``{"output_type": "error", "ename": "timeout",
"evalue": "The code ran longer than the 10 s limit and was stopped.", "details": {"seconds": 10}, "traceback":
[where the code was]}`` in place of the ``KeyboardInterrupt`` that stopped it; a run that did not happen (its
``done`` has a ``code``) has no ``execution_time_ms``. Tracebacks leave out the frames of the platform's own
kernel code, and the notice of output cut at the cap comes first in a result's outputs.

Outputs have the shapes of ``server/execution/outputs.py`` (the ``seq`` 5 lines are alternatives),
sanitised by ``server/execution/sanitize.py``; a DataFrame's further rows come from
``GET /api/outputs/{output_id}/rows``, a Bokeh item renders with BokehJS from ``GET /api/bokeh``
and its patches apply with ``Document.apply_json_patch``, in ``seq`` order. A message the server cannot use gets
``{"type": "error", "code": "bad_message", "message": ...}`` (not numbered: it is not replayed),
and the socket stays open. A session keeps its newest messages up to ``LiveSessions.replay_buffer_bytes``
(8 MB); a resume some of whose messages are no longer kept first gets, not numbered::

    {"type": "outputs_lost", "after": 4, "lost": 1200, "resumes_at": 1205, "message": "1200 messages (outputs) ..."}

A client that falls more than ``limits.SOCKET_PENDING_BYTES`` (8 MB) behind in reading is closed with
code 4008: it reconnects with ``?session=&after=`` to resume.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from dashboards_spec import bounded

from .. import json_io
from ..errors import BIError, InvalidRequestError
from ..execution.live import REPLACED, LiveSession, LiveSessions
from ..execution.session import ACCESS_REVOKED, Grant
from ..models import User
from ..services.audit import record
from ..services.card_runs import card_data
from .base import STATUS_OF_ERROR, log, refuse
from .socket_base import SUBPROTOCOL, JSONSocket

REVOKED = 4403  # the close code of a session ended because the caller's access to it was revoked

CLIENT_MESSAGE = bounded.Validator({
    "oneOf": [
        {"type": "object", "required": ["type", "code"], "additionalProperties": False,
         "properties": {"type": {"const": "execute"}, "code": {"type": "string", "maxLength": 100_000},
                        "run_id": {"type": "string", "maxLength": 64}, "auto": {"type": "boolean"}}},
        {"type": "object", "required": ["type"], "additionalProperties": False,
         "properties": {"type": {"enum": ["interrupt", "close"]}}},
        {"type": "object", "required": ["type", "card_id"], "additionalProperties": False,
         "properties": {"type": {"const": "card"}, "card_id": {"type": "string", "minLength": 1, "maxLength": 64}}},
    ],
})


class CardSocket(JSONSocket):
    """One socket of a live session; the session outlives it for the grace period."""

    too_slow_reason = "Too far behind; reconnect with ?session=<id>&after=<last seq> to resume."

    user: User | None = None
    live: LiveSession | None = None
    refusal: BIError | None = None  # why the session could not be opened, told to a browser once upgraded
    unreadable: list[str] = []  # names of datasets the card reads that the caller may not

    def initialize(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.runs = 0

    @property
    def sessions(self) -> LiveSessions:
        return self.settings["live_sessions"]

    # handshake ---------------------------------------------------------------
    async def prepare(self) -> None:
        """Authenticate and find or open the session before upgrading; failures are plain HTTP errors, but
        for a signed-in browser's (``refused``)."""
        try:
            self.user = self.hold_place(await self.authenticate(self.token()))
            structlog.contextvars.bind_contextvars(user_id=self.user.id)
        except BIError as exc:
            refuse(self, exc)
            return
        try:
            resume = self.get_query_argument("session", None)
            if resume:
                after = self.get_query_argument("after", "")
                self.live = await self.sessions.resume(self.user, resume, int(after) if after.isdigit() else 0)
            else:
                self.live = await self.sessions.open(self.user, *await self.datasets_to_load())
        except BIError as exc:
            if SUBPROTOCOL in self.request.headers.get("Sec-WebSocket-Protocol", ""):
                self.refusal = exc
            else:
                refuse(self, exc)

    async def datasets_to_load(self) -> tuple[list[tuple[str, Any]], Grant]:
        """The datasets named by ``?datasets=``, each checked against the caller's access, and the grant
        the session runs on (the right to read them)."""
        assert self.user is not None
        ids = list(dict.fromkeys(i for i in self.get_query_argument("datasets", "").split(",") if i))
        if len(ids) > 20:
            raise InvalidRequestError("A session can load at most 20 datasets.")
        return await self.settings["datasets"].files_of(self.user, ids), Grant(tuple(ids))

    # the socket --------------------------------------------------------------
    def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)  # no Nagle + delayed-ACK stall on small messages
        if self.refusal is not None:
            status = STATUS_OF_ERROR.get(type(self.refusal), 400)
            self.send_frame(json_io.dumps({"type": "refused", "status": status, "error": {
                "code": self.refusal.code, "message": self.refusal.message, "details": self.refusal.details}}))
            self.close(4000 + status, self.refusal.code)
            return
        assert self.live is not None
        if not self.watch_revocations():
            return
        after = self.get_query_argument("after", None)
        self.live.attach(self, int(after) if after and after.isdigit() else None)
        if after is None:
            unreadable = {"unreadable_datasets": self.unreadable} if self.unreadable else {}
            self.live.emit({"type": "session", "session_id": self.live.id,
                            "limits": self.live.session.public()["limits"], **unreadable})
        log.info("socket_opened", endpoint=self.endpoint, session_id=self.live.id, resumed=after is not None)

    async def on_message(self, message: str | bytes) -> None:
        if self.live is None:
            return  # refused: the socket is closing
        try:
            body = self.read_message_as(CLIENT_MESSAGE, message)
        except ValueError as reason:
            self.send_frame(json_io.dumps({"type": "error", "code": "bad_message",
                                       "message": f"Cannot use that message: {reason}. Send "
                                                  '{"type": "execute", "code": ...} or {"type": "interrupt"}.'}))
            return
        if body["type"] == "execute":
            self.runs += 1
            self.live.execute(body["code"], body.get("run_id") or f"run-{self.live.seq + 1}", body.get("auto", False))
        elif body["type"] == "close":
            await self.sessions.close(self.live)
        elif body["type"] == "card":
            await self.saved_as(body["card_id"])
        else:
            await self.live.interrupt()

    async def saved_as(self, card_id: str) -> None:
        """The session's code is now the card ``card_id``: it lists as the card's and is granted on it."""
        assert self.user is not None and self.live is not None
        try:
            await self.settings["cards"].get_visible(self.user, card_id, needed="edit")
        except BIError as exc:
            self.send_frame(json_io.dumps({"type": "error", "code": exc.code, "message": exc.message}))
            return
        session = self.live.session
        session.grant = Grant(session.grant.dataset_ids if session.grant else (), card_id)
        log.info("session_card_saved", session_id=self.live.id, card_id=card_id)
        self.send_frame(json_io.dumps({"type": "card", "card_id": card_id}))

    def end(self, reason: str) -> None:
        if reason == ACCESS_REVOKED:
            self.close(REVOKED, "access_revoked: your access was revoked, so this session has ended")
        elif reason == REPLACED:  # a resume elsewhere: never two replays queued for one session
            self.close_now(1000, reason)
        else:
            self.close(1000, reason[:120])

    def on_close(self) -> None:
        self.stop_watching()
        if self.live is not None:
            self.live.detach(self, self.sessions.grace_seconds)
            self.audit_auto_runs(self.live)
        log.info("socket_closed", endpoint=self.endpoint, session_id=self.live.id if self.live else None,
                 user_id=self.user.id if self.user else None, runs=self.runs,
                 duration_ms=round((time.perf_counter() - self.started) * 1000, 2), code=self.close_code)


    def audit_auto_runs(self, live: LiveSession) -> None:
        """One audit event for the auto-runs asked for since the last one (one per pause in typing: too
        many for an event each)."""
        runs, interrupted = live.take_auto_counts()
        if runs:
            assert self.user is not None
            asyncio.ensure_future(record(self.settings["cards"].store, "card_auto_runs", user_id=self.user.id,
                                         session_id=live.id, card_id=self.path_kwargs.get("card_id"), runs=runs,
                                         interrupted=interrupted))


class CardEditSocket(CardSocket):
    """``/api/cards/{id}/ws``: the card's editor, with those of the card's datasets loaded that the
    caller may read, or with ``?datasets=`` those named (the editor's choice, not saved yet), as a scratch
    socket loads them; its session runs only while the caller may still edit the card, and lists as the card's."""

    async def datasets_to_load(self) -> tuple[list[tuple[str, Any]], Grant]:
        assert self.user is not None
        _, version = await self.settings["cards"].get_visible(self.user, self.path_kwargs["card_id"], needed="edit")
        if self.get_query_argument("datasets", None) is not None:
            files, grant = await super().datasets_to_load()
            return files, Grant(grant.dataset_ids, version.card_id)
        data = await card_data(self.settings["cards"].records, self.user, version)
        self.unreadable = [dataset.name for dataset in data.unreadable]
        return data.files, Grant(tuple(dataset_id for dataset_id, _ in data.versions), version.card_id)
