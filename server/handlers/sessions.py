"""Kernel sessions over HTTP: open one with datasets, run code in it, interrupt it, close it.

``POST /api/card-sessions/{id}/execute`` answers once the code has finished, with every output;
the card websockets stream the same outputs as they come. Any API task answers for a session whose task is
gone: it reattaches the session's kernel from its record in the store. A session runs only while its user may
still read the datasets it opened with (and edit the card, for a card socket's session): else 403
``access_revoked`` and the session ends.
"""

from __future__ import annotations

from ..execution.pool import KernelPool
from ..execution.session import Grant, KernelSession
from .base import APIHandler

MAX_CODE_CHARS = 100_000

OPEN_SCHEMA = {
    "type": "object",
    "properties": {"datasets": {"type": "array", "items": {"type": "string", "minLength": 1},
                                "maxItems": 20, "uniqueItems": True}},
    "additionalProperties": False,
}
EXECUTE_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "maxLength": MAX_CODE_CHARS}},
    "required": ["code"],
    "additionalProperties": False,
}


class SessionAPIHandler(APIHandler):
    @property
    def pool(self) -> KernelPool:
        return self.settings["kernel_pool"]

    async def session(self, session_id: str) -> KernelSession:
        """The user's session, reattached from its record if the task that held it is gone (as a card
        socket's is): any API task answers for it."""
        assert self.user is not None
        return (await self.pool.reattach(self.user, session_id, "card"))[0]


class SessionsHandler(SessionAPIHandler):
    async def get(self) -> None:
        """My card sessions (each with its card's title, if it edits one), how many interactive sessions of
        every kind I hold (Jupyter kernels too) and how many I may."""
        assert self.user is not None
        sessions = [{**s.public(), "card_title": await self.card_title(s.public()["card_id"])}
                    for s in self.pool.of_user(self.user)]
        self.write_json({"sessions": sessions, "held": len(self.pool.interactive_of(self.user.id)),
                         "limit": self.pool.sessions_per_user})

    async def card_title(self, card_id: str | None) -> str | None:
        card = await self.cards.store.get_card(card_id) if card_id else None
        version = await self.cards.store.get_card_version(card.id, card.current_version) if card else None
        return version.title if version else None

    async def post(self) -> None:
        assert self.user is not None
        body = self.json_body(OPEN_SCHEMA)
        datasets = await self.datasets.files_of(self.user, body.get("datasets", []))
        session = await self.pool.open(self.user, datasets, grant=Grant(tuple(body.get("datasets", []))))
        self.set_header("Location", f"/api/card-sessions/{session.id}")
        self.write_json(session.public(), 201)


class SessionHandler(SessionAPIHandler):
    async def get(self, session_id: str) -> None:
        self.write_json((await self.session(session_id)).public())

    async def delete(self, session_id: str) -> None:
        await self.pool.close_session(await self.session(session_id), "closed_by_user")
        self.set_status(204)
        self.finish()


class ExecuteHandler(SessionAPIHandler):
    async def post(self, session_id: str) -> None:
        code = self.json_body(EXECUTE_SCHEMA)["code"]
        session = await self.session(session_id)
        result = await session.execute(code)
        self.write_json(result.public())


class InterruptHandler(SessionAPIHandler):
    async def post(self, session_id: str) -> None:
        await (await self.session(session_id)).interrupt()
        self.set_status(204)
        self.finish()
