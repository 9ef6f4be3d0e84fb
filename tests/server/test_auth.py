"""Sign-in, tokens, throttling, users and the caller."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from structlog.testing import capture_logs

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD


class TestLogin:
    async def test_login_returns_bearer_token(self, any_api):
        """Right credentials give a bearer token, its lifetime and the user without a hash."""
        response = await any_api.fetch("POST", "/api/auth/login",
                                       json_body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert response.code == 200
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 15 * 60
        assert body["user"]["email"] == ADMIN_EMAIL and body["user"]["role"] == "admin"
        assert "password_hash" not in body["user"]
        me = await any_api.fetch("GET", "/api/me", token=body["access_token"])
        assert me.code == 200 and me.json()["id"] == body["user"]["id"]

    async def test_email_is_case_insensitive(self, api):
        """The email matches whatever its case and surrounding spaces."""
        response = await api.fetch("POST", "/api/auth/login",
                                   json_body={"email": "  Admin@Example.COM ", "password": ADMIN_PASSWORD})
        assert response.code == 200

    @pytest.mark.parametrize("body", [
        {"email": ADMIN_EMAIL, "password": "wrong password"},
        {"email": "nobody@example.com", "password": ADMIN_PASSWORD},
    ])
    async def test_wrong_credentials(self, api, body):
        """A wrong password and an unknown email get the same 401."""
        response = await api.fetch("POST", "/api/auth/login", json_body=body)
        assert response.code == 401
        assert response.json()["error"]["message"] == "The email or password is wrong."

    @pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"email": "a@b.c"}',
                                     b'{"email": "a@b.c", "password": "x", "extra": 1}'])
    async def test_malformed_body(self, api, raw):
        """Bodies that are not the login object get a 400 naming the problem."""
        response = await api.fetch("POST", "/api/auth/login", body=raw,
                                   headers={"Content-Type": "application/json"})
        assert response.code == 400
        assert response.json()["error"]["message"]

    async def test_audit_events(self, api):
        """Sign-ins write login_success and login_failed with email, user_id and ip."""
        with capture_logs() as logs:
            await api.login()
            await api.fetch("POST", "/api/auth/login", json_body={"email": ADMIN_EMAIL, "password": "nope"})
        events = {e["event"]: e for e in logs if e.get("audit")}
        assert events["login_success"]["email"] == ADMIN_EMAIL
        assert events["login_success"]["user_id"]
        assert events["login_success"]["ip"] == "127.0.0.1"
        assert events["login_failed"]["email"] == ADMIN_EMAIL
        assert events["login_failed"]["user_id"] == events["login_success"]["user_id"]


class TestTokens:
    def key(self, api) -> str:
        """The signing key the embedded server generated into its data dir."""
        return (Path(api.app.data_dir) / "jwt_secret_key").read_text().strip()

    async def claims(self, api) -> dict:
        token = await api.login()
        return jwt.decode(token, options={"verify_signature": False})

    async def test_missing_token(self, api):
        """No Authorization header is a 401 that says how to sign in."""
        response = await api.fetch("GET", "/api/me")
        assert response.code == 401
        assert "Authorization" in response.json()["error"]["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_expired_token(self, api):
        """A token past its exp is a 401 that says it expired."""
        claims = await self.claims(api)
        claims.update(iat=int(time.time()) - 100, exp=int(time.time()) - 10)
        token = jwt.encode(claims, self.key(api), algorithm="HS256")
        response = await api.fetch("GET", "/api/me", token=token)
        assert response.code == 401
        assert "expired" in response.json()["error"]["message"]

    async def test_tampered_token(self, api):
        """Changing the payload of a signed token breaks it."""
        token = await api.login()
        header, payload, signature = token.split(".")
        claims = jwt.decode(token, options={"verify_signature": False})
        claims["sub"] = "someone-else"
        forged_payload = jwt.encode(claims, "x" * 40, algorithm="HS256").split(".")[1]
        response = await api.fetch("GET", "/api/me", token=f"{header}.{forged_payload}.{signature}")
        assert response.code == 401

    async def test_alg_none(self, api):
        """An unsigned token (alg none) is refused."""
        claims = await self.claims(api)
        token = jwt.encode(claims, None, algorithm="none")
        response = await api.fetch("GET", "/api/me", token=token)
        assert response.code == 401

    async def test_wrong_key(self, api):
        """A token signed with another key is refused."""
        claims = await self.claims(api)
        token = jwt.encode(claims, "another key that is long enough 1234567", algorithm="HS256")
        assert (await api.fetch("GET", "/api/me", token=token)).code == 401

    async def test_garbage_and_scheme(self, api):
        """Random strings and other auth schemes are refused."""
        assert (await api.fetch("GET", "/api/me", token="abc.def.ghi")).code == 401
        good = await api.login()
        response = await api.fetch("GET", "/api/me", headers={"Authorization": f"Basic {good}"}, token="")
        assert response.code == 401

    async def test_token_scheme_accepted(self, api):
        """'Authorization: token <jwt>' works like Bearer (Jupyter clients send it)."""
        good = await api.login()
        response = await api.fetch("GET", "/api/me", headers={"Authorization": f"token {good}"}, token="")
        assert response.code == 200


class TestUsers:
    async def test_admin_adds_member(self, any_api):
        """An admin adds a member, who can then sign in and see themself."""
        token = await any_api.add_user("ana@example.com")
        me = await any_api.fetch("GET", "/api/me", token=token)
        assert me.json()["email"] == "ana@example.com" and me.json()["role"] == "member"

    async def test_member_cannot_add(self, api):
        """A member gets 403 when adding a user."""
        token = await api.add_user("ana@example.com")
        response = await api.fetch("POST", "/api/users", token=token, json_body={
            "email": "bo@example.com", "name": "Bo", "password": "long enough pw"})
        assert response.code == 403

    async def test_duplicate_email(self, api):
        """Adding an existing email is a 409."""
        admin = await api.login()
        response = await api.fetch("POST", "/api/users", token=admin, json_body={
            "email": ADMIN_EMAIL.upper(), "name": "Again", "password": "long enough pw"})
        assert response.code == 409
        assert response.json()["error"]["code"] == "email_taken"

    @pytest.mark.parametrize("body, field", [
        ({"email": "not-an-email", "name": "A", "password": "long enough pw"}, "email"),
        ({"email": "a@example.com", "name": "  ", "password": "long enough pw"}, "name"),
        ({"email": "a@example.com", "name": "A", "password": "short"}, "password"),
        ({"email": "a@example.com", "name": "A", "password": "long enough pw", "role": "root"}, "role"),
    ])
    async def test_bad_user_fields(self, api, body, field):
        """Each invalid field is a 400 that names it."""
        admin = await api.login()
        response = await api.fetch("POST", "/api/users", token=admin, json_body=body)
        assert response.code == 400
        error = response.json()["error"]
        assert field in error["message"] or error["details"].get("field") == field \
            or field in error["details"].get("pointer", "")

    async def test_admin_lists_users(self, api):
        """Admins list users; members get 403."""
        member = await api.add_user("ana@example.com")
        admin = await api.login()
        listed = await api.fetch("GET", "/api/users", token=admin)
        assert sorted(u["email"] for u in listed.json()["users"]) == ["admin@example.com", "ana@example.com"]
        assert (await api.fetch("GET", "/api/users", token=member)).code == 403


class TestProfile:
    async def test_locale_follows_browser_until_chosen(self, any_api):
        """Without a choice the locale is the browser's (Accept-Language); PATCH keeps a choice for good."""
        token = await any_api.add_user("ana@example.com")
        me = await any_api.fetch("GET", "/api/me", token=token, headers={"Accept-Language": "en-US,en;q=0.9"})
        assert me.json()["locale"] == "en"
        me = await any_api.fetch("GET", "/api/me", token=token, headers={"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.8"})
        assert me.json()["locale"] == "ja"
        changed = await any_api.fetch("PATCH", "/api/me", token=token, json_body={"locale": "en", "name": "Ana"})
        assert changed.code == 200 and changed.json()["locale"] == "en" and changed.json()["name"] == "Ana"
        me = await any_api.fetch("GET", "/api/me", token=token, headers={"Accept-Language": "ja"})
        assert me.json()["locale"] == "en"
        login = await any_api.fetch("POST", "/api/auth/login", token="",
                                    json_body={"email": "ana@example.com", "password": "member password 1"})
        assert login.json()["user"]["locale"] == "en"

    @pytest.mark.parametrize("body", [{"locale": "fr"}, {"name": ""}, {"role": "admin"}])
    async def test_bad_profile(self, api, body):
        """Unknown locales, empty names and other fields (a role) are refused."""
        token = await api.add_user("ana@example.com")
        response = await api.fetch("PATCH", "/api/me", token=token, json_body=body)
        assert response.code == 400
        me = await api.fetch("GET", "/api/me", token=token)
        assert me.json()["role"] == "member"


class TestSessions:
    async def test_login_gives_refresh_token_and_cookie(self, api):
        """Sign-in answers with a refresh token beside the access token, and sets it as the cookie."""
        response = await api.fetch("POST", "/api/auth/login",
                                   json_body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        body = response.json()
        assert body["refresh_token"] and body["refresh_expires_in"] == 14 * 24 * 3600
        assert response.headers["Set-Cookie"].startswith(f"bi_refresh={body['refresh_token']};")
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 15 * 60 and claims["typ"] == "access"

    async def test_refresh_without_a_token(self, api):
        """A refresh without a token (body or cookie) is a 401 that says what to send."""
        response = await api.fetch("POST", "/api/auth/refresh", token="")
        assert response.code == 401 and "refresh_token" in response.json()["error"]["message"]

    async def test_logout_is_idempotent(self, api):
        """Signing out twice, or with nothing to sign out, is a 204."""
        body = (await api.fetch("POST", "/api/auth/login",
                                json_body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})).json()
        for _ in range(2):
            response = await api.fetch("POST", "/api/auth/logout", token=body["access_token"])
            assert response.code == 204
        assert (await api.fetch("POST", "/api/auth/refresh", json_body={"refresh_token": body["refresh_token"]},
                                token="")).code == 401
        assert (await api.fetch("POST", "/api/auth/logout", token="")).code == 204

    async def test_audit_events(self, api):
        """Token and user changes are audit events with ids as keys, never a secret."""
        admin = await api.login()
        member = await api.add_user("ana@example.com")
        me = (await api.fetch("GET", "/api/me", token=member)).json()
        with capture_logs() as logs:
            created = (await api.fetch("POST", "/api/me/tokens", token=member,
                                       json_body={"name": "lab", "expires_in_days": 7})).json()
            await api.fetch("DELETE", f"/api/me/tokens/{created['id']}", token=member)
            await api.fetch("PATCH", f"/api/users/{me['id']}", token=admin, json_body={"role": "admin"})
            reset = (await api.fetch("POST", f"/api/users/{me['id']}/password-reset", token=admin)).json()
            restricted = (await api.fetch("POST", "/api/auth/login", token="", json_body={
                "email": "ana@example.com", "password": reset["password"]})).json()["error"]["details"]
            changed = (await api.fetch("POST", "/api/me/password", token=restricted["access_token"], json_body={
                "current_password": reset["password"], "new_password": "a new password 9"})).json()
            await api.fetch("POST", "/api/auth/logout", token="", json_body={"refresh_token": changed["refresh_token"]})
            await api.fetch("POST", "/api/auth/logout-everywhere", token=admin)
        events = {e["event"]: e for e in logs if e.get("audit")}
        assert events["token_created"]["token_id"] == events["token_revoked"]["token_id"] == created["id"]
        assert events["token_created"]["user_id"] == me["id"]
        assert events["user_updated"]["user_id"] == me["id"] and events["user_updated"]["role"] == "admin"
        assert events["password_reset"]["user_id"] == me["id"] and events["password_reset"]["by"]
        assert events["password_changed"]["user_id"] == me["id"]
        assert events["logout"]["user_id"] == me["id"]
        assert events["logout_everywhere"]["user_id"] != me["id"]
        logged = repr(logs)
        assert reset["password"] not in logged and created["token"] not in logged

    @pytest.mark.parametrize("body", [{"name": "lab"}, {"name": "", "expires_in_days": 1},
                                      {"name": "lab", "expires_in_days": 0}, {"name": "lab", "expires_in_days": 1.5}])
    async def test_bad_token_requests(self, api, body):
        """A personal token needs a name and a whole number of days from 1."""
        response = await api.fetch("POST", "/api/me/tokens", token=await api.login(), json_body=body)
        assert response.code == 400

    async def test_short_new_password(self, api):
        """A new password shorter than the minimum is a 400 naming the field."""
        response = await api.fetch("POST", "/api/me/password", token=await api.login(), json_body={
            "current_password": ADMIN_PASSWORD, "new_password": "short"})
        assert response.code == 400 and response.json()["error"]["details"]["field"] == "new_password"
        assert response.json()["error"]["code"] == "password_too_short"
