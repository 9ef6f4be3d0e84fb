"""The tables of DataFrame outputs: ``GET /api/outputs/{output_id}/rows?offset=&limit=`` pages them;
``GET /api/outputs/{output_id}/csv?encoding=utf-8|cp932&name=`` downloads a whole table as CSV
(``execution/table_csv.py``: UTF-8 with a byte order mark by default, so that Excel reads Japanese)."""

from __future__ import annotations

import asyncio
import re
import urllib.parse

from tornado.iostream import StreamClosedError

from ..errors import InvalidRequestError
from ..execution.table_csv import ENCODINGS, csv_chunks
from ..limits import QUERY_INTEGER_MAX
from .base import APIHandler

MAX_PAGE = 1000
CHARSETS = {"utf-8": "utf-8", "cp932": "Shift_JIS"}


class OutputRowsHandler(APIHandler):
    async def get(self, output_id: str) -> None:
        assert self.user is not None
        offset = self.int_argument("offset", 0, 0, QUERY_INTEGER_MAX)
        limit = self.int_argument("limit", 100, 1, MAX_PAGE)
        await self.write_page_json(await self.settings["output_tables"].rows(self.user, output_id, offset, limit))


class OutputCSVHandler(APIHandler):
    async def get(self, output_id: str) -> None:
        assert self.user is not None
        encoding = self.get_query_argument("encoding", "utf-8")
        if encoding not in ENCODINGS:
            raise InvalidRequestError("encoding must be utf-8 or cp932.", {"field": "encoding"})
        path = await self.settings["output_tables"].readable_file(self.user, output_id)
        name = re.sub(r'[\x00-\x1f"\\/]', "_", self.get_query_argument("name", "table"))[:100] or "table"
        self.set_header("Content-Type", f"text/csv; charset={CHARSETS[encoding]}")
        self.set_header("Content-Disposition", f"attachment; filename=\"table.csv\"; "
                                               f"filename*=UTF-8''{urllib.parse.quote(name + '.csv')}")
        chunks = csv_chunks(path, encoding)
        try:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                self.write(chunk)
                await self.flush()  # one batch in memory at a time, however slowly the client reads
        except StreamClosedError:
            pass  # the client went away
        finally:
            chunks.close()
