"""A run ends at its execute_reply or its wall clock; what a kernel does after that is charged to a budget.

A cell can leave work behind (a thread that keeps printing or spinning) or forge the ``idle`` status
that clients take as the end of a run. Output and CPU outside runs are charged to the kernel's
background budget (``KernelPool.background_bytes``, ``background_cpu_seconds``); past it the kernel
is restarted with the event ``kernel_background_limit``, and the session goes on with a fresh one.
"""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from tests.server.test_jupyter_api import connect, reply_of, start_kernel, text_of
from tests.server.test_sessions import REAL_OS, open_session, run

THREAD = REAL_OS + "threading = os.sys.modules['threading']\n"
PRINTER = THREAD + ("def printer():\n    while True:\n        print('x' * 1000)\n"
                    "threading.Thread(target=printer, daemon=True).start()\n")
SPINNER = THREAD + ("def spinner():\n    while True:\n        pass\n"
                    "threading.Thread(target=spinner, daemon=True).start()\n")
FORGED_IDLE = ("kernel = get_ipython().kernel\n"
               "kernel.session.send(kernel.iopub_socket, 'status', {'execution_state': 'idle'},\n"
               "                    parent=kernel.get_parent())\n"
               "while True:\n    pass\n")
LIMITS = {"KernelPool__background_bytes": 200_000, "KernelPool__background_cpu_seconds": 1.0,
          "KernelPool__background_poll_seconds": 0.25, "KernelPool__execution_timeout": 2.0, "KernelPool__jupyter_execution_timeout": 2.0,
          "KernelPool__interrupt_grace": 1.0}


async def restarted_for_background(api, token: str, session_id: str, code: str) -> None:
    """Run ``code``, which returns at once, and wait for its kernel's restart past the background budget."""
    session = api.app.kernel_pool.sessions[session_id]
    events: list[dict] = []
    session.listeners.add(events.append)
    before = session.kernel.kernel_id
    with capture_logs() as logs:
        assert (await run(api, token, session_id, code)).code == 200
        for _ in range(100):
            if session.kernel.kernel_id != before:
                break
            await asyncio.sleep(0.1)
    assert session.kernel.kernel_id != before, "the kernel was not restarted"
    assert any(e["event"] == "kernel_background_limit" and e["kernel_id"] == before for e in logs), logs
    assert events and events[0]["event"] == "kernel_restarted" and "background" in events[0]["reason"]
    assert (await run(api, token, session_id, "1 + 1")).json()["outputs"][-1]["data"]["text/plain"] == "2"


async def test_a_thread_that_keeps_printing_restarts_the_kernel(start_cards):
    api = await start_cards(**LIMITS)
    token = await api.login()
    await restarted_for_background(api, token, await open_session(api, token), PRINTER)


async def test_a_thread_that_spins_the_cpu_restarts_the_kernel(start_cards):
    api = await start_cards(**LIMITS)
    token = await api.login()
    await restarted_for_background(api, token, await open_session(api, token), SPINNER)


async def test_a_forged_idle_does_not_end_the_run(start_cards):
    """The run still ends at the wall clock (interrupted, so the kernel and its variables stay)."""
    api = await start_cards(**LIMITS)
    token = await api.login()
    session_id = await open_session(api, token)
    await run(api, token, session_id, "kept = 42")
    forged = await run(api, token, session_id, FORGED_IDLE)
    assert forged.code == 408 and forged.error_code == "timeout", forged.body[:300]
    assert (await run(api, token, session_id, "kept")).json()["outputs"][-1]["data"]["text/plain"] == "42"


async def test_a_forged_idle_does_not_end_a_jupyter_run(start_cards):
    """On the Jupyter websocket too, the run lasts until its reply: the wall clock still stops it."""
    api = await start_cards(**LIMITS)
    token = await api.login()
    kernel = await start_kernel(api, token)
    socket = await connect(api, token, kernel["id"])
    answers = await asyncio.wait_for(socket.execute(FORGED_IDLE), 15)
    assert reply_of(answers)["status"] == "error"
    assert "2 s limit" in text_of(answers)
    assert text_of(await socket.execute("6 * 7")) == "42"
    socket.close()
