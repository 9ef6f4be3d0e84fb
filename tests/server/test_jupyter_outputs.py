"""Kernels of the Jupyter API publish what Jupyter frontends render (``kernels.notebook_output``); card
sessions on the same pool keep publishing data only."""

from __future__ import annotations

import json

from kernels.wire import DATAFRAME, NOTEBOOK_REQUEST, TABLE_FILE
from server.limits import OUTPUT_BYTES

from .test_card_socket import connect as card_socket
from .test_jupyter_api import connect, start_kernel
from .test_sessions import root, start_cards  # noqa: F401 - fixtures

FRAME = "import pandas as pd\npd.DataFrame({'店舗': ['東京', '大阪'], '売上': [120, 80]})"
BOKEH_LOAD, BOKEH_EXEC = "application/vnd.bokehjs_load.v0+json", "application/vnd.bokehjs_exec.v0+json"


def displays(messages: list[dict]) -> list[dict]:
    return [m["content"]["data"] for m in messages
            if m["msg_type"] in ("display_data", "execute_result", "update_display_data")]


async def test_a_jupyter_kernel_shows_dataframes_and_bokeh_as_jupyter_frontends_render_them(start_cards):
    api = await start_cards()
    token = await api.login()
    socket = await connect(api, token, (await start_kernel(api, token))["id"])
    [table] = displays(await socket.execute(FRAME))
    assert "<table" in table["text/html"] and "東京" in table["text/html"] and "大阪" in table["text/plain"]
    assert DATAFRAME not in table and TABLE_FILE not in table  # no table file left unread in the kernel
    [styled] = displays(await socket.execute("_.style.bar(subset=['売上'])"))
    assert "<style" in styled["text/html"]  # the Styler's own HTML, scoped CSS and all (cards get it inline)

    figure = "from bokeh.plotting import figure, show\np = figure(width=300)\np.line([1, 2, 3], [3, 1, 2])\nshow(p)"
    loader, *document = displays(await socket.execute(figure))
    assert set(loader) >= {BOKEH_LOAD, "application/javascript"}
    script = loader[BOKEH_LOAD]
    assert "Bokeh" in script and "cdn.bokeh.org" not in script  # BokehJS inline: no CDN the browser may not reach
    assert len(json.dumps(loader)) < OUTPUT_BYTES  # the loader fits a cell's output limit
    assert any("text/html" in data for data in document) and any(BOKEH_EXEC in data for data in document)
    again = displays(await socket.execute("show(p)"))
    assert again and not any(BOKEH_LOAD in data for data in again)  # BokehJS is loaded once per kernel
    socket.close()


async def test_card_sessions_on_the_same_pool_keep_publishing_data(start_cards):
    api = await start_cards()
    token = await api.login()
    jupyter = await connect(api, token, (await start_kernel(api, token))["id"])
    await jupyter.execute("1")
    card = await card_socket(api, token)
    assert (await card.receive())["type"] == "session"
    card.send(type="execute", run_id="r1", code=FRAME)
    [result] = [m["output"] for m in await card.until("done") if m["type"] == "output"]
    assert DATAFRAME in result["data"] and "text/html" not in result["data"]
    card.close()
    jupyter.close()


async def test_clients_cannot_send_the_servers_switch(start_cards):
    api = await start_cards()
    token = await api.login()
    socket = await connect(api, token, (await start_kernel(api, token))["id"])
    msg_id = socket.send(NOTEBOOK_REQUEST, {})
    while (reply := await socket.receive())["parent_header"].get("msg_id") != msg_id:
        pass
    assert reply["channel"] == "shell" and reply["content"]["status"] == "error"
    [table] = displays(await socket.execute(FRAME))
    assert "text/html" in table  # the kernel was switched once, by the server; the client's request changed nothing
    socket.close()
