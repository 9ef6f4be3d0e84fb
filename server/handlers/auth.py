"""Sign-in, the caller, and adding users."""

from __future__ import annotations

from .base import APIHandler

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


class LoginHandler(APIHandler):
    auth_required = False  # so its body may have at most PUBLIC_BODY_BYTES

    async def post(self) -> None:
        body = self.json_body(LOGIN_SCHEMA)
        token, user = await self.auth.login(body["email"], body["password"], self.client_ip)
        self.write_json({"access_token": token, "token_type": "bearer",
                         "expires_in": self.auth.token_lifetime, "user": user.public()})


class MeHandler(APIHandler):
    def get(self) -> None:
        assert self.user is not None
        self.write_json(self.user.public())


class UsersHandler(APIHandler):
    async def get(self) -> None:
        assert self.user is not None
        users = await self.users.list_by(self.user)
        self.write_json({"users": [u.public() for u in users]})

    async def post(self) -> None:
        assert self.user is not None
        body = self.json_body(NEW_USER_SCHEMA)
        user = await self.users.create_by(self.user, email=body["email"], name=body["name"],
                                          role=body.get("role", "member"), password=body["password"])
        self.set_header("Location", f"/api/users/{user.id}")
        self.write_json(user.public(), 201)
