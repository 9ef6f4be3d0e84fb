"""Live dashboards: who is watching each dashboard, what its cards show, and what changes it.

A ``Room`` holds the sockets open on one dashboard and, per card key, the latest output with a
sequence number. A card's output is published (numbered, serialised once, written to every
socket) when the card runs with the dashboard's default parameters: an editor re-ran it, its
code was saved, a dataset it reads got a new version (re-run by itself, as the dashboard's
owner, whether or not anyone watches), or its scheduled refresh came. A viewer's own parameter
values get their own runs, sent to that viewer's socket only. Results come through the card
runner, so unchanged inputs are answered from the cache.

A tile's current output (what a card shows with the dashboard's defaults) has its tables and its cached
outputs (``result_id``) pinned against quota eviction (``services/output_tables.py``) until another output
replaces it.

Everything that changes what viewers see travels over the bus (``server/bus``), so that it reaches
the viewers on every API task, this one included: outputs (``dashboard.output``), new versions and
deletions of a dashboard (``dashboard.changed``, ``dashboard.deleted``: snapshots are made again),
revoked shares (``dashboard.revoked``), the place in line of a tile's run that waits for its turn
(``dashboard.queued``), a dataset's new version (``dashboard.new_data``: tiles that read an older one say
so until their new output comes) and who watches (``dashboard.presence``: each task announces its
own viewers of a dashboard, again every ``PRESENCE_HEARTBEAT`` seconds, and forgets another task's
after ``PRESENCE_TTL``). While the bus is down each task's viewers see what happens on their task; when it
is back they get a fresh snapshot, with what the others did meanwhile read from the store. Work that must happen once whatever the number of tasks, a scheduled refresh
round or a re-run for a new dataset version, runs under a lease in the store (``Lease``): results are
written and published only while it is held.

A room keeps each tile's output serialised, once for all its tiles and sockets (tiles showing the same
output share the bytes). A snapshot carries no outputs: they follow it as ``output`` messages, one at a
time as the client reads them (``BoundedSocket.room_for``), so that a socket that stops reading costs
at most its pending budget (``limits.SOCKET_PENDING_BYTES``) plus one tile, however big the dashboard.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from traitlets import Float
from traitlets.config import LoggingConfigurable

from .. import json_io
from ..bus import Bus, Envelope
from ..errors import BIError, LeaseLostError, NotFoundError, PermissionDeniedError
from ..logs import get_logger
from ..models import Dashboard, DashboardVersion, Lease, User, refresh_seconds
from ..storage.base import Store
from ..ws_frames import Frame, Writer, send_to_all
from .card_runs import CardRunner, ReadAhead, read_ahead
from .run_turns import Told
from .dashboards import DashboardService, Tiles, card_ids
from .output_tables import OutputTables, output_ids
from .audit import record

log = get_logger("bi.dashboards")

PRESENCE_DELAY = 0.2  # seconds over which joins and leaves make one presence message
PRESENCE_HEARTBEAT = 10.0  # seconds between a task's announcements of its viewers of a dashboard
PRESENCE_TTL = 3 * PRESENCE_HEARTBEAT  # another task's viewers are forgotten this long after it last told

OUTPUT, CHANGED, DELETED, REVOKED, PRESENCE, QUEUED, NEW_DATA = (
    "dashboard.output", "dashboard.changed", "dashboard.deleted", "dashboard.revoked", "dashboard.presence",
    "dashboard.queued", "dashboard.new_data")


class Viewer(Protocol):
    user: User

    def send_frame(self, frame: bytes | Frame) -> None: ...

    def writer(self) -> Writer | None: ...

    async def room_for(self, size: int) -> bool: ...

    def end(self, code: int, reason: str) -> None: ...


def frame_of(message: dict[str, Any]) -> bytes:
    """One text frame for viewers, written once for all of them."""
    return json_io.dumps(message)


class Room:
    """The sockets open on one dashboard and the latest output of each of its cards."""

    def __init__(self, dashboard_id: str, tell: Callable[[Room], None]):
        self.dashboard_id = dashboard_id
        self.tell = tell  # announces this task's viewers to every task
        self.viewers: set[Viewer] = set()
        self.writers: dict[Viewer, Writer] = {}  # the viewers a frame for all is written straight to (send_to_all)
        self._fan_out: tuple[list[Writer], list[Viewer]] | None = None  # writers and the other viewers, as they are now
        self.remote: dict[str, tuple[list[dict[str, str]], float]] = {}  # task -> its viewers, until when
        self.seq: dict[str, int] = {}
        self.latest: dict[str, bytes] = {}  # card key -> its output's result, serialised
        self.cards: dict[str, str] = {}  # card key -> card id, in the version the last snapshot read
        self.unsent: dict[Viewer, list[str]] = {}  # card keys whose output a viewer's snapshot still owes it (until sent)
        self.running: set[str] = set()  # cards being run because a snapshot found no result
        self.joining = 0  # viewers whose snapshot is being made
        self.filling = asyncio.Lock()  # held by the snapshot reading outputs the room lacks from the cache
        self._announced: list[dict[str, str]] = []
        self._announcing: asyncio.TimerHandle | None = None

    def add(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        writer = viewer.writer()
        if writer is not None:
            self.writers[viewer] = writer
        self._fan_out = None

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        self.writers.pop(viewer, None)
        self.unsent.pop(viewer, None)
        self._fan_out = None

    def send(self, frame: Frame) -> None:
        """Write ``frame`` to every viewer: to most straight to its socket (``send_to_all``), with nothing
        looked up per viewer but whether it is closing or behind. The lists are made again after joins and leaves."""
        if self._fan_out is None:
            self._fan_out = (list(self.writers.values()), [viewer for viewer in self.viewers if viewer not in self.writers])
        writers, others = self._fan_out
        send_to_all(writers, frame)
        for viewer in others:
            viewer.send_frame(frame)

    def broadcast(self, message: dict[str, Any]) -> None:
        self.send(Frame(frame_of(message)))  # serialised and framed once for every socket

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
        for owed in self.unsent.values():
            if key in owed:
                owed.remove(key)  # what its snapshot owed it comes now
        self.send(Frame(self.output_frame(key)))  # serialised and framed once for every socket

    def local_presence(self) -> list[dict[str, str]]:
        """The viewers on this task."""
        users = {viewer.user.id: viewer.user for viewer in self.viewers}
        return [{"user_id": u.id, "name": u.name, "email": u.email} for u in users.values()]

    def presence(self) -> list[dict[str, str]]:
        """The viewers on every task."""
        now = time.monotonic()
        self.remote = {task: seen for task, seen in self.remote.items() if seen[1] > now}
        users = {viewer["user_id"]: viewer for viewers, _ in self.remote.values() for viewer in viewers}
        users.update((viewer["user_id"], viewer) for viewer in self.local_presence())
        return sorted(users.values(), key=lambda viewer: viewer["email"])

    def announce(self) -> None:
        """Tell every task who is here, once for a burst of joins and leaves: a thousand sockets
        joining must not cost a million presence messages."""
        if self._announcing is None:
            self._announcing = asyncio.get_running_loop().call_later(PRESENCE_DELAY, self._announce)

    def _announce(self) -> None:
        self._announcing = None
        self.tell(self)

    def show_presence(self) -> None:
        """Tell this task's viewers who is here, if it changed."""
        viewers = self.presence()
        if viewers != self._announced:
            self._announced = viewers
            self.broadcast({"type": "presence", "viewers": viewers})


class DashboardHub(LoggingConfigurable):
    refresh_tick = Float(15.0, help="Seconds between looks for dashboards whose scheduled refresh is due.").tag(config=True)
    lease_seconds = Float(60.0, help="Seconds a task holds the lease of a refresh round or a re-run for new "
                                     "data without news of it (renewed after each card); past them another "
                                     "task may take the work over, and what the first writes is refused.").tag(config=True)
    refresh_speedup = Float(1.0, min=1.0, help="Runs the refresh schedule this many times faster (a 60 s "
                                               "refresh every second with 60): demos and tests.").tag(config=True)

    def __init__(self, store: Store, dashboards: DashboardService, runner: CardRunner, tables: OutputTables,
                 bus: Bus, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store
        self.dashboards = dashboards
        self.runner = runner
        self.tables = tables
        self.bus = bus
        self.rooms: dict[str, Room] = {}
        self._tiles: dict[tuple[str, str], list[str]] = {}  # (dashboard id, card key) -> tables it shows
        # dashboard id -> the (period, round) last tried here, and when to try it again (another task held it)
        self._rounds: dict[str, tuple[tuple[int, int], float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        dashboards.revoked.append(lambda dashboard_id, user_id: self._send(
            REVOKED, {"dashboard_id": dashboard_id, "user_id": user_id}))
        runner.finished.append(self._card_ran)
        runner.cards.saved.append(lambda user, card_id: self._spawn(self._card_saved(user, card_id)))
        dashboards.datasets.new_version.append(
            lambda dataset_id, version: self._spawn(self._dataset_changed(dataset_id, version)))
        for topic, handler in ((OUTPUT, self._on_output), (CHANGED, self._on_changed), (DELETED, self._on_deleted),
                               (REVOKED, self._on_revoked), (PRESENCE, self._on_presence),
                               (QUEUED, self._on_queued), (NEW_DATA, self._on_new_data)):
            bus.subscribe(topic, handler)
        bus.reconnected.append(self._bus_back)

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._refresh_loop()), asyncio.create_task(self._presence_loop())]

    async def stop(self) -> None:
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for room in self.rooms.values():
            for viewer in list(room.viewers):
                viewer.end(1001, "the server is stopping")

    # viewers -----------------------------------------------------------------------
    async def join(self, viewer: Viewer, dashboard_id: str) -> Room:
        """Send ``viewer`` (already authorised) a snapshot and add it; cards never run get run now."""
        room = self.rooms.get(dashboard_id)
        if room is None:
            room = self.rooms[dashboard_id] = Room(dashboard_id, self._tell_presence)
            self._send(PRESENCE, {"dashboard_id": dashboard_id, "viewers": [], "ask": True})
        room.joining += 1
        try:
            await self.snapshot(viewer, room)
        finally:
            room.joining -= 1
        room.announce()
        return room

    def leave(self, viewer: Viewer, room: Room) -> None:
        room.leave(viewer)
        room.announce()
        if not room.viewers and not room.joining and self.rooms.get(room.dashboard_id) is room:
            del self.rooms[room.dashboard_id]

    async def snapshot(self, viewer: Viewer, room: Room) -> None:
        """Send the dashboard, then (as the client reads) every card's latest output, and from then on
        what is published."""
        dashboard, version, access = await self.dashboards.get_visible(viewer.user, room.dashboard_id)
        tiles = await self.dashboards.tiles(card_ids(version.document))
        ahead = await read_ahead(self.dashboards.cards.records, [card_version for _, card_version in tiles.values()])
        entries = version.document["cards"]
        async with room.filling:  # many viewers joining at once read the cache once, not each of them
            unknown = [entry for entry in entries if entry["key"] not in room.latest and entry["key"] not in room.running]
            for entry in unknown:  # one after another: a cached result is parsed whole, and a dashboard may have many
                result = await self._cached(viewer.user, version.document, entry, tiles, ahead)
                key = entry["key"]
                if key in room.latest:  # published while the cache answered
                    continue
                if result is not None:
                    room.keep(key, result)
                    self._shown(room.dashboard_id, key, pinned_ids(result))
                elif key not in room.running:  # many viewers joining at once start one run
                    room.running.add(key)
                    self._spawn(self._first_run(viewer.user, room, key))
        infos = {entry["key"]: _card_info(entry["card"], tiles, ahead) for entry in entries}
        # from here on no await: nothing is published between the snapshot and joining the room
        room.cards = {entry["key"]: entry["card"] for entry in entries}
        room.add(viewer)
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
        if room.unsent.get(viewer) == []:
            del room.unsent[viewer]  # all sent: publishing looks only at the viewers still owed outputs

    async def personal_run(self, viewer: Viewer, dashboard_id: str, values: dict[str, Any]) -> None:
        """Run the cards that take any of ``values`` for ``viewer`` alone (through the cache)."""
        _, version, _ = await self.dashboards.get_visible(viewer.user, dashboard_id)
        tiles = await self.dashboards.tiles(card_ids(version.document))
        ahead = await read_ahead(self.dashboards.cards.records, [card_version for _, card_version in tiles.values()])
        for entry in version.document["cards"]:
            if not set(values) & set(_bound(version.document, entry, values, tiles)):
                continue  # the card does not take any of them: what it shows stands
            told = functools.partial(_tell_queued, viewer, entry["key"])
            try:
                result = await self.run_card(viewer.user, version.document, entry, values, tiles, told, ahead=ahead)
            except BIError as exc:
                result = error_result(exc)
            frame = frame_of({"type": "output", "card": entry["key"], "personal": True, "result": result})
            if not await viewer.room_for(len(frame)):
                return
            viewer.send_frame(frame)

    # runs --------------------------------------------------------------------------
    async def run(self, user: User, dashboard_id: str, key: str, values: dict[str, Any],
                  force: bool = False) -> bytes:
        """Run one card of the dashboard: its result as JSON text (serialised once, for every viewer and the caller);
        with the default values its output goes to every viewer. ``force`` (owners and editors only) runs it past
        the cache."""
        _, version, access = await self.dashboards.get_visible(user, dashboard_id)
        if force and access == "view":
            raise PermissionDeniedError("Only the dashboard's owner and editors may re-run its cards past the "
                                        "cache; you see the latest output as it is.")
        entry = next((e for e in version.document["cards"] if e["key"] == key), None)
        if entry is None:
            raise NotFoundError(f"The dashboard has no card {key!r}.")
        tiles = await self.dashboards.tiles([entry["card"]])
        if values:
            return json_io.dumps(await self.run_card(user, version.document, entry, values, tiles, force=force))
        bound = _bound(version.document, entry, {}, tiles)
        result = await self.runner.run(user, entry["card"], bound, force, announce=False,
                                       told=self._queued(dashboard_id, key), shown=tiles.get(entry["card"]))
        data = json_io.dumps(result)
        await self._publish(dashboard_id, key, entry["card"], bound, result, data)
        return data

    async def run_card(self, user: User, document: dict[str, Any], entry: dict[str, Any], values: dict[str, Any],
                       tiles: Tiles, told: Told | None = None, force: bool = False,
                       ahead: ReadAhead | None = None) -> dict[str, Any]:
        """Run a card of a dashboard ``user`` may view (so they may view the card: ``tiles`` hold it; ``ahead``:
        what was read for all of them)."""
        return await self.runner.run(user, entry["card"], _bound(document, entry, values, tiles), force, told=told,
                                     shown=tiles.get(entry["card"]), ahead=ahead)

    def _queued(self, dashboard_id: str, key: str) -> Told:
        """Tells every viewer of the tile the place in line of its run (0: running)."""
        return lambda place: self._send(QUEUED, {"dashboard_id": dashboard_id, "card": key, "position": place})

    def _on_queued(self, envelope: Envelope) -> None:
        body = envelope.body
        room = self.rooms.get(body["dashboard_id"])
        if room is not None:
            room.broadcast({"type": "queued", "card": body["card"], "position": body["position"]})

    async def _cached(self, user: User, document: dict[str, Any], entry: dict[str, Any],
                      tiles: Tiles, ahead: ReadAhead) -> dict[str, Any] | None:
        try:
            return await self.runner.cached(user, entry["card"], _bound(document, entry, {}, tiles),
                                            shown=tiles.get(entry["card"]), ahead=ahead)
        except BIError as exc:
            return error_result(exc)


    async def _first_run(self, user: User, room: Room, key: str) -> None:
        try:
            await self._run_and_publish(user, room.dashboard_id, key)
        finally:
            room.running.discard(key)

    async def _run_and_publish(self, user: User, dashboard_id: str, key: str, force: bool = False,
                               lease: Lease | None = None, reason: str | None = None) -> Lease | None:
        """Run a tile with the dashboard's defaults (for ``reason``) and show the output to every viewer.
        Under a ``lease``, the result is stored and shown only while it is held (``LeaseLostError`` if not);
        the lease, renewed, is returned."""
        version = await self.dashboards.current(dashboard_id)
        entry = next((e for e in version.document["cards"] if e["key"] == key), None) if version else None
        if version is None or entry is None:
            return lease
        tiles = await self.dashboards.tiles([entry["card"]])
        bound = _bound(version.document, entry, {}, tiles)
        try:
            result = await self.runner.run(user, entry["card"], bound, force, fence=lease, announce=False,
                                           reason=reason, told=self._queued(dashboard_id, key),
                                           shown=tiles.get(entry["card"]))
        except BIError as exc:
            result = error_result(exc)
        if lease is not None:
            lease = await self.store.renew_lease(lease, time.time() + self.lease_seconds)
        await self._publish(dashboard_id, key, entry["card"], bound, result)
        return lease

    async def _publish(self, dashboard_id: str | None, key: str | None, card_id: str, values: dict[str, Any],
                       result: dict[str, Any], data: bytes | None = None) -> None:
        """``result`` is the tile's output now (with no dashboard: the card's with ``values``), on every task:
        serialised once (``data``, if the caller did), and written by every task as it comes, with the tables it
        pins beside it."""
        await self.bus.publish(OUTPUT, {"dashboard_id": dashboard_id, "card": key, "card_id": card_id,
                                        "values": values, "pins": pinned_ids(result)},
                               raw={"result": json_io.dumps(result) if data is None else data})

    def _on_output(self, envelope: Envelope) -> None:
        """A card ran on some task: the tile it ran for (if any) shows it, and so does every tile
        watched here that shows the same card with the same values."""
        body = envelope.body
        data = envelope.text("result")  # as the publisher serialised it (a version 1 message: again)
        pins = body["pins"] if "pins" in body else pinned_ids(body["result"])
        if body["dashboard_id"] is not None:
            self._deliver(body["dashboard_id"], body["card"], data, pins)
        rooms = self._showing(body["card_id"], (body["dashboard_id"], body["card"]))
        if rooms:
            self._spawn(self._show_run(rooms, body["card_id"], body["values"], data, pins))

    def _showing(self, card_id: str, delivered: tuple[str | None, str | None]) -> list[Room]:
        """The rooms with a tile of card ``card_id`` (in the version their last snapshot read: a new one makes
        snapshots again) other than the tile ``delivered`` (dashboard id, card key) its output went to."""
        return [room for room in list(self.rooms.values())
                if any(card == card_id and (room.dashboard_id, key) != delivered for key, card in room.cards.items())]

    def _deliver(self, dashboard_id: str, key: str, data: bytes, pins: list[str]) -> None:
        """To this task's viewers of the tile (``data``: its output serialised), and its tables (``pins``) pinned."""
        self._shown(dashboard_id, key, pins)
        if dashboard_id in self.rooms:
            self.rooms[dashboard_id].publish(key, data)

    def _shown(self, dashboard_id: str, key: str, stored: list[str]) -> None:
        """Pin the tables of a tile's new output (``stored``: ``pinned_ids``); unpin those of the one it replaces,
        unless another tile shows them."""
        tile = (dashboard_id, key)
        before = self._tiles.pop(tile, [])
        if stored:
            self._tiles[tile] = stored
        if stored == before:  # the same output again (a re-run answered from the cache): pinned already
            return
        shown = {output_id for ids in self._tiles.values() for output_id in ids}
        self._spawn(self.tables.pin(self._tiles.get(tile, [])))
        self._spawn(self.tables.pin([output_id for output_id in before if output_id not in shown], pinned=False))

    # what changes dashboards ---------------------------------------------------------
    def _card_ran(self, card_id: str, values: dict[str, Any], result: dict[str, Any]) -> None:
        """A run through the card API shows on every dashboard watching the card with those values."""
        self._spawn(self._publish(None, None, card_id, values, result))

    async def _show_run(self, rooms: list[Room], card_id: str, values: dict[str, Any], data: bytes,
                        pins: list[str]) -> None:
        """Show a run of ``card_id`` with ``values`` (its output ``data``, pinning ``pins``) on the tiles of ``rooms``
        that show the card with those values (the dashboard's current version read again)."""
        for room in rooms:
            version = await self.dashboards.current(room.dashboard_id)
            if version is None or card_id not in card_ids(version.document):
                continue
            tiles = await self.dashboards.tiles([card_id])
            for entry in version.document["cards"]:
                if entry["card"] == card_id and _bound(version.document, entry, {}, tiles) == values \
                        and room.latest.get(entry["key"]) != data:
                    self._deliver(room.dashboard_id, entry["key"], data, pins)

    def dashboard_saved(self, dashboard: Dashboard, version: DashboardVersion) -> None:
        """Tell every task of the new version (layout, cards)."""
        self._send(CHANGED, {"dashboard_id": dashboard.id, "version": version.version})

    def _on_changed(self, envelope: Envelope) -> None:
        """Viewers get a snapshot of the new version; cards new to it get run. What the room kept may
        be another card's, or for other parameter defaults, now: it is looked up again."""
        room = self.rooms.get(envelope.body["dashboard_id"])
        if room is not None:
            self._snapshot_again(room)

    def _snapshot_again(self, room: Room) -> None:
        room.latest.clear()
        for viewer in list(room.viewers):
            self._spawn(self.snapshot(viewer, room))

    def _bus_back(self) -> None:
        """The bus is back after an outage, during which other tasks' outputs, versions and viewers were
        missed: every room's viewers get a fresh snapshot (outputs read again from the store), and the
        other tasks are asked for their viewers."""
        for room in list(self.rooms.values()):
            self._snapshot_again(room)
            self._send(PRESENCE, {"dashboard_id": room.dashboard_id, "viewers": room.local_presence(), "ask": True})

    def dashboard_deleted(self, dashboard_id: str) -> None:
        self._send(DELETED, {"dashboard_id": dashboard_id})

    def _on_deleted(self, envelope: Envelope) -> None:
        dashboard_id = envelope.body["dashboard_id"]
        for dashboard, key in [tile for tile in self._tiles if tile[0] == dashboard_id]:
            self._shown(dashboard, key, [])
        room = self.rooms.pop(dashboard_id, None)
        for viewer in list(room.viewers) if room else ():
            viewer.end(4404, "The dashboard was deleted.")

    def _on_new_data(self, envelope: Envelope) -> None:
        """A dataset has a new version: viewers of every dashboard watched here hear it (tiles that read it
        say their output is older until the new one comes)."""
        for room in self.rooms.values():
            room.broadcast({"type": "new_data", "dataset_id": envelope.body["dataset_id"],
                            "version": envelope.body["version"]})

    def _on_revoked(self, envelope: Envelope) -> None:
        room = self.rooms.get(envelope.body["dashboard_id"])
        for viewer in list(room.viewers) if room else ():
            if viewer.user.id == envelope.body["user_id"]:
                viewer.end(4403, "Your access to this dashboard was revoked.")

    async def recheck(self, user_id: str) -> None:
        """Close, with 4403, this task's sockets of ``user_id`` on dashboards they may no longer view (a
        demotion; ``services/revocations.py`` calls it on every revocation of theirs)."""
        watched = [(room, viewer) for room in list(self.rooms.values()) for viewer in list(room.viewers)
                   if viewer.user.id == user_id]
        user = await self.store.get_user(user_id) if watched else None
        for room, viewer in watched:
            try:
                if user is None or not user.active:
                    raise NotFoundError("Your account was removed or deactivated.")
                await self.dashboards.authorize(user, room.dashboard_id)
            except BIError:
                viewer.end(4403, "access_revoked: you may no longer view this dashboard.")

    async def _card_saved(self, user: User, card_id: str) -> None:
        """Re-run the saved card on every dashboard that shows it (whichever task its viewers are on): only those
        are read (``Store.dashboards_with_card``)."""
        for dashboard in await self.store.dashboards_with_card(card_id):
            version = await self.dashboards.current(dashboard.id)
            for entry in version.document["cards"] if version else ():
                if entry["card"] == card_id:
                    await self._run_and_publish(user, dashboard.id, entry["key"], reason="edit")

    async def _dataset_changed(self, dataset_id: str, number: int) -> None:
        """Tell every viewer; re-run, as each dashboard's owner, the cards that read the dataset: once, on one task.
        Only the dashboards that hold such a card are read (``Store.dashboards_reading``)."""
        self._send(NEW_DATA, {"dataset_id": dataset_id, "version": number})
        lease = await self.store.acquire_lease(f"rerun:{dataset_id}:{number}", self.bus.origin,
                                               time.time() + self.lease_seconds)
        if lease is None:
            return
        try:
            for dashboard in await self.store.dashboards_reading(dataset_id):
                lease = await self._rerun(dashboard, lambda datasets: dataset_id in datasets, False, lease, "new_data")
            await self.store.finish_lease(lease, time.time() + self.lease_seconds)
        except LeaseLostError:
            log.warning("lease_lost", lease=lease.name, lease_version=lease.version, task=lease.holder,
                        dataset_id=dataset_id)

    async def _rerun(self, dashboard: Dashboard, reads: Callable[[tuple[str, ...]], bool], force: bool,
                     lease: Lease, reason: str) -> Lease:
        owner = await self.store.get_user(dashboard.owner_id)
        version = await self.dashboards.current(dashboard.id)
        if owner is None or version is None:
            return lease
        tiles = await self.dashboards.tiles(card_ids(version.document))
        for entry in version.document["cards"]:
            card_version = tiles[entry["card"]][1] if entry["card"] in tiles else None
            if card_version is not None and reads(card_version.datasets):
                lease = await self._run_and_publish(owner, dashboard.id, entry["key"], force, lease, reason) or lease
        return lease

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_tick)
            try:
                await self.refresh_due()
            except Exception:  # a store hiccup must not end the schedule
                log.exception("dashboard_refresh_failed")

    async def refresh_due(self, now: float | None = None) -> list[str]:
        """Start the refresh round due at ``now`` (default: now) of every dashboard with a refresh
        that no task has run or runs: its cards re-run past the cache, as its owner. Rounds are counted
        from the dashboard's creation, every ``every_seconds``; the dashboards started. Reads the index of the
        dashboards with a refresh (``Store.refresh_schedules``), and a dashboard's document only when a round of it
        is due that this task has not started, nor tried within ``lease_seconds`` (another task may have died with it)."""
        now = time.time() if now is None else now
        started = []
        rounds, self._rounds = self._rounds, {}
        for schedule in await self.store.refresh_schedules():
            period = schedule.every_seconds / self.refresh_speedup
            created = dt.datetime.fromisoformat(schedule.created_at).timestamp()
            number = math.floor((now - created) / period)
            tried, again = rounds.get(schedule.dashboard_id, ((0, 0), 0.0))
            if tried == (schedule.every_seconds, number) and now < again:
                self._rounds[schedule.dashboard_id] = (tried, again)
                continue
            self._rounds[schedule.dashboard_id] = ((schedule.every_seconds, number), now + self.lease_seconds)
            if number < 1:
                continue
            dashboard = await self.store.get_dashboard(schedule.dashboard_id)
            version = await self.dashboards.current(schedule.dashboard_id)
            if dashboard is None or version is None or refresh_seconds(version.document) != schedule.every_seconds:
                continue  # an index item a save left behind (DynamoDB)
            lease = await self.store.acquire_lease(f"refresh:{dashboard.id}:{schedule.every_seconds}:{number}",
                                                   self.bus.origin, now + self.lease_seconds)
            if lease is not None:
                self._rounds[schedule.dashboard_id] = ((schedule.every_seconds, number), math.inf)
                self._spawn(self._refresh(dashboard, number, lease, created + (number + 1) * period))
                started.append(dashboard.id)
        return started

    async def _refresh(self, dashboard: Dashboard, number: int, lease: Lease, ends: float) -> None:
        """Round ``number`` of the dashboard's refresh, under ``lease``; done, it is not run again
        before the next round is due."""
        log.info("dashboard_refresh_started", dashboard_id=dashboard.id, round=number, lease=lease.name,
                 lease_version=lease.version, task=lease.holder)
        try:
            lease = await self._rerun(dashboard, lambda datasets: True, True, lease, "schedule")
            await self.store.finish_lease(lease, ends + self.lease_seconds)
        except LeaseLostError:
            log.warning("lease_lost", lease=lease.name, lease_version=lease.version, task=lease.holder,
                        dashboard_id=dashboard.id)
            return
        await record(self.store, "dashboard_refreshed", dashboard_id=dashboard.id, round=number,
                     lease_version=lease.version, task=lease.holder)

    # presence ------------------------------------------------------------------------
    def _tell_presence(self, room: Room) -> None:
        self._send(PRESENCE, {"dashboard_id": room.dashboard_id, "viewers": room.local_presence()})

    def _on_presence(self, envelope: Envelope) -> None:
        """Another task's viewers of a dashboard watched here (or ours, back): tell our viewers; a task
        that just opened the dashboard asks the others for theirs."""
        room = self.rooms.get(envelope.body["dashboard_id"])
        if room is None:
            return
        if envelope.origin != self.bus.origin:
            room.remote[envelope.origin] = (envelope.body["viewers"], time.monotonic() + PRESENCE_TTL)
            if envelope.body.get("ask") and room.viewers:
                self._tell_presence(room)
        room.show_presence()

    async def _presence_loop(self) -> None:
        """Tell the other tasks again who watches here, and forget the viewers of tasks gone quiet."""
        while True:
            await asyncio.sleep(PRESENCE_HEARTBEAT)
            for room in list(self.rooms.values()):
                if room.viewers:
                    self._tell_presence(room)
                room.show_presence()

    def _send(self, topic: str, body: dict[str, Any]) -> None:
        self._spawn(self.bus.publish(topic, body))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dashboard_task_failed", error=repr(task.exception()))


def pinned_ids(result: dict[str, Any]) -> list[str]:
    """What a tile showing ``result`` pins against quota eviction: its tables and its cached outputs."""
    return [*output_ids(result["outputs"]), *([result["result_id"]] if "result_id" in result else [])]


def _card_info(card_id: str, tiles: Tiles, ahead: ReadAhead) -> dict[str, Any]:
    """The tile's card: title, parameters, and the current version of each dataset it reads (a tile whose
    output read an older one says so), from the datasets read ahead for the tiles' runs."""
    if card_id not in tiles:
        return {"card_id": card_id, "title": "(deleted card)", "parameters": [], "dataset_versions": {}}
    version = tiles[card_id][1]
    return {"card_id": card_id, "title": version.title, "parameters": list(version.parameters),
            "dataset_versions": {dataset_id: ahead.datasets[dataset_id][0].current_version
                                 for dataset_id in version.datasets if dataset_id in ahead.datasets}}


def dashboard_json(dashboard: Dashboard, version: DashboardVersion, access: str) -> dict[str, Any]:
    fields = version.public()
    fields["updated_by"] = fields.pop("created_by")
    return {**fields, **dashboard.public(), "access": access}


def _tell_queued(viewer: Viewer, key: str, place: int) -> None:
    """The place in line of a run for ``viewer``'s own parameter values."""
    viewer.send_frame(frame_of({"type": "queued", "card": key, "personal": True, "position": place}))


def error_result(exc: BIError) -> dict[str, Any]:
    """A card that could not run or was stopped, shown in its place: what it showed before it was stopped
    (a timeout), else the reason as an error output with the error's code and details. It did not run to
    its end, so it has no run time, and it has no freshness: the tile keeps saying when its last output was
    made."""
    outputs = exc.details.get("outputs") or [{"output_type": "error", "ename": exc.code, "evalue": exc.message,
                                             "details": exc.details, "traceback": []}]
    return {"status": "error", "cached": False, "execution_time_ms": None, "outputs": outputs,
            "computed_at": None, "reason": None, "card_version": None, "dataset_versions": None}


def _bound(document: dict[str, Any], entry: dict[str, Any], values: dict[str, Any], tiles: Tiles) -> dict[str, Any]:
    """The dashboard's parameter values (defaults, then ``values``) that the card declares."""
    chosen = {p["name"]: p["default"] for p in document.get("parameters", [])} | values
    declared = {p["name"] for p in tiles[entry["card"]][1].parameters} if entry["card"] in tiles else set()
    return {name: value for name, value in chosen.items() if name in declared}
