"""An open socket outlives nothing its token loses: revoked credentials and removed rights close it at once.

Before, a websocket was authenticated once, at its upgrade, and then stayed open for as long as its
client kept it: after sign-out everywhere, a password change or an admin's deactivation (every token
of the user's refused by the next request) the card editor, scratch and dashboard sockets opened with
those tokens went on running code and showing outputs; a demoted admin's sockets on dashboards and
cards that were never shared with them went on too. Now a revocation closes, on every API task, the
sockets its credentials opened, with 4401 and a reason starting ``session_revoked`` (the UI signs in
again), and a change of role re-checks the rights of the user's sockets and sessions: those that no
longer hold close with 4403 ``access_revoked``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.server.test_card_socket import Socket, connect

from .sharing import card, dashboard_document

SESSION_REVOKED = 4401
ACCESS_REVOKED = 4403
PASSWORD = "member password 1"


async def closed(socket: Any, timeout: float = 5) -> tuple[int | None, str]:
    """Read ``socket`` (a card, dashboard or Jupyter socket) until the server closes it (at most ``timeout`` seconds): its close code and reason."""
    try:
        while await asyncio.wait_for(socket.connection.read_message(), timeout) is not None:
            pass
    except TimeoutError:
        return None, "still open"
    return socket.connection.close_code, socket.connection.close_reason or ""


async def sign_in(api, email: str, password: str = PASSWORD) -> dict:
    response = await api.fetch("POST", "/api/auth/login", token="", json_body={"email": email, "password": password})
    assert response.code == 200, response.body
    return response.json()


async def workbench(api, token: str) -> dict[str, str]:
    """A card of the caller's, on a dashboard of theirs: the paths of its sockets."""
    created = await api.fetch("POST", "/api/dashboards", token=token,
                              json_body=dashboard_document(card("hello", "print('hello')", [])))
    assert created.code == 201, created.body
    dashboard = created.json()
    return {"card": f"/api/cards/{dashboard['document']['cards'][0]['card']}/ws",
            "dashboard": f"/api/dashboards/{dashboard['id']}/ws", "scratch": "/api/cards/scratch/ws"}


async def open_sockets(api, token: str, paths: dict[str, str]) -> dict[str, Socket]:
    """Each socket of ``paths``, opened with ``token`` and answering (a run, a snapshot)."""
    sockets = {name: await connect(api, token, path=path) for name, path in paths.items()}
    for name, socket in sockets.items():
        if name == "dashboard":
            assert (await socket.receive())["type"] == "snapshot"
        else:
            assert (await socket.receive())["type"] == "session"
            socket.send(type="execute", run_id="r", code="print('ran')")
            assert (await socket.until("done"))[-1]["status"] == "ok"
    return sockets


async def assert_closed(sockets: dict[str, Socket], code: int, reason: str, after: str) -> None:
    ends = dict(zip(sockets, await asyncio.gather(*(closed(socket) for socket in sockets.values())), strict=True))
    for name, (got, why) in ends.items():
        assert got == code and why.startswith(reason), f"{name} socket after {after}: {got} {why!r}"


async def test_revocations_close_the_sockets_their_tokens_opened(start_cards):
    api = await start_cards(KernelPool__reconnect_grace=0.5)
    admin = await api.login()
    await api.add_user("ana@example.com")
    ana = await sign_in(api, "ana@example.com")
    paths = await workbench(api, ana["access_token"])

    # sign-out everywhere from another browser closes the first one's sockets
    sockets = await open_sockets(api, ana["access_token"], paths)
    other = await sign_in(api, "ana@example.com")
    assert (await api.fetch("POST", "/api/auth/logout-everywhere", token=other["access_token"])).code == 204
    await assert_closed(sockets, SESSION_REVOKED, "session_revoked", "sign-out everywhere")

    # signing out closes that sign-in's sockets only
    ana, other = await sign_in(api, "ana@example.com"), await sign_in(api, "ana@example.com")
    sockets = await open_sockets(api, ana["access_token"], {"dashboard": paths["dashboard"]})
    staying = await open_sockets(api, other["access_token"], {"dashboard": paths["dashboard"]})
    assert (await api.fetch("POST", "/api/auth/logout", token=ana["access_token"], json_body={})).code == 204
    await assert_closed(sockets, SESSION_REVOKED, "session_revoked", "signing out")
    assert (await closed(staying["dashboard"], timeout=0.5))[0] is None, "another sign-in's socket stays open"
    staying["dashboard"].close()

    # a password change closes the sockets of the tokens it revokes; the new sign-in opens them again
    ana = await sign_in(api, "ana@example.com")
    sockets = await open_sockets(api, ana["access_token"], {"card": paths["card"], "dashboard": paths["dashboard"]})
    changed = await api.fetch("POST", "/api/me/password", token=ana["access_token"],
                              json_body={"current_password": PASSWORD, "new_password": "a new password 2"})
    assert changed.code == 200, changed.body
    await assert_closed(sockets, SESSION_REVOKED, "session_revoked", "a password change")
    sockets = await open_sockets(api, changed.json()["access_token"], {"dashboard": paths["dashboard"]})

    # an admin's deactivation closes them too
    ana_id = changed.json()["user"]["id"]
    deactivated = await api.fetch("PATCH", f"/api/users/{ana_id}", token=admin, json_body={"active": False})
    assert deactivated.code == 200, deactivated.body
    await assert_closed(sockets, SESSION_REVOKED, "session_revoked", "deactivation")

    # a demoted admin's sockets on what only an admin may see close with the rights they lost
    assert (await api.fetch("PATCH", f"/api/users/{ana_id}", token=admin, json_body={"active": True})).code == 200
    await api.add_user("bo@example.com", role="admin")
    bo = await sign_in(api, "bo@example.com")
    sockets = await open_sockets(api, bo["access_token"], {"card": paths["card"], "dashboard": paths["dashboard"]})
    bo_id = bo["user"]["id"]
    demoted = await api.fetch("PATCH", f"/api/users/{bo_id}", token=admin, json_body={"role": "member"})
    assert demoted.code == 200, demoted.body
    await assert_closed(sockets, ACCESS_REVOKED, "", "a demotion")

