"""A kernel message larger than any legitimate one is refused by ZeroMQ before the server holds it.

The kernel displays one message just past ``KERNEL_MESSAGE_BYTES`` (twice the largest output a run may
carry, plus framing; a long print goes out in several smaller stream messages, tables as files). The server never allocates it: the run ends with ``output_too_large``,
the session gets a fresh kernel and keeps working, and the server's memory does not grow by anything
near the message's size. Before the limit, such a print grew the server by several times its size.
ZeroMQ's ``MAXMSGSIZE`` bounds one part, and ZeroMQ holds every part of a message until its last one
arrives: the agent's relay (``kernels.relay``, on unix sockets for the local agent, on TCP for a remote
one) bounds the whole message, however many parts it has, so a kernel never reaches the server's
sockets but through it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from server.execution.local_agent import PUBLIC_KEY_FILE, LocalAgent
from server.limits import KERNEL_MESSAGE_BYTES
from tests.server.test_jupyter_api import connect, start_kernel, text_of
from tests.server.test_sessions import open_session, run

OVERSIZED = 4 * KERNEL_MESSAGE_BYTES  # allocated, it would cost the server several times this
SEND_TOO_MUCH = f"from IPython.display import display\ndisplay({{'text/plain': 'x' * {OVERSIZED}}}, raw=True)"


def rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident memory (the in-process server's), or its peak since ``reset_peak``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Make ``VmHWM`` this process's resident memory again."""
    Path("/proc/self/clear_refs").write_text("5")


async def test_an_oversized_message_ends_the_run_and_costs_the_server_nothing(start_cards):
    """The card's run ends with output_too_large; a fresh kernel answers the next run; the server stays small."""
    api = await start_cards()
    token = await api.login()
    session_id = await open_session(api, token)
    assert (await run(api, token, session_id, "kept = 1")).code == 200
    before = rss_bytes()
    with capture_logs() as logs:
        refused = await run(api, token, session_id, SEND_TOO_MUCH)
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
    answers = await socket.execute(SEND_TOO_MUCH)
    grown = rss_bytes() - before
    assert any(m["msg_type"] == "error" and m["content"]["ename"] == "OutputTooLarge" for m in answers), answers
    assert grown < OVERSIZED // 4, f"the server grew by {grown} bytes for a {OVERSIZED}-byte message"
    assert text_of(await socket.execute("6 * 7")) == "42"
    socket.close()


MANY_PARTS = (f"kernel = get_ipython().kernel\npart = b'x' * {KERNEL_MESSAGE_BYTES // 2}\n"
              "kernel.session.send(kernel.iopub_socket, 'display_data', {'data': {}, 'metadata': {}},\n"
              "                    parent=kernel.get_parent(), buffers=[part] * 3)\n")


MIB = 1024 * 1024
PART, PARTS = 16 * MIB, 25


def one_message_of_many_parts(part: int, parts: int) -> str:
    """Card code that sends, straight on its iopub socket, one message of ``parts`` parts of ``part`` bytes."""
    return ("kernel = get_ipython().kernel\n"
            f"kernel.iopub_socket.send_multipart([b'x' * {part}] * {parts})\n")


async def test_one_message_of_many_parts_each_under_the_bound_is_refused_whole(start_cards):
    """On the embedded default (bi serve and its local agent), a message whose parts each pass the bound
    but whose whole does not ends the run with output_too_large and a fresh kernel; the server never
    holds more than the bound of it."""
    bound = 20 * MIB
    api = await start_cards(KernelPool__kernel_message_bytes=bound)
    token = await api.login()
    session_id = await open_session(api, token)
    assert (await run(api, token, session_id, "kept = 1")).code == 200
    reset_peak()
    before = rss_bytes()
    refused = await run(api, token, session_id, one_message_of_many_parts(PART, PARTS))
    grown = rss_bytes("VmHWM") - before
    outcome = f"{refused.code} {refused.body[:200]!r}, the server's peak grew by {grown / MIB:.0f} MB"
    assert refused.code == 422 and refused.error_code == "output_too_large", outcome
    assert refused.json()["error"]["details"]["kernel_restarted"] is True
    assert grown < PART * PARTS // 4, outcome
    after = (await run(api, token, session_id, "'kept' in dir()")).json()
    assert after["outputs"][-1]["data"]["text/plain"] == "False", "a fresh kernel"


async def test_through_the_relay_a_message_over_the_bound_in_all_its_parts_is_refused(start_server, root, tmp_path):
    """From a remote agent's relay, one message over the bound, in one part or in several parts each under it,
    ends the run with output_too_large and costs the server nothing."""
    key = Ed25519PrivateKey.generate()
    agent = LocalAgent(tmp_path / "agent", pool_size=1, allow_weaker_sandbox=False, advertise_host="127.0.0.1")
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / PUBLIC_KEY_FILE).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    client = await agent.start(key)
    try:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        api = await start_server(ServeApp__executor_urls=[client.base_url], ServeApp__executor_private_key=pem)
        token = await api.login()
        session_id = await open_session(api, token)
        for code in (SEND_TOO_MUCH, MANY_PARTS):
            before = rss_bytes()
            refused = await run(api, token, session_id, code)
            grown = rss_bytes() - before
            assert refused.code == 422 and refused.error_code == "output_too_large", refused.body[:300]
            assert grown < OVERSIZED // 4, f"the server grew by {grown} bytes"
            assert (await run(api, token, session_id, "6 * 7")).json()["outputs"][-1]["data"]["text/plain"] == "42"
    finally:
        client.close()
        await agent.stop()
