"""Notebook semantics of Jupyter kernels: their own wall clock, a longer idle limit while connected, clear
reasons for a culled kernel, Jupyter Server's error fields, user restarts that are not deaths, and history."""

from __future__ import annotations

import asyncio

import pytest
from tornado import httpclient

from .test_jupyter_api import connect, reply_of, start_kernel, until_state
from .test_sessions import open_session, root, run, start_cards  # noqa: F401 - fixtures

SLEEP = "import time\ntime.sleep(1.5)\n'woke'"


async def history(socket, **request) -> list:
    answer = await socket.answers(socket.send("history_request", {"output": False, "raw": True, **request}))
    reply = reply_of(answer)
    assert reply["status"] == "ok", reply
    return [tuple(entry) for entry in reply["history"]]


async def test_notebooks_get_their_own_wall_clock_history_and_restarts(start_cards):
    """A cell runs past the cards' wall clock (a card's plot is a PNG output); history_request answers with
    this kernel's inputs, by session; a restart its user asks for reports ``starting`` and begins the next
    history session."""
    api = await start_cards(KernelPool__execution_timeout=1.0, KernelPool__jupyter_execution_timeout=30.0)
    token = await api.login()
    card_session = await open_session(api, token)
    assert (await run(api, token, card_session, SLEEP)).code == 408
    plotted = (await run(api, token, card_session, "import pandas as pd\npd.DataFrame({'売上': [3, 1, 2]}).plot()")).json()
    assert [o["output_type"] for o in plotted["outputs"]] == ["execute_result", "display_data"]
    assert plotted["outputs"][1]["data"]["image/png"].startswith("iVBORw0KGgo"), "a PNG, as cards and dashboards show it"
    specs = (await api.fetch("GET", "/api/kernelspecs", token=token)).json()
    assert specs["kernelspecs"]["python3"]["spec"]["metadata"]["bi"]["wall_seconds"] == 30

    kernel = await start_kernel(api, token)
    socket = await connect(api, token, kernel["id"])
    slept = await socket.execute(SLEEP)
    assert reply_of(slept)["status"] == "ok"
    for code in ("a = 1", "b = 2", "a + b"):
        await socket.execute(code)
    first = [(1, 1, SLEEP), (1, 2, "a = 1"), (1, 3, "b = 2"), (1, 4, "a + b")]
    assert await history(socket, hist_access_type="tail", n=2) == first[-2:]
    assert await history(socket, hist_access_type="range", session=0, start=2, stop=4) == first[1:3]
    assert await history(socket, hist_access_type="search", pattern="a*", n=10, unique=True) == \
        [first[1], first[3]]
    with_output = await socket.answers(socket.send("history_request", {"hist_access_type": "tail", "n": 1,
                                                                       "output": True, "raw": True}))
    assert reply_of(with_output)["history"] == [[1, 4, ["a + b", None]]]

    assert (await api.fetch("POST", f"/api/kernels/{kernel['id']}/restart", token=token)).code == 200
    await until_state(socket, "starting")
    await socket.execute("c = 3")
    assert await history(socket, hist_access_type="range", session=0) == [(2, 1, "c = 3")]
    assert await history(socket, hist_access_type="range", session=-1) == first
    socket.close()


async def test_connected_kernels_outlive_the_idle_limit_and_culled_ones_say_why(start_cards):
    """Unconnected, a kernel is culled at the idle limit; with a client connected, at the longer one. Its
    clients read why in the close frame and on stderr, and later in the 404 of the kernel and its
    channels; errors carry Jupyter Server's top-level ``message`` and ``reason``, which jupyter_server
    in gateway mode shows."""
    api = await start_cards(KernelPool__idle_timeout=2.0, KernelPool__jupyter_connected_idle_timeout=7.0,
                            KernelPool__sessions_per_user=2)
    token = await api.login()
    connected, alone = await start_kernel(api, token), await start_kernel(api, token)
    refused = await api.fetch("POST", "/api/kernels", token=token, json_body={})
    assert refused.code == 429
    body = refused.json()
    assert body["message"] == body["error"]["message"] and "2 open sessions" in body["message"]
    assert body["reason"] == "Too Many Requests" and body["error"]["code"] == "session_limit"

    socket = await connect(api, token, connected["id"], v1=False)
    await asyncio.sleep(4.0)
    assert (await api.fetch("GET", f"/api/kernels/{connected['id']}", token=token)).code == 200
    gone = await api.fetch("GET", f"/api/kernels/{alone['id']}", token=token)
    assert gone.code == 404 and gone.json()["reason"] == "Not Found"
    assert gone.json()["message"] == "This kernel was shut down: culled after 2 seconds without activity. " \
                                     "Start a new kernel."

    said = []
    while (message := await asyncio.wait_for(socket.connection.read_message(), 15)) is not None:
        said.append(message)
    why = "The kernel was shut down: culled after 7 seconds without activity (with a client connected)."
    assert socket.connection.close_reason == why
    assert any(why in frame for frame in said if isinstance(frame, str)), "legacy frames are JSON text"
    gone = await api.fetch("GET", f"/api/kernels/{connected['id']}", token=token)
    assert gone.code == 404 and "culled after 7 seconds without activity (with a client connected)" in \
        gone.json()["message"]
    with pytest.raises(httpclient.HTTPClientError) as refused_socket:
        await connect(api, token, connected["id"])
    assert refused_socket.value.code == 404
    assert b"culled after 7 seconds" in refused_socket.value.response.body
