"""The audit trail: every audit event goes to the logs and to the store, where admins page it.

``record(store, event, **fields)`` is the one way to write an event (DESIGN.md §10 names them:
``login_success``, ``login_failed``, ``dataset_created``, ``card_executed``, ``dashboard_shared``, ...,
plus user, token and share changes). It logs the event (``audit=True``) and appends it to the store's
trail; a failed store write is logged (``audit_write_failed``) and never fails the request that made the
event. An event's user is its ``user_id`` field (the acting user, or the user it is about), else its
``owner_id``. Nothing a kernel runs reaches the store or this module: card code can neither erase nor
forge the trail (its stdout goes to the agent's logs as escaped fields, never as events).

``AuditLog.page`` answers ``GET /api/audit`` for admins: newest first, filtered by time, user and event,
in pages joined by an opaque keyset cursor (the key of the last event sent).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
import time
from typing import Any

import structlog

from ..errors import InvalidRequestError, PermissionDeniedError
from ..models import AuditEvent, AuditQuery, User, utcnow
from ..storage.base import Store

log = structlog.get_logger("bi.audit")

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
KEY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#[0-9a-f]{24}$")


async def record(store: Store, event: str, **fields: Any) -> None:
    """Log the audit event ``event`` with ``fields`` and append it to ``store``'s trail."""
    log.info(event, audit=True, **fields)
    user_id = fields.pop("user_id") if "user_id" in fields else fields.get("owner_id")
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id is not None:
        fields.setdefault("request_id", request_id)
    entry = AuditEvent(f"{time.time_ns():016x}{secrets.token_hex(4)}", utcnow(), event, user_id, fields)
    try:
        await store.put_audit_event(entry)
    except Exception as exc:  # the event is in the logs; the request it records goes on
        log.error("audit_write_failed", audit_event=event, audit_id=entry.id, error=f"{type(exc).__name__}: {exc}")


class AuditLog:
    """Reads the trail for admins."""

    def __init__(self, store: Store):
        self.store = store

    async def page(self, caller: User, *, limit: int, since: str | None = None, until: str | None = None,
                   user: str | None = None, event: str | None = None, cursor: str | None = None) -> dict[str, Any]:
        """``{"events": [...], "next": cursor or None}``; ``user`` is a user id or an email."""
        if caller.role != "admin":
            raise PermissionDeniedError("Only admins can read the audit log.")
        if event is not None and not EVENT_NAME.fullmatch(event):
            raise InvalidRequestError(f"event must be an event name such as login_failed, not {event[:64]!r}.",
                                      {"argument": "event"}, code="invalid_argument")
        user_id = await self._user_id(user) if user is not None else None
        query = AuditQuery(limit + 1, _time("since", since), _time("until", until), user_id, event,
                           _cursor(cursor) if cursor is not None else None)
        events = await self.store.list_audit_events(query)
        more = len(events) > limit
        events = events[:limit]
        return {"events": [e.public() for e in events], "next": _encode(events[-1].key) if more else None}

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
