"""Live dashboards: who is watching each dashboard, what its cards show, and what changes it.

A ``Room`` holds the sockets open on one dashboard and, per card key, the latest output with a
sequence number. A card's output is published (numbered, serialised once, written to every
socket) when the card runs with the dashboard's default parameters: an editor re-ran it, its
code was saved, a dataset it reads got a new version (re-run by itself, as the dashboard's
owner, whether or not anyone watches), or its scheduled refresh came. A viewer's own parameter
values get their own runs, sent to that viewer's socket only. Results come through the card
runner, so unchanged inputs are answered from the cache.

A tile's current output (what a card shows with the dashboard's defaults) has its tables pinned
against quota eviction (``services/output_tables.py``) until another output replaces it.

A room keeps each tile's output serialised, once for all its tiles and sockets (tiles showing the same
output share the bytes). A snapshot carries no outputs: they follow it as ``output`` messages, one at a
time as the client reads them (``BoundedSocket.room_for``), so that a socket that stops reading costs
at most its pending budget (``limits.SOCKET_PENDING_BYTES``) plus one tile, however big the dashboard.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from traitlets import Float
from traitlets.config import LoggingConfigurable

from .. import json_io
from ..errors import BIError, NotFoundError
from ..logs import get_logger
from ..models import Dashboard, DashboardVersion, User
from ..storage.base import Store
from .card_runs import CardRunner
from .dashboards import DashboardService
from .output_tables import OutputTables, output_ids

log = get_logger("bi.dashboards")

PRESENCE_DELAY = 0.2  # seconds over which joins and leaves make one presence message


class Viewer(Protocol):
    user: User

    def send_frame(self, frame: bytes) -> None: ...

    async def room_for(self, size: int) -> bool: ...

    def end(self, code: int, reason: str) -> None: ...


def frame_of(message: dict[str, Any]) -> bytes:
    """One text frame for viewers, written once for all of them."""
    return json_io.dumps(message)


class Room:
    """The sockets open on one dashboard and the latest output of each of its cards."""

    def __init__(self, dashboard_id: str):
        self.dashboard_id = dashboard_id
        self.viewers: set[Viewer] = set()
        self.seq: dict[str, int] = {}
        self.latest: dict[str, bytes] = {}  # card key -> its output's result, serialised
        self.unsent: dict[Viewer, list[str]] = {}  # card keys whose output a viewer's snapshot still owes it
        self.running: set[str] = set()  # cards being run because a snapshot found no result
        self.joining = 0  # viewers whose snapshot is being made
        self._announced: list[dict[str, str]] = []
        self._announcing: asyncio.TimerHandle | None = None

    def broadcast(self, message: dict[str, Any]) -> None:
        frame = frame_of(message)  # serialised once for every socket
        for viewer in list(self.viewers):
            viewer.send_frame(frame)

    def keep(self, key: str, result: dict[str, Any] | bytes) -> None:
        """``result`` is card ``key``'s output now; tiles showing the same output share its bytes."""
        data = result if isinstance(result, bytes) else json_io.dumps(result)
        data = next((kept for kept in self.latest.values() if kept == data), data)
        self.seq[key] = self.seq.get(key, 0) + 1
        self.latest[key] = data

    def output_frame(self, key: str) -> bytes:
        """The ``output`` message of card ``key``'s latest output, its result spliced in as kept."""
        return b"".join((b'{"type":"output","card":', json_io.dumps(key), b',"seq":', str(self.seq[key]).encode(),
                         b',"result":', self.latest[key], b"}"))

    def publish(self, key: str, result: dict[str, Any] | bytes) -> None:
        self.keep(key, result)
        frame = self.output_frame(key)
        for viewer in list(self.viewers):
            if key in self.unsent.get(viewer, ()):
                self.unsent[viewer].remove(key)  # what its snapshot owed it comes now
            viewer.send_frame(frame)

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        self.unsent.pop(viewer, None)

    def presence(self) -> list[dict[str, str]]:
        users = {viewer.user.id: viewer.user for viewer in self.viewers}
        return sorted(({"user_id": u.id, "name": u.name, "email": u.email} for u in users.values()),
                      key=lambda viewer: viewer["email"])

    def announce(self) -> None:
        """Tell viewers who is here, once for a burst of joins and leaves, and only if it changed:
        a thousand sockets joining must not cost a million presence messages."""
        if self._announcing is None:
            self._announcing = asyncio.get_running_loop().call_later(PRESENCE_DELAY, self._announce)

    def _announce(self) -> None:
        self._announcing = None
        viewers = self.presence()
        if viewers != self._announced:
            self._announced = viewers
            self.broadcast({"type": "presence", "viewers": viewers})


class DashboardHub(LoggingConfigurable):
    refresh_tick = Float(15.0, help="Seconds between looks for dashboards whose scheduled refresh is due.").tag(config=True)

    def __init__(self, store: Store, dashboards: DashboardService, runner: CardRunner, tables: OutputTables,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.dashboards = dashboards
        self.runner = runner
        self.tables = tables
        self.rooms: dict[str, Room] = {}
        self._tiles: dict[tuple[str, str], list[str]] = {}  # (dashboard id, card key) -> tables it shows
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refreshed: dict[str, float] = {}  # when each dashboard's last refresh started
        self._refreshing: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        dashboards.revoked.append(self._revoked)
        runner.finished.append(self._card_ran)
        runner.cards.saved.append(lambda user, card_id: self._spawn(self._card_saved(user, card_id)))
        dashboards.datasets.new_version.append(lambda dataset_id: self._spawn(self._dataset_changed(dataset_id)))

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._refresh_loop())

    async def stop(self) -> None:
        for task in [self._ticker, *self._tasks]:
            if task is not None:
                task.cancel()
        for room in self.rooms.values():
            for viewer in list(room.viewers):
                viewer.end(1001, "the server is stopping")

    # viewers -----------------------------------------------------------------------
    async def join(self, viewer: Viewer, dashboard_id: str) -> Room:
        """Send ``viewer`` (already authorised) a snapshot and add it; cards never run get run now."""
        room = self.rooms.setdefault(dashboard_id, Room(dashboard_id))
        room.joining += 1
        try:
            await self.snapshot(viewer, room)
        finally:
            room.joining -= 1
        room.announce()
        return room

    def leave(self, viewer: Viewer, room: Room) -> None:
        room.leave(viewer)
        if room.viewers:
            room.announce()
        elif not room.joining and self.rooms.get(room.dashboard_id) is room:
            del self.rooms[room.dashboard_id]

    async def snapshot(self, viewer: Viewer, room: Room) -> None:
        """Send the dashboard, then (as the client reads) every card's latest output, and from then on
        what is published."""
        dashboard, version, access = await self.dashboards.get_visible(viewer.user, room.dashboard_id)
        infos = {}
        for entry in version.document["cards"]:
            key = entry["key"]
            if key not in room.latest and key not in room.running:
                result = await self._cached(viewer.user, version.document, entry)
                if result is None:  # many viewers joining at once start one run
                    room.running.add(key)
                    self._spawn(self._first_run(viewer.user, room, key))
                elif key not in room.latest:  # nothing was published while the cache answered
                    room.keep(key, result)
                    self._shown(room.dashboard_id, key, result)
            infos[key] = await self._card_info(entry["card"])
        # from here on no await: nothing is published between the snapshot and joining the room
        room.viewers.add(viewer)
        owed = room.unsent[viewer] = [key for key in infos if key in room.latest]
        cards = {key: {**info, "seq": room.seq.get(key, 0) - (1 if key in owed else 0), "result": None}
                 for key, info in infos.items()}
        viewer.send_frame(frame_of({"type": "snapshot", "dashboard": dashboard_json(dashboard, version, access),
                                    "cards": cards, "viewers": room.presence()}))
        self._spawn(self._send_owed(viewer, room))

    async def _send_owed(self, viewer: Viewer, room: Room) -> None:
        """Send the outputs ``viewer``'s snapshot owes it, each once its client has read enough of the last."""
        while keys := room.unsent.get(viewer):
            if not await viewer.room_for(len(room.latest.get(keys[0], b""))):
                return
            keys = room.unsent.get(viewer, [])
            key = keys.pop(0) if keys else None
            if key in room.latest:
                viewer.send_frame(room.output_frame(key))

    async def personal_run(self, viewer: Viewer, dashboard_id: str, values: dict[str, Any]) -> None:
        """Run the cards that take any of ``values`` for ``viewer`` alone (through the cache)."""
        _, version, _ = await self.dashboards.get_visible(viewer.user, dashboard_id)
        for entry in version.document["cards"]:
            if not set(values) & set(await self._bound(version.document, entry, values)):
                continue  # the card does not take any of them: what it shows stands
            try:
                result = await self.run_card(viewer.user, version.document, entry, values)
            except BIError as exc:
                result = error_result(exc)
            frame = frame_of({"type": "output", "card": entry["key"], "personal": True, "result": result})
            if not await viewer.room_for(len(frame)):
                return
            viewer.send_frame(frame)

    # runs --------------------------------------------------------------------------
    async def run(self, user: User, dashboard_id: str, key: str, values: dict[str, Any]) -> dict[str, Any]:
        """Run one card of the dashboard; with the default values its output goes to every viewer."""
        _, version, _ = await self.dashboards.get_visible(user, dashboard_id)
        entry = next((e for e in version.document["cards"] if e["key"] == key), None)
        if entry is None:
            raise NotFoundError(f"The dashboard has no card {key!r}.")
        result = await self.run_card(user, version.document, entry, values)
        if not values:
            self._publish(dashboard_id, key, result)
        return result

    async def run_card(self, user: User, document: dict[str, Any], entry: dict[str, Any],
                       values: dict[str, Any], force: bool = False) -> dict[str, Any]:
        return await self.runner.run(user, entry["card"], await self._bound(document, entry, values), force)

    async def _cached(self, user: User, document: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return await self.runner.cached(user, entry["card"], await self._bound(document, entry, {}))
        except BIError as exc:
            return error_result(exc)

    async def _bound(self, document: dict[str, Any], entry: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """The dashboard's parameter values (defaults, then ``values``) that the card declares."""
        chosen = {p["name"]: p["default"] for p in document.get("parameters", [])} | values
        card = await self.store.get_card(entry["card"])
        version = await self.store.get_card_version(card.id, card.current_version) if card else None
        declared = {p["name"] for p in version.parameters} if version else set()
        return {name: value for name, value in chosen.items() if name in declared}

    async def _first_run(self, user: User, room: Room, key: str) -> None:
        try:
            await self._run_and_publish(user, room.dashboard_id, key)
        finally:
            room.running.discard(key)

    async def _run_and_publish(self, user: User, dashboard_id: str, key: str, force: bool = False) -> None:
        version = await self.dashboards.current(dashboard_id)
        if version is None:
            return
        entry = next((e for e in version.document["cards"] if e["key"] == key), None)
        if entry is None:
            return
        try:
            result = await self.run_card(user, version.document, entry, {}, force)
        except BIError as exc:
            result = error_result(exc)
        self._publish(dashboard_id, key, result)

    def _publish(self, dashboard_id: str, key: str, result: dict[str, Any], data: bytes | None = None) -> None:
        """``result`` (``data`` if serialised already) is the tile's output now: to every viewer, and its
        tables pinned."""
        self._shown(dashboard_id, key, result)
        if dashboard_id in self.rooms:
            self.rooms[dashboard_id].publish(key, data or result)

    def _shown(self, dashboard_id: str, key: str, result: dict[str, Any] | None) -> None:
        """Pin the tables of a tile's new output; unpin those of the one it replaces, unless another tile shows them."""
        tile = (dashboard_id, key)
        before = self._tiles.pop(tile, [])
        if result is not None and output_ids(result["outputs"]):
            self._tiles[tile] = output_ids(result["outputs"])
        shown = {output_id for ids in self._tiles.values() for output_id in ids}
        self._spawn(self.tables.pin(self._tiles.get(tile, [])))
        self._spawn(self.tables.pin([output_id for output_id in before if output_id not in shown], pinned=False))

    async def _card_info(self, card_id: str) -> dict[str, Any]:
        card = await self.store.get_card(card_id)
        version = await self.store.get_card_version(card.id, card.current_version) if card else None
        if version is None:
            return {"card_id": card_id, "title": "(deleted card)", "parameters": []}
        return {"card_id": card_id, "title": version.title, "parameters": list(version.parameters)}

    # what changes dashboards ---------------------------------------------------------
    def _card_ran(self, card_id: str, values: dict[str, Any], result: dict[str, Any]) -> None:
        """A run through the card API with no parameters given shows on every dashboard watching the card."""
        self._spawn(self._show_run(card_id, values, result))

    async def _show_run(self, card_id: str, values: dict[str, Any], result: dict[str, Any]) -> None:
        if not self.rooms:
            return
        data = json_io.dumps(result)
        for room in list(self.rooms.values()):
            version = await self.dashboards.current(room.dashboard_id)
            if version is None:
                continue
            for entry in version.document["cards"]:
                if entry["card"] == card_id and await self._bound(version.document, entry, {}) == values \
                        and room.latest.get(entry["key"]) != data:
                    self._publish(room.dashboard_id, entry["key"], result, data)

    def dashboard_saved(self, dashboard: Dashboard, version: DashboardVersion) -> None:
        """Tell viewers of the new version (layout, cards); cards new to it get run. What the room
        kept may be another card's, or for other parameter defaults, now: it is looked up again."""
        room = self.rooms.get(dashboard.id)
        if room is None:
            return
        room.latest.clear()
        for viewer in list(room.viewers):
            self._spawn(self.snapshot(viewer, room))

    def dashboard_deleted(self, dashboard_id: str) -> None:
        for dashboard, key in [tile for tile in self._tiles if tile[0] == dashboard_id]:
            self._shown(dashboard, key, None)
        room = self.rooms.pop(dashboard_id, None)
        for viewer in list(room.viewers) if room else ():
            viewer.end(4404, "The dashboard was deleted.")

    async def _card_saved(self, user: User, card_id: str) -> None:
        for room in list(self.rooms.values()):
            version = await self.dashboards.current(room.dashboard_id)
            for entry in version.document["cards"] if version else ():
                if entry["card"] == card_id:
                    await self._run_and_publish(user, room.dashboard_id, entry["key"])

    async def _dataset_changed(self, dataset_id: str) -> None:
        """Re-run, as each dashboard's owner, the cards that read the dataset."""
        for dashboard in await self.store.list_dashboards():
            await self._rerun(dashboard, lambda datasets: dataset_id in datasets, force=False)

    async def _rerun(self, dashboard: Dashboard, reads: Any, force: bool) -> None:
        owner = await self.store.get_user(dashboard.owner_id)
        version = await self.dashboards.current(dashboard.id)
        if owner is None or version is None:
            return
        for entry in version.document["cards"]:
            card = await self.store.get_card(entry["card"])
            card_version = await self.store.get_card_version(card.id, card.current_version) if card else None
            if card_version is not None and reads(card_version.datasets):
                await self._run_and_publish(owner, dashboard.id, entry["key"], force)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_tick)
            try:
                await self.refresh_due()
            except Exception:  # a store hiccup must not end the schedule
                log.exception("dashboard_refresh_failed")

    async def refresh_due(self) -> list[str]:
        """Start re-running (past the cache) the cards of every dashboard whose refresh interval has
        passed, as its owner, unless its previous refresh still runs; the dashboards started."""
        now, started = time.monotonic(), []
        for dashboard in await self.store.list_dashboards():
            version = await self.dashboards.current(dashboard.id)
            refresh = version.document.get("refresh") if version else None
            if not refresh or dashboard.id in self._refreshing:
                continue
            if now - self._refreshed.setdefault(dashboard.id, now) >= refresh["every_seconds"]:
                self._refreshed[dashboard.id] = now
                self._refreshing.add(dashboard.id)
                self._spawn(self._refresh(dashboard))
                started.append(dashboard.id)
        return started

    async def _refresh(self, dashboard: Dashboard) -> None:
        log.info("dashboard_refresh", dashboard_id=dashboard.id)
        try:
            await self._rerun(dashboard, lambda datasets: True, force=True)
        finally:
            self._refreshing.discard(dashboard.id)

    def _revoked(self, dashboard_id: str, user_id: str) -> None:
        room = self.rooms.get(dashboard_id)
        for viewer in list(room.viewers) if room else ():
            if viewer.user.id == user_id:
                viewer.end(4403, "Your access to this dashboard was revoked.")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dashboard_task_failed", error=repr(task.exception()))


def dashboard_json(dashboard: Dashboard, version: DashboardVersion, access: str) -> dict[str, Any]:
    fields = version.public()
    fields["updated_by"] = fields.pop("created_by")
    return {**fields, **dashboard.public(), "access": access}


def error_result(exc: BIError) -> dict[str, Any]:
    """A card that could not run, shown in its place: the reason as an error output."""
    return {"status": "error", "cached": False, "execution_time_ms": 0,
            "outputs": [{"output_type": "error", "ename": exc.code, "evalue": exc.message, "traceback": []}]}
