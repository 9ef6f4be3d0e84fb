"""An access token dies with its sign-in: after sign-out of this browser, or after a reused refresh token
ended the sign-in, the sign-in's access tokens are refused at once (not at their expiry).

Before, ``authenticate`` checked only the token's signature, expiry and the user's token generation: an
access token kept working for up to 15 minutes after ``POST /api/auth/logout``, and a thief who refreshed
with a stolen refresh token kept the access token of that refresh after the reuse was detected, long
enough to mint a personal access token for a year.
"""

from __future__ import annotations

from .test_tokens import refresh, sign_in, status


async def test_sign_out_ends_the_access_token(any_api):
    """After ``POST /api/auth/logout`` the sign-in's access token gets 401; another sign-in goes on."""
    mine, other = await sign_in(any_api), await sign_in(any_api)
    assert await status(any_api, mine["access_token"]) == (200, None)
    out = await any_api.fetch("POST", "/api/auth/logout", token=mine["access_token"],
                              json_body={"refresh_token": mine["refresh_token"]})
    assert out.code == 204
    assert await status(any_api, mine["access_token"]) == (401, "session_ended")
    assert await status(any_api, other["access_token"]) == (200, None)


async def test_sign_out_by_access_token_alone_ends_it_too(api):
    """A client that signs out with only its access token (no refresh token) ends it as well."""
    mine = await sign_in(api)
    out = await api.fetch("POST", "/api/auth/logout", token=mine["access_token"])
    assert out.code == 204
    assert await status(api, mine["access_token"]) == (401, "session_ended")


async def test_a_thief_keeps_nothing_after_reuse_is_detected(any_api):
    """The thief refreshes first; the user's copy coming back ends the sign-in, and with it the
    thief's access token: no request, no socket and no personal access token for it."""
    victim = await sign_in(any_api)
    code, thief = await refresh(any_api, victim["refresh_token"])
    assert code == 200
    code, reused = await refresh(any_api, victim["refresh_token"])
    assert (code, reused["error"]["code"]) == (401, "refresh_token_reused")
    for token in (thief["access_token"], victim["access_token"]):
        assert await status(any_api, token) == (401, "session_ended")
        minted = await any_api.fetch("POST", "/api/me/tokens", token=token,
                                     json_body={"name": "keep", "expires_in_days": 365})
        assert (minted.code, minted.error_code) == (401, "session_ended")
        kernels = await any_api.fetch("GET", "/api/kernelspecs", token=token)
        assert kernels.code == 401


async def test_a_personal_token_needs_a_sign_in_that_is_live_in_the_store(start_server):
    """Creating a personal access token reads the sign-in from the store, not from what a server
    remembers: a sign-in ended by another server (the shared store) mints nothing."""
    first = await start_server()
    second = await start_server(BIApp__data_dir=first.app.data_dir)  # the same store and signing key
    signed_in = await sign_in(second)
    assert await status(second, signed_in["access_token"]) == (200, None)  # the second server knows it live
    out = await first.fetch("POST", "/api/auth/logout", token=signed_in["access_token"],
                            json_body={"refresh_token": signed_in["refresh_token"]})
    assert out.code == 204
    minted = await second.fetch("POST", "/api/me/tokens", token=signed_in["access_token"],
                                json_body={"name": "keep", "expires_in_days": 365})
    assert (minted.code, minted.error_code) == (401, "session_ended")
