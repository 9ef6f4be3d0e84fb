"""Requests another site makes a victim's browser send: no sign-in, refresh or sign-out on its behalf.

A cross-site page can make a browser POST without a CORS preflight only with a "simple" content type
(``text/plain``, ``application/x-www-form-urlencoded``, ``multipart/form-data``), and a top-level form
POST carries our ``SameSite=Strict`` refresh cookie's ``Set-Cookie`` back. Before, the login route
parsed a ``<form enctype="text/plain">`` body as JSON and signed the victim's browser into the
attacker's account (the victim's later work lands in the attacker's account). Now every route that
reads a JSON body takes it only as ``Content-Type: application/json`` (415 ``json_content_type_required``),
which a cross-site page cannot send without a preflight we refuse; and the routes that set or read the
refresh cookie answer only pages of our own origin (or of ``cors_origins``), by ``Origin`` and, without
it, ``Sec-Fetch-Site``.
"""

from __future__ import annotations

import json

import pytest

from ..server.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Client

ATTACKER = "mallory@example.com"
ATTACKER_PASSWORD = "pw-mallory-12=3456"  # an '=' lets a form field name and value spell JSON
FORM_BODY = b'{"email":"' + ATTACKER.encode() + b'","password":"pw-mallory-12' + b"=" + b'3456"}'
CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x")


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
async def test_a_cross_site_form_signs_nobody_in(api: Client, content_type: str):
    """The text/plain form body that is valid JSON (or the same bytes as any other simple type) is
    refused before any password is checked: no tokens, no cookie; for its origin, and for its type
    even without the browser's word on where it came from."""
    await api.add_user(ATTACKER, ATTACKER_PASSWORD)
    response = await api.fetch("POST", "/api/auth/login", body=FORM_BODY, token="",
                               headers={**CROSS_SITE, "Content-Type": content_type})
    assert (response.code, response.error_code) == (403, "cross_origin_request"), response.body
    assert "Set-Cookie" not in response.headers
    response = await api.fetch("POST", "/api/auth/login", body=FORM_BODY, token="",
                               headers={"Content-Type": content_type})
    assert (response.code, response.error_code) == (415, "json_content_type_required"), response.body
    assert "Set-Cookie" not in response.headers


async def test_every_json_route_takes_json_only(api: Client):
    """Each route that reads a JSON body refuses one sent as text/plain, signed in or not, and takes
    the same bytes as application/json."""
    admin = await api.login()
    card = await api.fetch("POST", "/api/cards", token=admin, json_body={"title": "c", "code": "1"})
    dashboard = await api.fetch("POST", "/api/dashboards", token=admin,
                                json_body={"schemaVersion": 1, "title": "d", "cards": [], "layout": []})
    assert card.code == dashboard.code == 201
    card_id, dashboard_id = card.json()["id"], dashboard.json()["id"]
    member = await api.add_user("ana@example.com")
    routes = [
        ("POST", "/api/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, None),
        ("POST", "/api/auth/refresh", {"refresh_token": "x"}, None),
        ("POST", "/api/auth/logout", {"refresh_token": "x"}, None),
        ("PATCH", "/api/me", {"name": "Admin"}, admin),
        ("POST", "/api/me/password", {"current_password": ADMIN_PASSWORD, "new_password": "another one 123"}, admin),
        ("POST", "/api/me/tokens", {"name": "lab", "expires_in_days": 1}, admin),
        ("POST", "/api/users", {"email": "bo@example.com", "name": "bo", "password": "bo password 1"}, admin),
        ("POST", "/api/cards", {"title": "c", "code": "1"}, admin),
        ("PUT", f"/api/cards/{card_id}", {"title": "c", "code": "2", "version": 1}, admin),
        ("POST", f"/api/cards/{card_id}/run", {}, admin),
        ("POST", "/api/dashboards", {"schemaVersion": 1, "title": "d", "cards": [], "layout": []}, admin),
        ("PUT", f"/api/dashboards/{dashboard_id}/shares", {"email": "ana@example.com", "permission": "view"}, admin),
        ("DELETE", f"/api/dashboards/{dashboard_id}/shares", {"email": "ana@example.com"}, admin),
        ("POST", "/api/card-sessions", {}, member),
        ("POST", "/api/kernels", {"name": "python3"}, admin),
        ("POST", "/api/sessions", {"path": "a.ipynb", "type": "notebook", "kernel": {"name": "python3"}}, admin),
    ]
    for method, path, body, token in routes:
        response = await api.fetch(method, path, body=json.dumps(body).encode(), token=token or "",
                                   headers={"Content-Type": "text/plain;charset=UTF-8"})
        assert (response.code, response.error_code) == (415, "json_content_type_required"), (method, path)
    accepted = await api.fetch("PATCH", "/api/me", body=b'{"name": "Admin"}', token=admin,
                               headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert accepted.code == 200, accepted.body
    empty = await api.fetch("POST", f"/api/dashboards/{dashboard_id}/versions/1/restore", token=admin)
    assert empty.code != 415, "a request without a body needs no content type"


async def sign_in_cookie(api: Client) -> dict[str, str]:
    response = await api.fetch("POST", "/api/auth/login", token="",
                               json_body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.code == 200
    return {"Cookie": response.headers["Set-Cookie"].split(";")[0]}


@pytest.mark.parametrize("route", ["/api/auth/refresh", "/api/auth/logout"])
@pytest.mark.parametrize("foreign", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}],
                         ids=["origin", "null-origin", "cross-site", "same-site"])
async def test_the_refresh_cookie_answers_our_pages_only(api: Client, route: str, foreign: dict[str, str]):
    """Refresh and sign-out by cookie from another origin get 403 ``cross_origin_request`` and change
    nothing (the sign-in still refreshes); from our own origin, or with neither header (a script,
    not a browser), they work."""
    jar = await sign_in_cookie(api)
    refused = await api.fetch("POST", route, headers={**jar, **foreign, "Content-Type": "application/json"},
                              body=b"{}", token="")
    assert (refused.code, refused.error_code) == (403, "cross_origin_request"), refused.body
    assert "Set-Cookie" not in refused.headers
    own = api.base_url
    renewed = await api.fetch("POST", "/api/auth/refresh", headers={**jar, "Origin": own, "Sec-Fetch-Site": "same-origin"},
                              token="")
    assert renewed.code == 200, "the refused request ended nothing and rotated nothing"
    jar = {"Cookie": renewed.headers["Set-Cookie"].split(";")[0]}
    assert (await api.fetch("POST", "/api/auth/refresh", headers=jar, token="")).code == 200


async def test_a_listed_origin_may_use_the_cookie(start_server):
    """An origin in ``cors_origins`` (the UI on another host of ours) refreshes; others do not."""
    api = await start_server(ServeApp__cors_origins=["https://bi.example.com"])
    jar = await sign_in_cookie(api)
    assert (await api.fetch("POST", "/api/auth/refresh", token="",
                            headers={**jar, "Origin": "https://bi.example.com", "Sec-Fetch-Site": "same-site"})).code == 200
    assert (await api.fetch("POST", "/api/auth/refresh", token="",
                            headers={**jar, "Origin": "https://evil.example"})).code == 403
