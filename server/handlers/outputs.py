"""``GET /api/outputs/{output_id}/rows?offset=&limit=``: the pages of a DataFrame output's table."""

from __future__ import annotations

from ..errors import InvalidRequestError
from .base import APIHandler

MAX_PAGE = 1000


class OutputRowsHandler(APIHandler):
    async def get(self, output_id: str) -> None:
        assert self.user is not None
        offset = self.int_argument("offset", 0) or 0
        limit = self.int_argument("limit", 100) or 0
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"offset must be 0 or more and limit between 1 and {MAX_PAGE}.")
        self.write_json(await self.settings["output_tables"].rows(self.user, output_id, offset, limit))
