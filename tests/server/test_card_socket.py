"""The card editing websocket over real sockets, with bi serve's own agent and real kernels."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado import httpclient, websocket

from kernels.wire import BOKEH_ITEM

from .test_datasets import JAPANESE_CSV, upload
from .test_sessions import root, start_cards  # noqa: F401 - fixtures


class Socket:
    def __init__(self, connection: websocket.WebSocketClientConnection):
        self.connection = connection
        self.seen: list[dict] = []

    async def receive(self, timeout: float = 30) -> dict:
        text = await asyncio.wait_for(self.connection.read_message(), timeout)
        assert text is not None, "the server closed the socket"
        message = json.loads(text)
        message["_at"] = time.monotonic()
        self.seen.append(message)
        return message

    async def until(self, kind: str, timeout: float = 30) -> list[dict]:
        """Messages up to and including the first of type ``kind``."""
        got = []
        while True:
            got.append(await self.receive(timeout))
            if got[-1]["type"] == kind:
                return got

    def send(self, **message) -> None:
        self.connection.write_message(json.dumps(message))

    def close(self) -> None:
        self.connection.close()


async def connect(api, token: str | None, query: str = "", subprotocols: list[str] | None = None,
                  path: str = "/api/cards/scratch/ws") -> Socket:
    url = api.base_url.replace("http://", "ws://") + path + (f"?{query}" if query else "")
    headers = {"Authorization": f"Bearer {token}"} if token and not subprotocols else {}
    request = httpclient.HTTPRequest(url, headers=headers)
    return Socket(await websocket.websocket_connect(request, subprotocols=subprotocols))


async def test_outputs_stream_in_order_as_produced(start_cards):
    """Mixed outputs arrive numbered, in order, each as soon as the kernel produced it."""
    api = await start_cards()
    token = await api.login()
    dataset = (await upload(api, "売上", JAPANESE_CSV.encode(), token)).json()
    socket = await connect(api, token, f"datasets={dataset['id']}")
    hello = await socket.receive()
    assert hello["type"] == "session" and hello["seq"] == 1 and hello["limits"]["memory_mb"] == 2048
    socket.send(type="execute", run_id="r1", code=(
        "import time\nprint('first', flush=True)\ntime.sleep(0.5)\nprint('second')\n"
        "df = load_dataset('売上')\ndisplay(len(df))\ndf['店舗'].iloc[0]"))
    messages = await socket.until("done")
    assert [m["seq"] for m in messages] == list(range(2, 2 + len(messages)))
    kinds = [(m["type"], m.get("output", {}).get("output_type")) for m in messages]
    assert kinds == [("status", None), ("output", "stream"), ("output", "stream"), ("output", "display_data"),
                     ("output", "execute_result"), ("status", None), ("done", None)]
    first, second = messages[1], messages[2]
    assert first["output"]["text"] == "first\n" and second["output"]["text"] == "second\n"
    assert second["_at"] - first["_at"] > 0.4, "the first print must arrive before the sleep ends"
    assert messages[4]["output"]["data"]["text/plain"] == "'東京'"
    assert messages[-1]["status"] == "ok" and messages[-1]["execution_time_ms"] >= 500

    socket.send(type="execute", run_id="r2", code="1 / 0")
    failed = await socket.until("done")
    assert failed[1]["output"]["ename"] == "ZeroDivisionError" and failed[-1]["status"] == "error"
    socket.close()


async def test_interrupt_busy_and_bad_messages(start_cards):
    """An interrupt stops a loop; a second run while busy and garbage get errors, the socket stays."""
    api = await start_cards()
    socket = await connect(api, await api.login())
    await socket.receive()
    socket.send(type="execute", run_id="loop", code="print('looping', flush=True)\nwhile True: pass")
    assert (await socket.receive())["state"] == "busy"
    assert (await socket.receive())["output"]["text"] == "looping\n"  # an interrupt now hits the loop
    socket.send(type="execute", run_id="other", code="1")
    busy = await socket.receive()
    assert busy["type"] == "error" and busy["code"] == "busy"
    socket.connection.write_message("{not json")
    bad = await socket.receive()
    assert bad["code"] == "bad_message" and "seq" not in bad
    socket.send(type="interrupt")
    messages = await socket.until("done")
    assert messages[0]["output"]["ename"] == "KeyboardInterrupt" and messages[-1]["status"] == "error"
    socket.send(type="execute", run_id="after", code="21 * 2")
    assert (await socket.until("done"))[1]["output"]["data"]["text/plain"] == "42"


async def test_timeout_over_the_socket(start_cards):
    """Past the wall clock the run ends with status timeout and the session goes on; the output says so
    first (the ``timeout`` error, where the code was below it), not as a KeyboardInterrupt."""
    api = await start_cards(KernelPool__execution_timeout=1.0)
    socket = await connect(api, await api.login())
    await socket.receive()
    socket.send(type="execute", code="while True: pass")
    messages = await socket.until("done")
    done = messages[-1]
    assert done["status"] == "timeout" and "1 s limit" in done["message"]
    assert done["code"] == "timeout" and done["details"] == {"seconds": 1}
    [error] = [m["output"] for m in messages if m["type"] == "output"]
    assert error["ename"] == "timeout" and error["details"] == {"seconds": 1}
    assert any("while True" in frame for frame in error["traceback"]), error["traceback"]
    assert not any("KeyboardInterrupt" in frame for frame in error["traceback"]), error["traceback"]
    socket.send(type="execute", code="'alive'")
    assert (await socket.until("done"))[-1]["status"] == "ok"
    socket.send(type="execute", code="df = load_dataset('nope')")
    [error] = [m["output"] for m in await socket.until("done") if m["type"] == "output"]
    assert error["ename"] == "DatasetNotFound" and any("load_dataset('nope')" in f for f in error["traceback"])
    assert not any("kernels/" in frame for frame in error["traceback"]), "the platform's frames are left out"


async def test_reconnect_replays_what_was_missed(start_cards):
    """A client that drops mid-run and comes back with its last seq gets the rest, in order."""
    api = await start_cards()
    token = await api.login()
    socket = await connect(api, token)
    session_id = (await socket.receive())["session_id"]
    socket.send(type="execute", code="import time\nfor i in range(4):\n    print(i, flush=True)\n    time.sleep(0.2)")
    await socket.receive()  # busy
    last = (await socket.receive())["seq"]  # "0"
    socket.close()
    await asyncio.sleep(1.0)  # the run goes on and finishes while nobody listens
    again = await connect(api, token, f"session={session_id}&after={last}")
    rest = await again.until("done")
    assert [m["seq"] for m in rest] == list(range(last + 1, last + 1 + len(rest)))
    assert "".join(m["output"]["text"] for m in rest if m["type"] == "output") == "1\n2\n3\n"
    again.send(type="execute", code="i")
    assert (await again.until("done"))[1]["output"]["data"]["text/plain"] == "3"


async def test_auth_subprotocol_and_privacy(start_cards):
    """No token: 401 before any upgrade; the browser subprotocol works; others' sessions are 404."""
    api = await start_cards(KernelPool__reconnect_grace=0.5)
    with pytest.raises(httpclient.HTTPClientError) as refused:
        await connect(api, None)
    assert refused.value.code == 401
    token = await api.login()
    socket = await connect(api, token, subprotocols=["bi.v1", f"bearer.{token}"])
    assert socket.connection.selected_subprotocol == "bi.v1"
    session_id = (await socket.receive())["session_id"]
    stranger = await api.add_user("stranger@example.com")
    with pytest.raises(httpclient.HTTPClientError) as hidden:
        await connect(api, stranger, f"session={session_id}&after=1")
    assert hidden.value.code == 404
    socket.close()
    for _ in range(40):
        if session_id not in api.app.kernel_pool.sessions:
            break
        await asyncio.sleep(0.1)
    assert session_id not in api.app.kernel_pool.sessions, "the session outlived its grace period"
    with pytest.raises(httpclient.HTTPClientError) as ended:
        await connect(api, token, f"session={session_id}&after=1")
    assert ended.value.code == 404


async def test_bokeh_items_and_ordered_patches(start_cards):
    """A figure from show(fig) and from a bare expression arrives as a Bokeh item; later changes to
    its source arrive as numbered document patches, in order, in the runs that made them."""
    api = await start_cards()
    socket = await connect(api, await api.login())
    await socket.receive()
    socket.send(type="execute", code=(
        "from bokeh.plotting import figure, show\nfrom bokeh.models import ColumnDataSource\n"
        "src = ColumnDataSource({'x': [1], 'y': [1]})\np = figure(title='売上')\np.line('x', 'y', source=src)\n"
        "show(p)\np"))
    shown = [m["output"] for m in await socket.until("done") if m["type"] == "output"]
    assert [o["output_type"] for o in shown] == ["display_data", "execute_result"]
    items = [o["data"][BOKEH_ITEM] for o in shown]
    assert items[0]["root_id"] == items[1]["root_id"] and items[0]["doc"]["roots"]
    patches = []
    for step in (2, 3):
        socket.send(type="execute", code=f"src.stream({{'x': [{step}], 'y': [{step * 10}]}})")
        patches += [m["output"] for m in await socket.until("done") if m["type"] == "output"]
    socket.send(type="execute", code="p.title.text = 'changed'")
    patches += [m["output"] for m in await socket.until("done") if m["type"] == "output"]
    assert [(o["output_type"], o["root_id"], o["seq"]) for o in patches] == [
        ("bokeh_patch", items[0]["root_id"], n) for n in (1, 2, 3)]
    kinds = [[e["kind"] for e in o["patch"]["events"]] for o in patches]
    assert kinds == [["ColumnsStreamed"], ["ColumnsStreamed"], ["ModelChanged"]]


async def test_leaving_releases_the_session_at_once(start_cards):
    """A ``close`` message ends the session now (a fifth editor opens at once); a socket that drops without it
    keeps its session for the grace period, and a browser that then asks gets the refusal's cause and the
    sessions it holds."""
    api = await start_cards(KernelPool__sessions_per_user=1, KernelPool__reconnect_grace=30.0)
    token = await api.login()
    for _ in range(3):  # editors opened one after another, each left
        socket = await connect(api, token)
        session_id = (await socket.receive())["session_id"]
        socket.send(type="close")
        assert (await socket.receive())["reason"] == "closed_by_user"
        assert await socket.connection.read_message() is None
        assert socket.connection.close_code == 1000 and session_id not in api.app.kernel_pool.sessions

    dropped = await connect(api, token)
    kept = (await dropped.receive())["session_id"]
    dropped.close()  # no close message: a lost connection
    await asyncio.sleep(0.3)
    assert kept in api.app.kernel_pool.sessions, "a dropped socket keeps its session for a resume"
    with pytest.raises(httpclient.HTTPClientError) as refused:
        await connect(api, token)
    assert refused.value.code == 429
    browser = await connect(api, token, subprotocols=["bi.v1", f"bearer.{token}"])
    told = json.loads(await browser.connection.read_message())
    assert told["type"] == "refused" and told["status"] == 429 and told["error"]["code"] == "session_limit"
    assert told["error"]["details"] == {"held": 1, "limit": 1}
    assert await browser.connection.read_message() is None and browser.connection.close_code == 4429
    listed = (await api.fetch("GET", "/api/card-sessions", token=token)).json()
    assert (listed["held"], listed["limit"], [s["id"] for s in listed["sessions"]]) == (1, 1, [kept])
    assert (await api.fetch("DELETE", f"/api/card-sessions/{kept}", token=token)).code == 204
    socket = await connect(api, token)
    assert (await socket.receive())["type"] == "session", "closing it from the list lets the editor open"


async def test_a_saved_cards_editor_loads_its_choice_and_lists_as_the_card(start_cards):
    """A saved card's socket with ``?datasets=`` loads the datasets the editor chose (not saved yet) and its
    session lists under the card's title, not as new code; without edit access there is no socket."""
    api = await start_cards()
    token = await api.login()
    dataset = (await upload(api, "売上", JAPANESE_CSV.encode(), token)).json()
    card = (await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "店舗別売上", "code": "1", "datasets": [], "parameters": []})).json()
    assert (await api.fetch("GET", f"/api/cards/{card['id']}", token=token)).json()["access"] == "owner"
    socket = await connect(api, token, f"datasets={dataset['id']}", path=f"/api/cards/{card['id']}/ws")
    hello = await socket.receive()
    socket.send(type="execute", run_id="r1", code="len(load_dataset('売上'))")
    done = await socket.until("done")
    assert done[-1]["status"] == "ok", done
    sessions = (await api.fetch("GET", "/api/card-sessions", token=token)).json()["sessions"]
    assert [(s["id"], s["card_id"], s["card_title"]) for s in sessions] == [(hello["session_id"], card["id"], "店舗別売上")]
    socket.close()
    other = await api.add_user("other@example.com")
    with pytest.raises(httpclient.HTTPClientError) as refused:
        await connect(api, other, "datasets=", path=f"/api/cards/{card['id']}/ws")
    assert refused.value.code == 404


async def test_a_new_cards_session_lists_under_its_title_once_saved(start_cards):
    """A new card's session (the scratch socket) lists as new code until the editor says it was saved as a
    card; then under the card's title, with the same kernel; a card the caller may not edit is refused."""
    api = await start_cards()
    token = await api.login()
    socket = await connect(api, token)
    hello = await socket.receive()
    socket.send(type="execute", run_id="r1", code="kept = 41")
    assert (await socket.until("done"))[-1]["status"] == "ok"
    listed = (await api.fetch("GET", "/api/card-sessions", token=token)).json()["sessions"]
    assert [(s["card_id"], s["card_title"]) for s in listed] == [(None, None)]
    card = (await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "店舗別売上", "code": "kept + 1", "datasets": [], "parameters": []})).json()
    socket.send(type="card", card_id=card["id"])
    reply = await socket.receive()
    assert (reply["type"], reply["card_id"], "seq" in reply) == ("card", card["id"], False)
    socket.send(type="execute", run_id="r2", code="kept + 1")
    done = await socket.until("done")
    assert [m["output"]["data"]["text/plain"] for m in done if m["type"] == "output"] == ["42"], "the same kernel"
    listed = (await api.fetch("GET", "/api/card-sessions", token=token)).json()["sessions"]
    assert [(s["id"], s["card_id"], s["card_title"]) for s in listed] == [(hello["session_id"], card["id"], "店舗別売上")]
    socket.close()
    other = await api.add_user("other@example.com")
    theirs = await connect(api, other)
    await theirs.receive()
    theirs.send(type="card", card_id=card["id"])
    refused = await theirs.receive()
    assert (refused["type"], refused["code"]) == ("error", "not_found") and "seq" not in refused
    listed = (await api.fetch("GET", "/api/card-sessions", token=other)).json()["sessions"]
    assert [(s["card_id"], s["card_title"]) for s in listed] == [(None, None)]
    theirs.close()
