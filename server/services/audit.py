"""The audit trail: every audit event goes to the logs and to the store, where admins page it.

``record(store, event, **fields)`` is the one way to write an event (DESIGN.md §10 names them:
``login_success``, ``login_failed``, ``dataset_created``, ``card_executed``, ``dashboard_shared``, ...,
plus user, token and share changes). It logs the event (``audit=True``) and appends it to the store's
trail; a failed store write is logged (``audit_write_failed``) and never fails the request that made the
event. An event's user is its ``user_id`` field (the acting user, or the user it is about), else its
``owner_id``. Nothing a kernel runs reaches the store or this module: card code can neither erase nor
forge the trail (its stdout goes to the agent's logs as escaped fields, never as events).

**Rate.** A user cannot grow the trail without bound: a server that calls ``limit_rate`` writes at most
``per_window`` rows of one event per user per window (``AUDIT_EVENTS_PER_WINDOW`` per
``AUDIT_WINDOW_SECONDS``: ``ServeApp.audit_events_per_window``, ``audit_window_seconds``); the rest of the
window's are written, when it ends (or the server stops), as one row of that event with ``count`` (how
many it stands for), ``first_at``, ``last_at`` and the fields all of them had alike. Every event is still
logged one by one. ``ALWAYS_WRITTEN`` events are written one by one whatever the rate: sign-ins and
sign-outs (each costs a password check or ends a sign-in), personal tokens, users, roles and passwords,
shares, and access that ended: who could get in, and to what, is never summed up. Events without a user
(an unknown email's failed sign-in) are bounded by the sign-in throttle, not here.

**Writes.** A server that calls ``write_behind`` does not make requests wait for their rows: ``record`` hands
each row to the store's ``AuditWriter``, which writes what waits in batches (``AUDIT_BATCH`` rows a call:
one BatchWriteItem on DynamoDB; a batch not full waits ``AUDIT_LINGER_SECONDS`` for more) one after another
(off the event loop's way: one store call per few requests, not one per request), and ``record`` waits only while
``AUDIT_WAITING`` rows wait (the store is slow or down). An admin's page of the trail first waits for the
rows this task still holds, and a clean shutdown writes them all (``flush``). A task that crashes loses
the rows it held (at most the last moments' events) from the store's trail; each is in the logs already.

``AuditLog.page`` answers ``GET /api/audit`` for admins: newest first, filtered by time, user and event,
in pages joined by an opaque keyset cursor (the key of the last event sent).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime as dt
import json
import re
import secrets
import time
import weakref
from typing import Any

import structlog

from ..errors import InvalidRequestError, PermissionDeniedError
from ..limits import AUDIT_BATCH, AUDIT_EVENTS_PER_WINDOW, AUDIT_LINGER_SECONDS, AUDIT_WAITING, AUDIT_WINDOW_SECONDS
from ..models import AuditEvent, AuditQuery, User, utcnow
from ..storage.base import Store

log = structlog.get_logger("bi.audit")

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
KEY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#[0-9a-f]{24}$")

ALWAYS_WRITTEN = frozenset({
    "login_success", "login_failed", "logout", "logout_everywhere", "refresh_token_reused",
    "token_created", "token_revoked",
    "user_created", "user_updated", "password_reset", "password_changed",
    "dashboard_shared", "dashboard_unshared", "session_access_revoked",
})
"""Events written one row each, whatever their rate (see the module's notes)."""


async def record(store: Store, event: str, **fields: Any) -> None:
    """Log the audit event ``event`` with ``fields`` and append it to ``store``'s trail (or count it into
    its window's row: ``limit_rate``)."""
    log.info(event, audit=True, **fields)
    user_id = fields.pop("user_id") if "user_id" in fields else fields.get("owner_id")
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id is not None:
        fields.setdefault("request_id", request_id)
    entry = AuditEvent(f"{time.time_ns():016x}{secrets.token_hex(4)}", utcnow(), event, user_id, fields)
    rate = _rates.get(store)
    if rate is None or rate.admit(entry):
        await _write(store, entry)


async def _write(store: Store, entry: AuditEvent) -> None:
    writer = _writers.get(store)
    if writer is not None:
        await writer.put(entry)
        return
    await _put(store, [entry])


async def _put(store: Store, entries: list[AuditEvent]) -> None:
    try:
        await store.put_audit_events(entries)
    except Exception as exc:  # the events are in the logs; the requests they record go on
        log.error("audit_write_failed", audit_event=entries[0].event, audit_id=entries[0].id, events=len(entries),
                  error=f"{type(exc).__name__}: {exc}")


def write_behind(store: Store, batch: int = AUDIT_BATCH, most: int = AUDIT_WAITING) -> None:
    """From now on, write the rows of ``store``'s trail in the background (``AuditWriter``)."""
    _writers[store] = AuditWriter(store, batch, most)


class AuditWriter:
    """Writes the rows handed to it in batches, one batch after another, while requests go on."""

    def __init__(self, store: Store, batch: int, most: int, linger: float = AUDIT_LINGER_SECONDS):
        self.store = store
        self.batch = batch
        self.most = most
        self.linger = linger
        self._waiting: list[AuditEvent] = []
        self._writing: asyncio.Task[None] | None = None

    async def put(self, entry: AuditEvent) -> None:
        """Hand ``entry`` over; waits only while ``most`` rows wait already."""
        while len(self._waiting) >= self.most:
            await asyncio.shield(self._started())
        self._waiting.append(entry)
        self._started()

    def _started(self) -> asyncio.Task[None]:
        if self._writing is None or self._writing.done():
            self._writing = asyncio.ensure_future(self._write())
        return self._writing

    async def _write(self) -> None:
        while self._waiting:
            if len(self._waiting) < self.batch:
                await asyncio.sleep(self.linger)  # the rows of the next moments join the call
            entries, self._waiting = self._waiting[:self.batch], self._waiting[self.batch:]
            await _put(self.store, entries)

    async def flush(self) -> None:
        """Return once every row handed over so far is written (or its failure logged)."""
        while self._writing is not None and not self._writing.done():
            await asyncio.shield(self._writing)


def limit_rate(store: Store, per_window: int = AUDIT_EVENTS_PER_WINDOW,
               window_seconds: float = AUDIT_WINDOW_SECONDS) -> None:
    """From now on, write at most ``per_window`` rows of one event per user per window to ``store``."""
    _rates[store] = AuditRate(store, per_window, window_seconds)


async def flush(store: Store) -> None:
    """Write the counted rows of the windows still open and every row waiting (before the store closes)."""
    rate = _rates.get(store)
    if rate is not None:
        await rate.flush_all()
    await written(store)


async def written(store: Store) -> None:
    """Return once the rows this task handed to ``store``'s writer so far are written."""
    writer = _writers.get(store)
    if writer is not None:
        await writer.flush()


@dataclasses.dataclass
class _Window:
    """One user's rows of one event since ``started`` (monotonic), and those held back to be counted."""

    started: float
    written: int = 0
    held: int = 0
    first_at: str = ""
    last_at: str = ""
    alike: dict[str, Any] = dataclasses.field(default_factory=dict)  # the fields every held event had
    timer: asyncio.TimerHandle | None = None


class AuditRate:
    """Decides which events of a user get a row of their own; counts the rest into one row per window."""

    def __init__(self, store: Store, per_window: int, window_seconds: float):
        self.store = store
        self.per_window = per_window
        self.window_seconds = window_seconds
        self._windows: dict[tuple[str, str], _Window] = {}
        self._writing: set[asyncio.Task[None]] = set()

    def admit(self, entry: AuditEvent) -> bool:
        """True: write ``entry`` now; False: it is counted into its window's row."""
        if entry.event in ALWAYS_WRITTEN or entry.user_id is None:
            return True
        now = time.monotonic()
        key = (entry.user_id, entry.event)
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window_seconds:
            if window is not None:
                self._close(key)
            self._sweep(now)
            window = self._windows[key] = _Window(now)
        if window.written < self.per_window:
            window.written += 1
            return True
        if not window.held:
            window.first_at, window.alike = entry.at, dict(entry.fields)
            window.timer = asyncio.get_running_loop().call_later(
                window.started + self.window_seconds - now, self._close, key)
        else:
            window.alike = {k: v for k, v in window.alike.items() if entry.fields.get(k) == v}
        window.held += 1
        window.last_at = entry.at
        return False

    def _close(self, key: tuple[str, str]) -> None:
        """End the window of ``key``: write the row of what it held back."""
        window = self._windows.pop(key, None)
        if window is None or not window.held:
            return
        if window.timer is not None:
            window.timer.cancel()
        user_id, event = key
        fields = {**window.alike, "count": window.held, "first_at": window.first_at, "last_at": window.last_at}
        entry = AuditEvent(f"{time.time_ns():016x}{secrets.token_hex(4)}", utcnow(), event, user_id, fields)
        log.info("audit_events_counted", audit_event=event, user_id=user_id, count=window.held)
        task = asyncio.ensure_future(_write(self.store, entry))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    def _sweep(self, now: float) -> None:
        """Forget ended windows that held nothing back (those that did are closed by their timers)."""
        if len(self._windows) < 1024:
            return
        for key, window in list(self._windows.items()):
            if not window.held and now - window.started >= self.window_seconds:
                del self._windows[key]

    async def flush_all(self) -> None:
        for key in [key for key, window in self._windows.items() if window.held]:
            self._close(key)
        await asyncio.gather(*self._writing, return_exceptions=True)


_rates: weakref.WeakKeyDictionary[Store, AuditRate] = weakref.WeakKeyDictionary()
_writers: weakref.WeakKeyDictionary[Store, AuditWriter] = weakref.WeakKeyDictionary()


class AuditLog:
    """Reads the trail for admins."""

    def __init__(self, store: Store):
        self.store = store

    async def page(self, caller: User, *, limit: int, since: str | None = None, until: str | None = None,
                   user: str | None = None, event: str | None = None, cursor: str | None = None) -> dict[str, Any]:
        """``{"events": [...], "next": cursor or None}``, each event with its user's ``user_name`` (null for none
        or a removed user: one read of the page's distinct users); ``user`` is a user id or an email."""
        if caller.role != "admin":
            raise PermissionDeniedError("Only admins can read the audit log.")
        if event is not None and not EVENT_NAME.fullmatch(event):
            raise InvalidRequestError(f"event must be an event name such as login_failed, not {event[:64]!r}.",
                                      {"argument": "event"}, code="invalid_argument")
        user_id = await self._user_id(user) if user is not None else None
        await written(self.store)  # what this task recorded until now is on the page
        query = AuditQuery(limit + 1, _time("since", since), _time("until", until), user_id, event,
                           _cursor(cursor) if cursor is not None else None)
        events = await self.store.list_audit_events(query)
        more = len(events) > limit
        events = events[:limit]
        ids = list(dict.fromkeys(e.user_id for e in events if e.user_id))
        names = {found.id: found.name for found in await self.store.get_users(ids) if found is not None}
        return {"events": [{**e.public(), "user_name": names.get(e.user_id or "")} for e in events],
                "next": _encode(events[-1].key) if more else None}

    async def _user_id(self, user: str) -> str:
        if "@" not in user:
            return user
        found = await self.store.get_user_by_email(user.strip().lower())
        return found.id if found is not None else user  # an unknown email matches no event


def _time(name: str, value: str | None) -> str | None:
    """``value`` (ISO 8601: a date, or a date and time, UTC unless it names an offset) as event times are kept."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"{name} must be a date or time such as 2026-12-06 or 2026-12-06T09:00:00+09:00, "
                                  f"not {value[:40]!r}.", {"argument": name}, code="invalid_time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode(key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": key}).encode()).decode().rstrip("=")


def _cursor(cursor: str) -> str:
    """The key a cursor continues before; 400 ``invalid_cursor`` for anything this server did not make."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["before"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        key = None
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise InvalidRequestError("cursor is not one this server gave: pass the next value of the previous page "
                                  "unchanged, or leave it out for the first page.", {"argument": "cursor"},
                                  code="invalid_cursor")
    return key
