"""``GET /api/outputs/{output_id}/rows?offset=&limit=``: the pages of a DataFrame output's table."""

from __future__ import annotations

from ..limits import QUERY_INTEGER_MAX
from .base import APIHandler

MAX_PAGE = 1000


class OutputRowsHandler(APIHandler):
    async def get(self, output_id: str) -> None:
        assert self.user is not None
        offset = self.int_argument("offset", 0, 0, QUERY_INTEGER_MAX)
        limit = self.int_argument("limit", 100, 1, MAX_PAGE)
        await self.write_page_json(await self.settings["output_tables"].rows(self.user, output_id, offset, limit))
