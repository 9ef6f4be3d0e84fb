"""Card routes: create, list, read, save a new version, delete, and the versions of a card.

A card's JSON is its own fields and those of its current version. Responses that show one card
carry ``ETag: "<version>"``; a save names the version it was edited from in ``If-Match`` (or a
``version`` field), so that two editors never silently overwrite each other.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidRequestError
from ..models import Card, CardVersion
from ..paging import NEWEST
from ..services.card_schema import CARD_VERSION, NEW_CARD
from ..storage.catalog import Listed
from .authors import with_author_names
from .base import APIHandler, idempotent, replays_itself
from .listing import list_query, page_json

IF_MATCH = re.compile(r'^\s*"(\d{1,9})"\s*$')


def card_json(card: Card, version: CardVersion) -> dict[str, Any]:
    """The card with its current version; ``updated_by`` wrote that version."""
    fields = version.public()
    fields["updated_by"] = fields.pop("created_by")
    return {**fields, **card.public()}


def listed_card_json(listed: Listed[Card]) -> dict[str, Any]:
    """What a list shows of a card: its summary (``storage/catalog.card_summary``), never its code or parameters."""
    return {**listed.summary, "version": listed.record.current_version, **listed.record.public()}


class CardAPIHandler(APIHandler):
    def write_card(self, card: Card, version: CardVersion, status: int = 200, **extra: Any) -> None:
        self.set_header("ETag", f'"{version.version}"')
        self.set_header("Content-Location", f"/api/cards/{card.id}")
        self.write_json({**card_json(card, version), **extra}, status)

    async def answer_again(self, location: str, status: int) -> None:
        assert self.user is not None
        card, version, access = await self.cards.get_shown(self.user, location.rsplit("/", 1)[-1])
        self.write_card(card, version, status, access=access)

    def written(self, card: Card, version: CardVersion, status: int = 200) -> None:
        """The card the caller just created or saved, with their access: who may save it is its owner (or an
        admin), or else an editor."""
        assert self.user is not None
        mine = card.owner_id == self.user.id or self.user.role == "admin"
        self.write_card(card, version, status, access="owner" if mine else "edit")

    def edited_version(self, body: dict[str, Any]) -> int | None:
        """The version a save was edited from: ``If-Match: "<n>"`` or the body's ``version``."""
        header = self.request.headers.get("If-Match")
        if header is None:
            return body.get("version")
        match = IF_MATCH.match(header)
        if match is None:
            raise InvalidRequestError(
                f'If-Match must name the version you edited, like "3", not {header}.', {"header": "If-Match"})
        version = int(match[1])
        if "version" in body and body["version"] != version:
            raise InvalidRequestError("If-Match and the version field name different versions.",
                                      {"header": "If-Match", "pointer": "/version"})
        return version


    def version_number(self, number: str) -> int:
        """A version number from the path."""
        if not (number.isascii() and number.isdigit()) or len(number) > 9:
            raise InvalidRequestError(f"A version is a whole number, not {number!r}.")
        return int(number)


class CardsHandler(CardAPIHandler):
    async def get(self) -> None:
        assert self.user is not None
        query = list_query(self, ("owner", "dataset", "tag", "q"))
        page = await self.cards.page_visible(self.user, query)
        self.write_json(page_json("cards", page, [listed_card_json(listed) for listed in page.items], query))

    @idempotent
    async def post(self) -> None:
        assert self.user is not None
        body = self.json_body(NEW_CARD)
        card, version = await self.cards.create(
            self.user, body["title"], body.get("code", ""), body.get("datasets", []),
            body.get("parameters", []), body.get("tags", []))
        self.set_header("Location", f"/api/cards/{card.id}")
        self.written(card, version, 201)


class CardHandler(CardAPIHandler):
    async def get(self, card_id: str) -> None:
        assert self.user is not None
        card, version, access = await self.cards.get_shown(self.user, card_id)
        self.write_card(card, version, access=access)

    @replays_itself
    async def put(self, card_id: str) -> None:
        assert self.user is not None
        body = self.json_body(CARD_VERSION)
        card, version = await self.cards.update(
            self.user, card_id, self.edited_version(body), body["title"], body["code"],
            body["datasets"], body["parameters"], body.get("tags"))
        self.written(card, version)

    async def delete(self, card_id: str) -> None:
        assert self.user is not None
        await self.cards.delete(self.user, card_id)
        self.set_status(204)
        self.finish()


class CardVersionsHandler(CardAPIHandler):
    async def get(self, card_id: str) -> None:
        assert self.user is not None
        query = list_query(self, sorts=NEWEST)
        page = await self.cards.versions(self.user, card_id, query)
        versions = await with_author_names(self.cards.store, [v.public() for v in page.items])
        self.write_json(page_json("versions", page, versions, query))


class CardVersionHandler(CardAPIHandler):
    async def get(self, card_id: str, number: str) -> None:
        assert self.user is not None
        self.write_json((await self.cards.version(self.user, card_id, self.version_number(number))).public())


RUN_SCHEMA = {
    "type": "object",
    "properties": {"parameters": {"type": "object", "maxProperties": 20}, "force": {"type": "boolean"}},
    "additionalProperties": False,
}


class CardRunHandler(APIHandler):
    async def post(self, card_id: str) -> None:
        """Run the card's current version: ``{"status", "outputs", "cached", "execution_time_ms", "truncated"}``
        and its freshness; ``force`` (those who may edit the card) runs it past the cache."""
        assert self.user is not None
        body = self.json_body(RUN_SCHEMA)
        force = body.get("force", False)
        if force:
            await self.cards.get_visible(self.user, card_id, needed="edit")
        self.write_json(await self.settings["card_runs"].run(self.user, card_id, body.get("parameters", {}), force))
