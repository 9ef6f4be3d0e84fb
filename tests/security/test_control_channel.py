"""The control channel serves interrupts, shutdowns and kernel_info only; no shell message escapes its run's limits.

Control requests are answered even while the shell runs code, so ipykernel accepts every shell
message there too: an ``execute_request`` on control ran outside the wall clock and the output cap
(30 s and 30 MB in one attack). The server refuses such messages with an error reply, and so does
the kernel itself, for clients that reach its sockets another way (the agent's relay). On the shell
channel, every message the kernel handles (comm messages and inspection included, which run card
code) is held to the same wall clock and output cap as an execute_request.
"""

from __future__ import annotations

import asyncio
import uuid

from jupyter_client.session import Session

from server.execution.session import message_for
from tests.server.test_jupyter_api import connect, reply_of, start_kernel, text_of
from tests.server.test_sessions import open_session, run

REFUSED = ["execute_request", "debug_request", "create_subshell_request", "complete_request",
           "inspect_request", "usage_request", "comm_info_request", "made_up_request"]
SPIN = "while True: print('x' * 1000)"


async def control_answer(socket, msg_type: str, content: dict) -> dict:
    """The control reply to ``msg_type`` sent on the control channel."""
    msg_id = socket.send(msg_type, content, channel="control")
    while True:
        message = await socket.receive(timeout=10)
        if message["channel"] == "control" and message["parent_header"].get("msg_id") == msg_id:
            return message


async def test_control_refuses_everything_but_interrupt_shutdown_and_kernel_info(start_cards):
    """Through the Jupyter websocket: refused types get an error reply and run nothing; kernel_info works."""
    api = await start_cards(KernelPool__jupyter_execution_timeout=2.0)
    token = await api.login()
    kernel = await start_kernel(api, token)
    socket = await connect(api, token, kernel["id"])
    for msg_type in REFUSED:
        reply = await control_answer(socket, msg_type, {"code": "ran_on_control = 1", "cursor_pos": 0})
        assert reply["msg_type"] == msg_type.replace("_request", "_reply")
        assert reply["content"]["status"] == "error", (msg_type, reply["content"])
        assert "control channel" in reply["content"]["evalue"]
    info = await control_answer(socket, "kernel_info_request", {})
    assert info["content"]["status"] == "ok" and info["content"]["implementation"] == "bi-cards"
    assert reply_of(await socket.execute("ran_on_control"))["ename"] == "NameError"
    socket.close()


async def test_the_kernel_itself_refuses_code_on_control(start_cards):
    """A client that reaches the kernel's control socket directly (as through the relay) is refused too."""
    api = await start_cards()
    token = await api.login()
    session_id = await open_session(api, token)
    client = api.app.kernel_pool.sessions[session_id].kernel.client
    session = Session(key=client.session.key, signature_scheme=client.session.signature_scheme)
    for msg_type in ("execute_request", "debug_request", "create_subshell_request"):
        message = session.msg(msg_type, {"code": "ran_on_control = 1", "silent": False})
        client.control_channel.send(message)
        reply = await message_for(client.get_control_msg, message["header"]["msg_id"], 10)
        assert reply is not None, f"no reply to {msg_type}"
        assert reply["content"]["status"] == "error" and "control channel" in reply["content"]["evalue"]
    assert (await run(api, token, session_id, "'ran_on_control' in dir()")).json()["outputs"][-1]["data"][
        "text/plain"] == "False"


async def test_comm_messages_and_inspection_are_held_to_the_run_limits(start_cards):
    """A comm handler or an inspected attribute that loops is stopped at the wall clock, its output capped."""
    api = await start_cards(KernelPool__jupyter_execution_timeout=1.5, KernelPool__interrupt_grace=1.0,
                            KernelPool__output_limit_bytes=50_000)
    token = await api.login()
    kernel = await start_kernel(api, token)
    socket = await connect(api, token, kernel["id"])
    setup = ("def spin(*args):\n    " + SPIN + "\n"
             "get_ipython().kernel.comm_manager.register_target('spin', lambda comm, msg: comm.on_msg(spin))\n"
             "class Trap:\n    def __getattr__(self, name):\n        " + SPIN + "\n"
             "trap = Trap()\n")
    assert reply_of(await socket.execute(setup))["status"] == "ok"
    comm_id = uuid.uuid4().hex
    await socket.answers(socket.send("comm_open", {"comm_id": comm_id, "target_name": "spin", "data": {}}),
                         reply=False)
    for msg_type, content in [("comm_msg", {"comm_id": comm_id, "data": {}}),
                              ("inspect_request", {"code": "trap.bait", "cursor_pos": 9, "detail_level": 1})]:
        msg_id = socket.send(msg_type, content)
        answers = await asyncio.wait_for(socket.answers(msg_id, reply=msg_type.endswith("_request")), 15)
        printed = text_of(answers)
        assert "output truncated" in printed or "limit" in printed, (msg_type, printed[-300:])
        assert len(printed) < 80_000, f"{msg_type}: {len(printed)} bytes of output past a 50,000-byte cap"
    assert text_of(await socket.execute("6 * 7")) == "42"
    socket.close()
