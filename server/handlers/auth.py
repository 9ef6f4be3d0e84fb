"""Sign-in, refresh and sign-out; the caller (name, UI language, password, personal access tokens);
users as admins add and change them."""

from __future__ import annotations

from typing import Any

from ..errors import AuthenticationError, PermissionDeniedError
from ..models import LOCALES, User
from ..paging import NEWEST
from ..services.auth import SignIn
from .base import APIHandler, idempotent, same_origin
from .listing import list_query, page_json

REFRESH_COOKIE = "bi_refresh"
REFRESH_COOKIE_PATH = "/api/auth"  # sent with refresh and sign-out only

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


REFRESH_SCHEMA = {
    "type": ["object", "null"],
    "properties": {"refresh_token": {"type": "string", "minLength": 1, "maxLength": 4096}},
    "additionalProperties": False,
}

PASSWORD_SCHEMA = {
    "type": "object",
    "properties": {
        "current_password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "new_password": {"type": "string", "maxLength": 1024},
    },
    "required": ["current_password", "new_password"],
    "additionalProperties": False,
}

NEW_TOKEN_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 100},
        "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 36500},
    },
    "required": ["name", "expires_in_days"],
    "additionalProperties": False,
}

USER_CHANGE_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "role": {"enum": ["admin", "member"]},
        "active": {"type": "boolean"},
    },
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


class SignInHandler(APIHandler):
    """What answers with tokens: the body, and the refresh token again as an httpOnly cookie.

    What sets or reads that cookie answers pages of our own origin only (``same_origin``): another
    site's page can make a browser send these requests, cookie included, but not choose their answer."""

    async def prepare(self) -> None:
        if not same_origin(self):  # before the body is read or any token checked
            raise PermissionDeniedError("Sign-in requests are taken from this site's own pages only.",
                                        code="cross_origin_request")
        await super().prepare()

    def write_sign_in(self, sign_in: SignIn) -> None:
        self.set_cookie(REFRESH_COOKIE, sign_in.refresh_token, path=REFRESH_COOKIE_PATH,
                        max_age=sign_in.refresh_expires_in, httponly=True, secure=self.is_https, samesite="Strict")
        self.write_json({"access_token": sign_in.access_token, "token_type": "bearer",
                         "expires_in": sign_in.expires_in, "refresh_token": sign_in.refresh_token,
                         "refresh_expires_in": sign_in.refresh_expires_in, "user": public_user(self, sign_in.user)})

    def clear_refresh_cookie(self) -> None:
        self.clear_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, httponly=True, secure=self.is_https,
                          samesite="Strict")

    def refresh_token(self) -> str | None:
        """The refresh token of the body (``{"refresh_token"}``), else of the cookie."""
        body = self.json_body(REFRESH_SCHEMA) or {}
        return body.get("refresh_token") or self.get_cookie(REFRESH_COOKIE)


class LoginHandler(SignInHandler):
    """``{"email", "password"}``: tokens. A one-time password an admin set answers 403
    ``password_change_required`` with an access token that may only change it."""

    auth_required = False  # so its body may have at most PUBLIC_BODY_BYTES

    async def post(self) -> None:
        body = self.json_body(LOGIN_SCHEMA)
        self.write_sign_in(await self.auth.login(body["email"], body["password"], self.client_ip))


class RefreshHandler(SignInHandler):
    """New tokens for the refresh token in the body or the cookie; the refresh token rotates."""

    auth_required = False

    async def post(self) -> None:
        token = self.refresh_token()
        if not token:
            raise AuthenticationError("Send the refresh token (body 'refresh_token', or the sign-in cookie).")
        self.write_sign_in(await self.auth.refresh(token))


class LogoutHandler(SignInHandler):
    """Sign this browser or client out: its sign-in session (by refresh token, else by access token) ends."""

    auth_required = False  # an expired access token must not keep a refresh token alive

    async def post(self) -> None:
        try:
            access: str | None = self._bearer_token()
        except AuthenticationError:
            access = None
        await self.auth.logout(self.refresh_token(), access)
        self.clear_refresh_cookie()
        self.set_status(204)
        self.finish()


class LogoutEverywhereHandler(SignInHandler):
    """Sign out everywhere: every token of the caller's (other sign-ins, personal tokens) stops working."""

    async def post(self) -> None:
        assert self.user is not None
        await self.auth.logout_everywhere(self.user)
        self.clear_refresh_cookie()
        self.set_status(204)
        self.finish()


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


class MePasswordHandler(SignInHandler):
    """``{"current_password", "new_password"}``: every other token of the caller's is revoked, and the
    caller gets new ones. The one thing a one-time password's sign-in may do."""

    token_scopes = frozenset({"session", "password_change"})

    async def post(self) -> None:
        assert self.user is not None
        body = self.json_body(PASSWORD_SCHEMA)
        self.write_sign_in(await self.users.change_password(self.user, body["current_password"],
                                                            body["new_password"], self.client_ip))


class MeTokensHandler(APIHandler):
    """The caller's personal access tokens (Jupyter clients): list, and create (the secret shown once)."""

    async def get(self) -> None:
        assert self.user is not None
        tokens = await self.auth.personal_tokens.list(self.user)
        self.write_json({"tokens": [token.public() for token in tokens]})

    async def post(self) -> None:
        """A token outlives the sign-in that makes it: that sign-in must be live in the store."""
        assert self.user is not None
        await self.auth.confirm_sign_in(self._bearer_token())
        body = self.json_body(NEW_TOKEN_SCHEMA)
        record, secret = await self.auth.personal_tokens.create(self.user, body["name"], body["expires_in_days"])
        self.set_header("Location", f"/api/me/tokens/{record.id}")
        self.write_json({**record.public(), "token": secret}, 201)


class MeTokenHandler(APIHandler):
    async def delete(self, token_id: str) -> None:
        assert self.user is not None
        await self.auth.personal_tokens.revoke(self.user, token_id)
        self.set_status(204)
        self.finish()


class UserHandler(APIHandler):
    async def patch(self, user_id: str) -> None:
        """Admins: ``{"name", "role", "active"}``; deactivating cuts every token of the user's."""
        assert self.user is not None
        body = self.json_body(USER_CHANGE_SCHEMA)
        user = await self.users.update_by(self.user, user_id, name=body.get("name"), role=body.get("role"),
                                          active=body.get("active"))
        self.write_json(user.public())


class UserPasswordResetHandler(APIHandler):
    async def post(self, user_id: str) -> None:
        """Admins: a one-time password for the user (shown once); they must change it at sign-in."""
        assert self.user is not None
        password = await self.users.reset_password_by(self.user, user_id)
        self.write_json({"password": password, "password_change_required": True})


class UsersHandler(APIHandler):
    async def get(self) -> None:
        assert self.user is not None
        query = list_query(self, sorts=NEWEST)
        page = await self.users.page_by(self.user, query)
        self.write_json(page_json("users", page, [u.public() for u in page.items], query))

    @idempotent
    async def post(self) -> None:
        assert self.user is not None
        body = self.json_body(NEW_USER_SCHEMA)
        user = await self.users.create_by(self.user, email=body["email"], name=body["name"],
                                          role=body.get("role", "member"), password=body["password"])
        self.set_header("Location", f"/api/users/{user.id}")
        self.write_json(user.public(), 201)
