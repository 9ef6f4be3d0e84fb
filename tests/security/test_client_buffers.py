"""Every per-client buffer is bounded in bytes: a client that stops reading is closed (4008), and one
that never comes back costs at most the replay bound, for card and Jupyter sockets alike.

Measured through the objects that hold the bytes (the socket's write buffer, what a resume gets
back), with real kernels printing big outputs.

Red team 5: a Jupyter kernel's input history (for ``history_request``) kept its last 1,000 inputs whatever
their size: cells of a 1.9 MB comment each grew the server by about 2 MB a run, toward 2 GB a kernel, and one
``history_reply`` carried them all. It now keeps at most ``JUPYTER_HISTORY_CHARS`` characters.
"""

from __future__ import annotations

import asyncio
import uuid

from server import limits
from server.jupyter.history import InputHistory
from tests.server.conftest import start_server  # noqa: F401 - fixture
from tests.server.test_card_socket import connect as card_socket
from tests.server.test_jupyter_api import connect as kernel_socket
from tests.server.test_jupyter_api import start_kernel
from tests.server.test_sessions import root, start_cards  # noqa: F401 - fixtures

MB = 1024 * 1024
BIG_PRINT = "print('x' * 3_000_000)"
RUNS = 10  # 30 MB in all: more than the client's and server's TCP buffers hold


def queued_bytes(handler) -> int:
    """Bytes the server holds for ``handler``'s client, written but not yet taken by the OS."""
    connection = handler.ws_connection
    if connection is None or connection.stream is None or connection.stream.closed():
        return 0
    return len(connection.stream._write_buffer)


async def read_until_closed(connection) -> int:
    while await asyncio.wait_for(connection.read_message(), 30) is not None:
        pass
    return connection.close_code


async def send_runs(socket, relay, code: str, runs: int) -> str:
    """Send ``runs`` execute_requests of ``code`` behind a short sleep, once the server holds them all."""
    socket.send("execute_request", {"code": "import time\ntime.sleep(1)", "silent": False})
    last = ""
    for _ in range(runs):
        last = socket.send("execute_request", {"code": code, "silent": False})
    for _ in range(200):
        if len(relay._held) == runs:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError("the server never got the requests")


async def quiet(relay) -> None:
    """Until the Jupyter kernel has answered every request sent to it."""
    for _ in range(1200):
        if not relay._held and relay._awaiting is None and relay._run is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the kernel never finished")


async def test_a_card_socket_that_stops_reading_is_closed_not_buffered(start_cards, monkeypatch):
    monkeypatch.setattr(limits, "SOCKET_PENDING_BYTES", MB, raising=False)
    api = await start_cards()
    token = await api.login()
    slow = await card_socket(api, token)
    session_id = (await slow.receive())["session_id"]  # and from now on it reads nothing
    live = api.app.live_sessions._live[session_id]
    handler = live._socket
    queued = []
    for run in range(RUNS):
        live.execute(BIG_PRINT, f"r{run}")
        await live._run
        queued.append(queued_bytes(handler))
    assert max(queued) <= limits.SOCKET_PENDING_BYTES + limits.OUTPUT_BYTES, queued
    assert await read_until_closed(slow.connection) == 4008


async def test_a_card_session_keeps_only_its_newest_bytes_for_a_resume(start_cards):
    """A client that never comes back costs the replay bound; one that does is told what it lost."""
    api = await start_cards(LiveSessions__replay_buffer_bytes=2 * MB)
    token = await api.login()
    socket = await card_socket(api, token)
    session_id = (await socket.receive())["session_id"]
    socket.close()
    live = api.app.live_sessions._live[session_id]
    for run in range(8):
        live.execute("print('x' * 1_000_000)", f"r{run}")
        await live._run
    back = await card_socket(api, token, f"session={session_id}&after=1")
    lost = await back.receive()
    assert lost["type"] == "outputs_lost" and lost["lost"] > 0 and "no longer kept" in lost["message"], lost
    replayed = [await back.receive() for _ in range(live.seq - lost["resumes_at"] + 1)]
    assert replayed[0]["seq"] == lost["resumes_at"] and replayed[-1]["type"] == "done"
    assert sum(len(m["output"]["text"]) for m in replayed if m["type"] == "output") <= 2 * MB


async def test_a_jupyter_socket_that_stops_reading_is_closed_and_told_what_it_lost(start_cards, monkeypatch):
    monkeypatch.setattr(limits, "SOCKET_PENDING_BYTES", MB, raising=False)
    api = await start_cards(JupyterKernels__replay_buffer_bytes=2 * MB)
    token = await api.login()
    kernel = await start_kernel(api, token)
    session_id = uuid.uuid4().hex
    slow = await kernel_socket(api, token, kernel["id"], session_id=session_id)
    await slow.execute("1")
    relay = api.app.jupyter_kernels._kernels[kernel["id"]]
    handler = next(iter(relay.sockets))
    await send_runs(slow, relay, BIG_PRINT, RUNS)  # and it reads none of the answers
    await quiet(relay)
    assert queued_bytes(handler) <= limits.SOCKET_PENDING_BYTES + limits.OUTPUT_BYTES
    assert await read_until_closed(slow.connection) == 4008

    back = await kernel_socket(api, token, kernel["id"], session_id=session_id)
    notice = await back.receive()
    assert notice["msg_type"] == "stream" and notice["content"]["name"] == "stderr", notice
    assert "were dropped" in notice["content"]["text"]


async def test_a_jupyter_kernel_keeps_only_its_newest_bytes_for_a_client_that_left(start_cards):
    api = await start_cards(JupyterKernels__replay_buffer_bytes=MB)
    token = await api.login()
    kernel = await start_kernel(api, token)
    session_id = uuid.uuid4().hex
    socket = await kernel_socket(api, token, kernel["id"], session_id=session_id)
    await socket.execute("1")
    relay = api.app.jupyter_kernels._kernels[kernel["id"]]
    last = await send_runs(socket, relay, "print('x' * 1_000_000)", 4)
    socket.close()
    await quiet(relay)
    back = await kernel_socket(api, token, kernel["id"], session_id=session_id)
    notice = await back.receive()
    assert notice["msg_type"] == "stream" and "were dropped" in notice["content"].get("text", ""), notice
    replayed = await back.answers(last)
    assert sum(len(m["content"].get("text", "")) for m in replayed) <= MB


def test_a_jupyter_kernel_keeps_a_bounded_input_history():
    history = InputHistory()
    for line in range(1, 60):
        history.add(line, f"# {line}\n#" + "x" * 1_000_000)  # a cell within one frame (JUPYTER_FRAME_BYTES)
    history.add(60, "x" * (limits.JUPYTER_HISTORY_CHARS + 1))  # longer than the bound alone: not kept
    history.add(61, "print(1)")
    kept = history.reply({"hist_access_type": "tail", "n": 1000})["history"]
    assert sum(len(code) for _, _, code in kept) <= limits.JUPYTER_HISTORY_CHARS
    assert [line for _, line, _ in kept][-2:] == [59, 61], "the newest inputs are kept"
    assert history.reply({"hist_access_type": "search", "pattern": "print*"})["history"] == [[1, 61, "print(1)"]]
