"""Tokens that can be revoked: a revoked, rotated, out-of-scope or deactivated user's token gets nothing.

Each attack holds a token that should no longer (or never did) open the door: an access token after
sign-out everywhere, a copied refresh token after its rotation, a personal access token outside the
Jupyter API, any token of a deactivated user or from before a password change, and the session of a
one-time password past ``POST /api/me/password``.
"""

from __future__ import annotations

import asyncio

import pytest
from tornado import httpclient, websocket

from ..server.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Client
from ..server.test_bus import redis_server  # noqa: F401 - fixture

MEMBER = "ana@example.com"
MEMBER_PASSWORD = "member password 1"


async def sign_in(api: Client, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> dict:
    response = await api.fetch("POST", "/api/auth/login", token="", json_body={"email": email, "password": password})
    assert response.code == 200, response.body
    return response.json()


async def add_member(api: Client) -> dict:
    """The member's first sign-in (access and refresh token, user)."""
    await api.add_user(MEMBER, MEMBER_PASSWORD)
    return await sign_in(api, MEMBER, MEMBER_PASSWORD)


async def personal_token(api: Client, token: str, days: int = 30) -> str:
    response = await api.fetch("POST", "/api/me/tokens", token=token, json_body={"name": "lab", "expires_in_days": days})
    assert response.code == 201, response.body
    return response.json()["token"]


async def refresh(api: Client, refresh_token: str) -> tuple[int, dict]:
    response = await api.fetch("POST", "/api/auth/refresh", token="", json_body={"refresh_token": refresh_token})
    return response.code, response.json()


async def status(api: Client, token: str, path: str = "/api/me") -> tuple[int, str | None]:
    """What a GET of ``path`` with ``token`` answers: the status and the error code, if any."""
    response = await api.fetch("GET", path, headers={"Authorization": f"token {token}"}, token="")
    return response.code, response.error_code if response.code >= 400 else None


class TestRevocation:
    async def test_sign_out_everywhere_stops_every_token_at_once(self, any_api):
        """After sign-out everywhere, access tokens of every sign-in, refresh tokens and personal
        tokens are all refused on the next request (not at their expiry)."""
        first, second = await sign_in(any_api), await sign_in(any_api)
        pat = await personal_token(any_api, first["access_token"])
        assert await status(any_api, second["access_token"]) == (200, None)
        assert await status(any_api, pat, "/api/kernelspecs") == (200, None)
        response = await any_api.fetch("POST", "/api/auth/logout-everywhere", token=first["access_token"])
        assert response.code == 204
        for token in (first["access_token"], second["access_token"]):
            assert await status(any_api, token) == (401, "token_revoked")
        assert (await status(any_api, pat, "/api/kernelspecs"))[0] == 401
        for signed_in in (first, second):
            assert (await refresh(any_api, signed_in["refresh_token"]))[0] == 401
        assert await status(any_api, (await sign_in(any_api))["access_token"]) == (200, None)

    async def test_sign_out_ends_this_sign_in_only(self, api):
        """``POST /api/auth/logout`` ends this sign-in's refresh token; another sign-in keeps going."""
        mine, other = await sign_in(api), await sign_in(api)
        response = await api.fetch("POST", "/api/auth/logout", token="",
                                       json_body={"refresh_token": mine["refresh_token"]})
        assert response.code == 204
        assert (await refresh(api, mine["refresh_token"]))[0] == 401
        assert (await refresh(api, other["refresh_token"]))[0] == 200


class TestRefresh:
    async def test_rotation_and_reuse_ends_the_session(self, any_api):
        """A refresh rotates the refresh token; the old one coming back (a stolen copy) ends the
        sign-in, so the thief's and the user's copies both stop working."""
        signed_in = await sign_in(any_api)
        code, rotated = await refresh(any_api, signed_in["refresh_token"])
        assert code == 200 and rotated["refresh_token"] != signed_in["refresh_token"]
        assert await status(any_api, rotated["access_token"]) == (200, None)
        code, reused = await refresh(any_api, signed_in["refresh_token"])
        assert (code, reused["error"]["code"]) == (401, "refresh_token_reused")
        code, after = await refresh(any_api, rotated["refresh_token"])
        assert (code, after["error"]["code"]) == (401, "session_ended")

    async def test_token_kinds_do_not_stand_in_for_each_other(self, api):
        """A refresh token is no access token, and an access token refreshes nothing."""
        signed_in = await sign_in(api)
        assert (await status(api, signed_in["refresh_token"]))[0] == 401
        assert (await refresh(api, signed_in["access_token"]))[0] == 401

    async def test_cookie_is_httponly_strict_and_refreshes(self, start_server):
        """Sign-in sets the refresh token as an httpOnly, SameSite=Strict cookie for /api/auth only,
        Secure when a trusted proxy says the client came over HTTPS; the cookie alone refreshes, and
        sign-out clears it and ends the sign-in."""
        api = await start_server(ServeApp__trusted_proxies=["127.0.0.1/32"])
        plain = await api.fetch("POST", "/api/auth/login", json_body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        cookie = plain.headers["Set-Cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path", "samesite"} <= attributes and "secure" not in attributes
        assert "SameSite=Strict" in cookie and "Path=/api/auth" in cookie
        secure = await api.fetch("POST", "/api/auth/login", headers={"X-Forwarded-Proto": "https"},
                                 json_body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert "secure" in secure.headers["Set-Cookie"].lower()
        jar = {"Cookie": cookie.split(";")[0]}
        refreshed = await api.fetch("POST", "/api/auth/refresh", headers=jar)
        assert refreshed.code == 200 and refreshed.json()["access_token"]
        jar = {"Cookie": refreshed.headers["Set-Cookie"].split(";")[0]}
        out = await api.fetch("POST", "/api/auth/logout", headers=jar)
        assert out.code == 204 and 'bi_refresh=""' in out.headers["Set-Cookie"]
        assert (await api.fetch("POST", "/api/auth/refresh", headers=jar)).code == 401


class TestPersonalTokens:
    async def test_jupyter_api_only(self, api):
        """A personal access token opens the Jupyter API and nothing else: every other route, our
        own sockets and the token routes themselves answer 403 personal_token_not_allowed."""
        token = (await sign_in(api))["access_token"]
        pat = await personal_token(api, token)
        for path in ("/api/kernelspecs", "/api/kernels", "/api/sessions"):
            assert await status(api, pat, path) == (200, None), path
        for path in ("/api/me", "/api/users", "/api/datasets", "/api/dashboards", "/api/me/tokens"):
            assert await status(api, pat, path) == (403, "personal_token_not_allowed"), path
        created = await api.fetch("POST", "/api/me/tokens", headers={"Authorization": f"token {pat}"}, token="",
                                  json_body={"name": "more", "expires_in_days": 1})
        assert created.code == 403
        url = api.base_url.replace("http://", "ws://") + "/api/cards/scratch/ws"
        with pytest.raises(httpclient.HTTPClientError) as refused:
            await websocket.websocket_connect(httpclient.HTTPRequest(url, headers={"Authorization": f"Bearer {pat}"}))
        assert refused.value.code == 403

    async def test_secret_shown_once_and_revocable_by_its_owner_only(self, any_api):
        """The list shows no secret; only its owner revokes a token (another user gets 404), and a
        revoked token is refused at once."""
        admin = (await sign_in(any_api))["access_token"]
        pat = await personal_token(any_api, admin)
        listed = (await any_api.fetch("GET", "/api/me/tokens", token=admin)).json()["tokens"]
        assert [t["name"] for t in listed] == ["lab"]
        assert not any(key in listed[0] for key in ("token", "secret_hash"))
        member = (await add_member(any_api))["access_token"]
        assert (await any_api.fetch("DELETE", f"/api/me/tokens/{listed[0]['id']}", token=member)).code == 404
        assert await status(any_api, pat, "/api/kernelspecs") == (200, None)
        assert (await any_api.fetch("DELETE", f"/api/me/tokens/{listed[0]['id']}", token=admin)).code == 204
        assert (await status(any_api, pat, "/api/kernelspecs"))[0] == 401
        assert (await any_api.fetch("GET", "/api/me/tokens", token=admin)).json()["tokens"] == []

    async def test_forged_and_overlong_tokens(self, api):
        """A guessed secret for a real token id is refused, and so is a lifetime past the maximum."""
        admin = (await sign_in(api))["access_token"]
        pat = await personal_token(api, admin)
        forged = pat[:-4] + ("AAAA" if not pat.endswith("AAAA") else "BBBB")
        assert (await status(api, forged, "/api/kernelspecs"))[0] == 401
        too_long = await api.fetch("POST", "/api/me/tokens", token=admin,
                                   json_body={"name": "forever", "expires_in_days": 10_000})
        assert (too_long.code, too_long.error_code) == (400, "token_lifetime_too_long")


class TestUsers:
    async def test_deactivation_cuts_every_token(self, any_api):
        """Deactivating a user refuses their access, refresh and personal tokens at once, and their
        sign-in; reactivating lets them sign in again (the old tokens stay dead)."""
        member = await add_member(any_api)
        pat = await personal_token(any_api, member["access_token"])
        admin = (await sign_in(any_api))["access_token"]
        response = await any_api.fetch("PATCH", f"/api/users/{member['user']['id']}", token=admin,
                                       json_body={"active": False})
        assert response.code == 200 and response.json()["active"] is False
        assert await status(any_api, member["access_token"]) == (401, "account_deactivated")
        assert (await status(any_api, pat, "/api/kernelspecs"))[0] == 401
        assert (await refresh(any_api, member["refresh_token"]))[0] == 401
        login = await any_api.fetch("POST", "/api/auth/login", json_body={"email": MEMBER, "password": MEMBER_PASSWORD})
        assert (login.code, login.error_code) == (401, "account_deactivated")
        await any_api.fetch("PATCH", f"/api/users/{member['user']['id']}", token=admin, json_body={"active": True})
        assert await status(any_api, member["access_token"]) == (401, "token_revoked")
        assert await status(any_api, (await sign_in(any_api, MEMBER, MEMBER_PASSWORD))["access_token"]) == (200, None)

    async def test_changed_password_revokes_the_other_tokens(self, api):
        """Changing the password cuts every other sign-in and personal token; the caller gets new tokens."""
        here = await add_member(api)
        elsewhere = await sign_in(api, MEMBER, MEMBER_PASSWORD)
        pat = await personal_token(api, elsewhere["access_token"])
        wrong = await api.fetch("POST", "/api/me/password", token=here["access_token"],
                                    json_body={"current_password": "not it at all", "new_password": "a new password 2"})
        assert (wrong.code, wrong.error_code) == (403, "wrong_password")
        await asyncio.sleep(1.05)  # a wrong current password makes the account wait here, as a failed sign-in does
        changed = await api.fetch("POST", "/api/me/password", token=here["access_token"],
                                      json_body={"current_password": MEMBER_PASSWORD, "new_password": "a new password 2"})
        assert changed.code == 200, changed.body
        for token in (here["access_token"], elsewhere["access_token"]):
            assert await status(api, token) == (401, "token_revoked")
        assert (await status(api, pat, "/api/kernelspecs"))[0] == 401
        assert (await refresh(api, elsewhere["refresh_token"]))[0] == 401
        assert await status(api, changed.json()["access_token"]) == (200, None)
        assert (await refresh(api, changed.json()["refresh_token"]))[0] == 200
        old = await api.fetch("POST", "/api/auth/login", json_body={"email": MEMBER, "password": MEMBER_PASSWORD})
        assert old.code == 401

    async def test_one_time_password_only_changes_the_password(self, api):
        """An admin's reset cuts the user's tokens and gives a one-time password; signing in with it
        answers 403 password_change_required with a token that works on POST /api/me/password only."""
        member = await add_member(api)
        admin = (await sign_in(api))["access_token"]
        reset = await api.fetch("POST", f"/api/users/{member['user']['id']}/password-reset", token=admin)
        assert reset.code == 200
        one_time = reset.json()["password"]
        assert await status(api, member["access_token"]) == (401, "token_revoked")
        login = await api.fetch("POST", "/api/auth/login", json_body={"email": MEMBER, "password": one_time})
        assert (login.code, login.error_code) == (403, "password_change_required")
        assert "bi_refresh" not in login.headers.get("Set-Cookie", "")
        restricted = login.json()["error"]["details"]["access_token"]
        for path in ("/api/me", "/api/datasets", "/api/kernelspecs", "/api/me/tokens"):
            assert await status(api, restricted, path) == (403, "password_change_required"), path
        changed = await api.fetch("POST", "/api/me/password", token=restricted,
                                      json_body={"current_password": one_time, "new_password": "my own password 3"})
        assert changed.code == 200, changed.body
        assert await status(api, changed.json()["access_token"]) == (200, None)
        assert (await status(api, restricted))[0] == 401
        assert (await sign_in(api, MEMBER, "my own password 3"))["user"]["password_change_required"] is False

    async def test_only_admins_change_users_and_not_themselves(self, api):
        """Members cannot change users or reset passwords; an admin cannot demote or deactivate themself."""
        member = await add_member(api)
        admin = await sign_in(api)
        for method, path, body in (("PATCH", f"/api/users/{admin['user']['id']}", {"role": "member"}),
                                   ("POST", f"/api/users/{admin['user']['id']}/password-reset", None)):
            response = await api.fetch(method, path, token=member["access_token"], json_body=body)
            assert response.code == 403, path
        for body in ({"role": "member"}, {"active": False}):
            response = await api.fetch("PATCH", f"/api/users/{admin['user']['id']}", token=admin["access_token"],
                                       json_body=body)
            assert (response.code, response.error_code) == (403, "own_account_change")
        renamed = await api.fetch("PATCH", f"/api/users/{member['user']['id']}", token=admin["access_token"],
                                  json_body={"name": "Ana B", "role": "admin"})
        assert renamed.json()["name"] == "Ana B" and renamed.json()["role"] == "admin"
        assert (await api.fetch("PATCH", "/api/users/nobody", token=admin["access_token"],
                                json_body={"name": "x"})).code == 404


class TestCachedUsers:
    """Each API task keeps the user records of recent requests (``services/user_cache.py``): a change on one
    task must still hold on the others."""

    async def test_a_change_on_one_task_holds_on_the_others_at_once(self, start_server, redis_server, tmp_path):  # noqa: F811
        """Two tasks on one store, the Redis bus between them, records kept a minute: demoting an admin,
        signing a user out everywhere or deactivating them on task A holds on task B for the next request."""
        bus = {"ServeApp__redis_url": redis_server.url, "RedisBus__ca_file": str(redis_server.ca_file),
               "AuthService__user_cache_seconds": 60.0}
        a = await start_server(**bus)
        b = await start_server(BIApp__data_dir=str(tmp_path / "data0"), **bus)
        admin = (await sign_in(a))["access_token"]
        member = await add_member(a)
        second = await a.add_user("second@example.com", role="admin")
        for token, path in ((member["access_token"], "/api/me"), (second, "/api/users")):
            assert await status(b, token, path) == (200, None), "kept by B now"

        demoted = await a.fetch("PATCH", f"/api/users/{(await b.fetch('GET', '/api/me', token=second)).json()['id']}",
                                token=admin, json_body={"role": "member"})
        assert demoted.code == 200, demoted.body
        assert await until(b, second, "/api/users", 403)
        assert (await a.fetch("POST", "/api/auth/logout-everywhere", token=member["access_token"])).code == 204
        assert await until(b, member["access_token"], "/api/me", 401)
        fresh = (await sign_in(b, MEMBER, MEMBER_PASSWORD))["access_token"]
        assert await status(b, fresh) == (200, None)
        response = await a.fetch("PATCH", f"/api/users/{member['user']['id']}", token=admin, json_body={"active": False})
        assert response.code == 200, response.body
        assert await until(b, fresh, "/api/me", 401)

    async def test_without_the_bus_a_kept_record_lasts_its_seconds_only(self, start_server, tmp_path):
        """Two tasks on one store with no bus between them: task B refuses a token deactivated on A once
        the record it kept is ``user_cache_seconds`` old, not for the rest of the token's 15 minutes."""
        a = await start_server(AuthService__user_cache_seconds=1.0)
        b = await start_server(BIApp__data_dir=str(tmp_path / "data0"), AuthService__user_cache_seconds=1.0)
        admin = (await sign_in(a))["access_token"]
        member = await add_member(a)
        assert await status(b, member["access_token"]) == (200, None)
        response = await a.fetch("PATCH", f"/api/users/{member['user']['id']}", token=admin, json_body={"active": False})
        assert response.code == 200, response.body
        assert await status(a, member["access_token"]) == (401, "account_deactivated"), "at once on A"
        await asyncio.sleep(1.1)
        assert await status(b, member["access_token"]) == (401, "account_deactivated")


async def until(api: Client, token: str, path: str, code: int, seconds: float = 2.0) -> bool:
    """Whether ``path`` answers ``code`` to ``token`` within ``seconds`` (a bus message takes milliseconds)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (await status(api, token, path))[0] != code:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
