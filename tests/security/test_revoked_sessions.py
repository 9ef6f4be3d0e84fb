"""A kernel session runs only while the grant it was opened on holds: a revoked editor's session is over.

Before, an editor opened a card's editing socket, the owner revoked the share, and the editor went on
running code in that session: on the open socket, by resuming it through the scratch socket
(``?session=<id>&after=0``) and through ``POST /api/card-sessions/{id}/execute``. Now every run checks
the session's grant (the card's edit access, the datasets it loaded) against the rights of now,
whichever route it comes by; a revocation ends the revoked user's sessions at once and closes their
sockets with 4403 and a reason; a session whose grant was lost another way (the card taken off the
dashboard) is refused and ended at its next run.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado import httpclient

from tests.server.test_card_socket import Socket, connect

from .sharing import LEAK, SECRET, Scene, revoke, shared_dashboard

REVOKED = 4403


async def editing_session(api, scene: Scene) -> tuple[Socket, str]:
    """The editor's socket on the card, after one run there; and its session id."""
    socket = await connect(api, scene.editor, path=f"/api/cards/{scene.card_id}/ws")
    hello = await socket.receive()
    socket.send(type="execute", run_id="before", code="kept = 'still here'\n" + LEAK)
    ended = (await socket.until("done"))[-1]
    assert ended["status"] in ("ok", "error"), ended
    return socket, hello["session_id"]


async def done(socket: Socket, run_id: str) -> list[dict]:
    """Messages up to the end of run ``run_id`` (a resume replays earlier runs first)."""
    got = []
    while not (got and got[-1]["type"] == "done" and got[-1]["run_id"] == run_id):
        got.append(await socket.receive())
    return got


async def closed(socket: Socket, timeout: float = 10) -> tuple[int | None, str | None]:
    """Read ``socket`` until the server closes it: its close code and reason."""
    while await asyncio.wait_for(socket.connection.read_message(), timeout) is not None:
        pass
    return socket.connection.close_code, socket.connection.close_reason


async def assert_session_refused(api, scene: Scene, socket: Socket | None, session_id: str) -> None:
    """No route runs code in the session any more, and it is gone."""
    # (1) the socket, if still open: closed with 4403 and a reason, nothing run
    if socket is not None:
        socket.send(type="execute", run_id="after", code="print(kept)\n" + LEAK)
        code, reason = await closed(socket)
        assert code == REVOKED and reason, (code, reason)
        ran = [m for m in socket.seen if m.get("run_id") == "after" and m["type"] == "output"]
        assert not ran, f"code ran after the revocation: {ran}"
    # (2) resumed through the scratch socket
    with pytest.raises(httpclient.HTTPClientError) as refused:
        resumed = await connect(api, scene.editor, f"session={session_id}&after=0")
        resumed.send(type="execute", run_id="resumed", code="print(kept)\n" + LEAK)
        pytest.fail(f"the session was resumed: {json.dumps(await done(resumed, 'resumed'))}")
    assert refused.value.code in (403, 404)
    # (3) the HTTP route
    executed = await api.fetch("POST", f"/api/card-sessions/{session_id}/execute", token=scene.editor,
                               json_body={"code": "print(kept)\n" + LEAK})
    assert executed.code in (403, 404), executed.body
    assert b"still here" not in executed.body and SECRET.encode() not in executed.body
    listed = await api.fetch("GET", "/api/card-sessions", token=scene.editor)
    assert session_id not in [s["id"] for s in listed.json()["sessions"]], "the session's kernel was kept"


async def test_a_revoked_editors_sessions_end(start_cards):
    api = await start_cards()
    scene = await shared_dashboard(api)
    socket, session_id = await editing_session(api, scene)
    await revoke(api, scene.owner, scene.dashboard_id, "editor@example.com")
    code, reason = await closed(socket)
    assert code == REVOKED and "revoked" in (reason or ""), "the open socket is closed at the revocation"
    await assert_session_refused(api, scene, None, session_id)
    trail = (await api.fetch("GET", "/api/audit?event=session_access_revoked", token=await api.login())).json()
    assert [e["session_id"] for e in trail["events"]] == [session_id]


async def test_a_session_whose_card_left_the_dashboard_cannot_run(start_cards):
    """No revocation is heard of: the grant is checked at the next run, whichever route it comes by."""
    api = await start_cards()
    scene = await shared_dashboard(api)
    for route in ("socket", "resume", "http"):
        path = f"/api/dashboards/{scene.dashboard_id}"
        restored = await api.fetch("POST", f"{path}/versions/1/restore", token=scene.owner)
        assert restored.code == 200, restored.body
        socket, session_id = await editing_session(api, scene)
        current = (await api.fetch("GET", path, token=scene.owner)).json()
        emptied = await api.fetch("PUT", path, token=scene.owner, json_body={
            "version": current["version"], "document": {**current["document"], "cards": [], "layout": []}})
        assert emptied.code == 200, emptied.body
        if route == "socket":
            await assert_session_refused(api, scene, socket, session_id)
            continue
        socket.close()
        if route == "resume":
            with pytest.raises(httpclient.HTTPClientError) as refused:
                resumed = await connect(api, scene.editor, f"session={session_id}&after=0")
                resumed.send(type="execute", run_id="resumed", code="print(kept)")
                pytest.fail(f"the session was resumed: {json.dumps(await done(resumed, 'resumed'))}")
            assert refused.value.code == 403 and b"access_revoked" in (refused.value.response.body or b"")
        else:
            executed = await api.fetch("POST", f"/api/card-sessions/{session_id}/execute", token=scene.editor,
                                       json_body={"code": "print(kept)"})
            assert executed.code == 403 and executed.error_code == "access_revoked", executed.body
        listed = await api.fetch("GET", "/api/card-sessions", token=scene.editor)
        assert session_id not in [s["id"] for s in listed.json()["sessions"]], "the refused session was kept"
