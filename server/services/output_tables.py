"""The whole tables behind DataFrame outputs: kept as Arrow streams, served a page at a time.

A kernel's DataFrame output carries its table as an Arrow stream, which the server takes out of
the output (``execution/tables.py``) and hands to ``keep`` under a fresh ``output_id``; the
output keeps the id, its summary and first rows. ``keep`` stores the stream as a blob and a record
of who may read it: the user who ran the code, admins, and for a saved card's run whoever may
view the card. ``rows`` waits for a store still under way, so a page asked for at once is found.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ..errors import NotFoundError
from ..execution.tables import read_rows, row_count
from ..logs import get_logger
from ..models import OutputTable, User, utcnow
from ..storage.base import Store
from .cards import CardService

log = get_logger("bi.outputs")


class OutputTables:
    def __init__(self, store: Store, cards: CardService):
        self.store = store
        self.cards = cards
        self._storing: dict[str, asyncio.Task[None]] = {}

    def keep(self, stream: bytes, user_id: str, card_id: str | None) -> str:
        """Store ``stream`` (in the background) as a new table; its output_id."""
        output_id = uuid.uuid4().hex
        task = asyncio.get_running_loop().create_task(self._store(output_id, stream, user_id, card_id))
        self._storing[output_id] = task
        task.add_done_callback(lambda _: self._storing.pop(output_id, None))
        return output_id

    async def _store(self, output_id: str, stream: bytes, user_id: str, card_id: str | None) -> None:
        blob_key = f"tables/{output_id}.arrow"
        with tempfile.NamedTemporaryFile("wb", suffix=".arrow") as file:
            await asyncio.to_thread(_write, file, stream)
            await self.store.put_blob(blob_key, Path(file.name))
        await self.store.put_output_table(OutputTable(output_id, blob_key, user_id, card_id, utcnow()))

    async def rows(self, user: User, output_id: str, offset: int, limit: int) -> dict[str, Any]:
        """A page of the table, if ``user`` may read it (404 otherwise, as if it did not exist)."""
        storing = self._storing.get(output_id)
        if storing is not None:
            await asyncio.shield(storing)
        table = await self.store.get_output_table(output_id)
        if table is None or not await self._may_read(user, table):
            raise NotFoundError("No such table output; its rows may have come from another user's run.")
        path = await self.store.blob_path(table.blob_key)
        rows, total = await asyncio.to_thread(lambda: (read_rows(path, offset, limit), row_count(path)))
        return {"output_id": output_id, "offset": offset, "limit": limit, "row_count": total, "rows": rows}

    async def _may_read(self, user: User, table: OutputTable) -> bool:
        if table.user_id == user.id or user.role == "admin":
            return True
        card = await self.store.get_card(table.card_id) if table.card_id else None
        return card is not None and await self.cards.access(user, card) is not None


def _write(file: Any, stream: bytes) -> None:
    file.write(stream)
    file.flush()
