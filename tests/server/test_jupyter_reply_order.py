"""A kernel's shell reply and its iopub messages come on two ZeroMQ sockets, read by two tasks of the
relay (``server/jupyter/kernel.py``): on a loaded machine the reply can be relayed before its request's
``busy`` status and before its last outputs. Both tests hold the iopub reader back to make that order
certain, with a real kernel, agent and websocket."""

from __future__ import annotations

import asyncio
import contextlib

from .test_jupyter_api import connect, reply_of, start_kernel, text_of
from .test_sessions import root, start_cards  # noqa: F401 - fixtures

IOPUB = 3  # the relay's reader of the kernel's iopub channel (``KERNEL_CHANNELS`` order)


@contextlib.asynccontextmanager
async def iopub_held(relay):
    """Stop reading the kernel's iopub channel (its messages queue in ZeroMQ), then read on."""
    reader = relay._readers[IOPUB]
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    try:
        yield
    finally:
        relay._readers[IOPUB] = asyncio.create_task(relay._read(relay._kernel, "iopub"))


async def test_a_reply_relayed_before_its_busy_status_still_ends_its_run(start_cards):
    api = await start_cards()
    token = await api.login()
    kernel = await start_kernel(api, token)
    socket = await connect(api, token, kernel["id"])
    await socket.execute("1")
    relay = api.app.jupyter_kernels._kernels[kernel["id"]]
    async with iopub_held(relay):
        msg_id = socket.send("execute_request", {"code": "x = 41"})
        while (reply := await socket.receive())["channel"] != "shell":
            pass
        assert reply["parent_header"]["msg_id"] == msg_id
    await socket.answers(msg_id, reply=False)  # its busy, input and idle, now relayed
    for _ in range(100):
        if relay._run is None:
            break
        await asyncio.sleep(0.05)
    assert relay._run is None, "the run whose reply came first never ended"
    assert text_of(await socket.execute("x + 1")) == "42"


async def test_a_client_that_left_gets_the_reply_however_much_output_came_after_it(start_cards):
    api = await start_cards(JupyterKernels__replay_buffer_bytes=20_000)
    token = await api.login()
    kernel = await start_kernel(api, token)
    socket = await connect(api, token, kernel["id"], session_id="tab-1")
    await socket.execute("1")
    relay = api.app.jupyter_kernels._kernels[kernel["id"]]
    async with iopub_held(relay):
        msg_id = socket.send("execute_request", {"code": "import time\ntime.sleep(2)\nfor i in range(100):\n"
                                                          "    print(f'{i:03d}' + 'x' * 500, flush=True)"})
        socket.close()
        for _ in range(200):  # until the server has seen it go (a reply sent before that is lost on the way)
            if not relay.sockets:
                break
            await asyncio.sleep(0.01)
        assert not relay.sockets and relay._awaiting is not None, "the reply came before the client had left"
        for _ in range(200):  # then until it has relayed the reply, kept for the client's return
            if relay._awaiting is None:
                break
            await asyncio.sleep(0.05)
        assert relay._awaiting is None
    for _ in range(200):
        if relay._state == "idle" and relay._run is None:
            break
        await asyncio.sleep(0.05)
    back = await connect(api, token, kernel["id"], session_id="tab-1")
    answered = await back.answers(msg_id)
    assert reply_of(answered)["status"] == "ok"
    assert text_of(answered).endswith("099" + "x" * 500 + "\n")
