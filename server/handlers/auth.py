"""Sign-in, the caller (and their name and UI language), and adding users."""

from __future__ import annotations

from typing import Any

from ..models import LOCALES, User
from .base import APIHandler, idempotent

LOGIN_SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
    },
    "required": ["email", "password"],
    "additionalProperties": False,
}

NEW_USER_SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "maxLength": 254},
        "name": {"type": "string", "maxLength": 200},
        "role": {"enum": ["admin", "member"]},
        "password": {"type": "string", "maxLength": 1024},
    },
    "required": ["email", "name", "password"],
    "additionalProperties": False,
}


PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "locale": {"enum": list(LOCALES)},
    },
    "additionalProperties": False,
}


def browser_locale(accept_language: str) -> str:
    """The first of our locales in an Accept-Language header (``ja`` when it names neither)."""
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.split("-")[0] in LOCALES:
            return tag.split("-")[0]
    return LOCALES[0]


class LoginHandler(APIHandler):
    auth_required = False  # so its body may have at most PUBLIC_BODY_BYTES

    async def post(self) -> None:
        body = self.json_body(LOGIN_SCHEMA)
        token, user = await self.auth.login(body["email"], body["password"], self.client_ip)
        self.write_json({"access_token": token, "token_type": "bearer",
                         "expires_in": self.auth.token_lifetime, "user": public_user(self, user)})


def public_user(handler: APIHandler, user: User) -> dict[str, Any]:
    """The user as the API shows it, with the browser's language until they choose one."""
    chosen = user.locale or browser_locale(handler.request.headers.get("Accept-Language", ""))
    return {**user.public(), "locale": chosen}


class MeHandler(APIHandler):
    def get(self) -> None:
        assert self.user is not None
        self.write_json(public_user(self, self.user))

    async def patch(self) -> None:
        """``{"locale": "ja" | "en", "name"}``: change my UI language or name."""
        assert self.user is not None
        body = self.json_body(PROFILE_SCHEMA)
        user = await self.users.update_profile(self.user, name=body.get("name"), locale=body.get("locale"))
        self.write_json(public_user(self, user))


class UsersHandler(APIHandler):
    async def get(self) -> None:
        assert self.user is not None
        users = await self.users.list_by(self.user)
        self.write_json({"users": [u.public() for u in users]})

    @idempotent
    async def post(self) -> None:
        assert self.user is not None
        body = self.json_body(NEW_USER_SCHEMA)
        user = await self.users.create_by(self.user, email=body["email"], name=body["name"],
                                          role=body.get("role", "member"), password=body["password"])
        self.set_header("Location", f"/api/users/{user.id}")
        self.write_json(user.public(), 201)
