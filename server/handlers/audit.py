"""``GET /api/audit?since=&until=&user=&event=&limit=&cursor=``: the audit trail, for admins.

Answered ``{"events": [...], "next": cursor-or-null}``, newest first; pass ``next`` back as ``cursor``
for the following page (the same filters). ``since`` (inclusive) and ``until`` (exclusive) are ISO 8601
dates or times, ``user`` a user id or email, ``event`` an event name, ``limit`` 1 to 1,000 (default 100).
"""

from __future__ import annotations

from ..limits import AUDIT_PAGE, AUDIT_PAGE_MAX
from .base import APIHandler


class AuditHandler(APIHandler):
    async def get(self) -> None:
        assert self.user is not None
        arguments = {name: self.get_query_argument(name, None) or None
                     for name in ("since", "until", "user", "event", "cursor")}
        limit = self.int_argument("limit", AUDIT_PAGE, 1, AUDIT_PAGE_MAX)
        self.write_json(await self.settings["audit"].page(self.user, limit=limit, **arguments))
