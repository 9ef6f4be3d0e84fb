"""``/api/dashboards/{id}/ws``: a live dashboard.

Server to client (JSON text frames):

    {"type": "snapshot", "dashboard": {...the dashboard's JSON...},
     "cards": {"sales": {"card_id": "...", "title": "月別売上", "parameters": [...], "seq": 2, "result": null}},
     "viewers": [{"user_id": "...", "name": "Ana", "email": "ana@example.com"}]}
    {"type": "output", "card": "sales", "seq": 3,
     "result": {"status": "ok", "outputs": [...], "cached": true, "execution_time_ms": 41}}
    {"type": "output", "card": "sales", "personal": true, "result": {...}}
    {"type": "queued", "card": "sales", "position": 2}
    {"type": "queued", "card": "sales", "personal": true, "position": 0}
    {"type": "new_data", "dataset_id": "...", "version": 3}
    {"type": "presence", "viewers": [...]}
    {"type": "error", "code": "bad_message", "message": "..."}

A result carries its freshness: ``computed_at``, ``reason`` (``edit``, ``schedule``, ``new_data``,
``forced``; ``unknown`` for results stored before results said; ``null`` with ``execution_time_ms`` null for a
card that could not run), ``card_version`` and ``dataset_versions`` (id to version). A snapshot's cards carry
the current ``dataset_versions`` of what they read, and ``new_data`` says a dataset got a new version: a tile
whose result read an older one is out of date until its new output comes. ``queued`` is the place in line of a
tile's run that waits its turn (1 is next; 0: it runs now).

A snapshot comes on join, after every new version of the dashboard (layout, cards, title) and on
request. It carries no outputs: every card's ``result`` in it is ``null`` and its output follows as an
``output`` message (for a card run before: next, one at a time as the client reads them; for one being
run: when its run ends). ``seq`` counts the shared outputs of each card (in a snapshot, the one
before the output that follows): a client that sees a gap asks for a snapshot. Personal outputs
answer this client's own parameter values and are not numbered.

Client to server:

    {"type": "parameters", "values": {"region": "関西"}}   run the cards with these values, for me
    {"type": "resync"}                                     send me a fresh snapshot

A socket that falls more than ``limits.SOCKET_PENDING_BYTES`` behind is closed with code 4008 and rejoins
for a fresh snapshot; a revoked share closes it with 4403.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from dashboards_spec import bounded

from ..errors import BIError
from ..models import User
from ..services.dashboard_live import DashboardHub, Room, error_result, frame_of
from .base import log, refuse
from .socket_base import JSONSocket

CLIENT_MESSAGE = bounded.Validator({
    "oneOf": [
        {"type": "object", "required": ["type", "values"], "additionalProperties": False,
         "properties": {"type": {"const": "parameters"}, "values": {"type": "object", "maxProperties": 20}}},
        {"type": "object", "required": ["type"], "additionalProperties": False,
         "properties": {"type": {"const": "resync"}}},
    ],
})


class DashboardSocket(JSONSocket):
    too_slow_reason = "Too far behind; rejoin for a fresh snapshot."
    user: User
    room: Room | None = None

    def initialize(self, endpoint: str) -> None:
        super().initialize(endpoint)
        self.started = time.perf_counter()

    @property
    def hub(self) -> DashboardHub:
        return self.settings["dashboard_hub"]

    async def prepare(self) -> None:
        """Authenticate and check access before upgrading; failures are plain HTTP errors."""
        try:
            self.user = self.hold_place(await self.authenticate(self.token()))
            structlog.contextvars.bind_contextvars(user_id=self.user.id)
            await self.settings["dashboards"].authorize(self.user, self.path_kwargs["dashboard_id"])
        except BIError as exc:
            refuse(self, exc)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        if not self.watch_revocations():
            return
        try:
            self.room = await self.hub.join(self, self.path_kwargs["dashboard_id"])
        except BIError as exc:  # revoked or deleted while the socket opened
            self.end(4403, exc.message)
            return
        log.info("dashboard_socket_opened", endpoint=self.endpoint, dashboard_id=self.room.dashboard_id)

    async def on_message(self, message: str | bytes) -> None:
        try:
            body = self.read_message_as(CLIENT_MESSAGE, message)
        except ValueError as reason:
            self.send_frame(frame_of({"type": "error", "code": "bad_message",
                                     "message": f"Cannot use that message: {reason}. Send "
                                                '{"type": "parameters", "values": {...}} or {"type": "resync"}.'}))
            return
        if self.room is None:
            return
        try:
            if body["type"] == "parameters":
                await self.hub.personal_run(self, self.room.dashboard_id, body["values"])
            else:
                await self.hub.snapshot(self, self.room)
        except BIError as exc:
            self.send_frame(frame_of({"type": "error", **error_result(exc)["outputs"][0]}))

    def end(self, code: int, reason: str) -> None:
        self.close(code, reason[:120])

    def on_close(self) -> None:
        self.stop_watching()
        if self.room is not None:
            self.hub.leave(self, self.room)
        log.info("dashboard_socket_closed", endpoint=self.endpoint, dashboard_id=self.path_kwargs["dashboard_id"],
                 duration_ms=round((time.perf_counter() - self.started) * 1000, 2), code=self.close_code)
