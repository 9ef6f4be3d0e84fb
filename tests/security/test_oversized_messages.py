"""A kernel message larger than any legitimate one is refused by ZeroMQ before the server holds it.

The kernel prints one message just past ``KERNEL_MESSAGE_BYTES`` (the largest output or Arrow table a
run may carry, plus framing). The server never allocates it: the run ends with ``output_too_large``,
the session gets a fresh kernel and keeps working, and the server's memory does not grow by anything
near the message's size. Before the limit, such a print grew the server by several times its size.
"""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from server.limits import KERNEL_MESSAGE_BYTES
from tests.server.test_jupyter_api import connect, start_kernel, text_of
from tests.server.test_sessions import open_session, run

OVERSIZED = KERNEL_MESSAGE_BYTES + 1024 * 1024
PRINT_TOO_MUCH = f"print('x' * {OVERSIZED})"


def rss_bytes() -> int:
    """This process's resident memory (the in-process server's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_an_oversized_print_ends_the_run_and_costs_the_server_nothing(start_cards):
    """The card's run ends with output_too_large; a fresh kernel answers the next run; the server stays small."""
    api = await start_cards()
    token = await api.login()
    session_id = await open_session(api, token)
    assert (await run(api, token, session_id, "kept = 1")).code == 200
    before = rss_bytes()
    with capture_logs() as logs:
        refused = await run(api, token, session_id, PRINT_TOO_MUCH)
    grown = rss_bytes() - before
    assert refused.code == 422, refused.body[:300]
    error = refused.json()["error"]
    assert error["code"] == "output_too_large" and error["details"]["kernel_restarted"] is True
    assert "MB" in error["message"] and "variables are lost" in error["message"]
    assert grown < OVERSIZED // 4, f"the server grew by {grown} bytes for a {OVERSIZED}-byte message"
    assert any(e["event"] == "kernel_message_too_large" for e in logs)
    after = (await run(api, token, session_id, "'kept' in dir()")).json()
    assert after["outputs"][-1]["data"]["text/plain"] == "False", "a fresh kernel"


async def test_an_oversized_message_on_the_jupyter_socket_restarts_the_kernel(start_cards):
    """On the Jupyter websocket the run fails with OutputTooLarge and the kernel restarts; the next run works."""
    api = await start_cards()
    token = await api.login()
    kernel = await start_kernel(api, token)
    socket = await connect(api, token, kernel["id"])
    before = rss_bytes()
    answers = await socket.execute(PRINT_TOO_MUCH)
    grown = rss_bytes() - before
    assert any(m["msg_type"] == "error" and m["content"]["ename"] == "OutputTooLarge" for m in answers), answers
    assert grown < OVERSIZED // 4, f"the server grew by {grown} bytes for a {OVERSIZED}-byte message"
    assert text_of(await socket.execute("6 * 7")) == "42"
    socket.close()
