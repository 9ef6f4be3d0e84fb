"""No shell request blocks a kernel's shell queue: each one is answered, if not by the kernel then by the server.

The server sends a kernel its shell requests one at a time, each once the one before is answered
(``server/jupyter/kernel.py``). A request the kernel drops without a word held every later one
forever: the JSON fuzz found ``"version": 1.0e-99999`` in a header (ipykernel's adapter splits the
version string and drops the message; the next ``kernel_info_request`` waited for ever). The class:
headers ipykernel cannot read (a version or date it cannot parse, a ``msg_id`` that is not a
string), contents it cannot use (a missing ``code``), a message it has seen before (ipykernel drops a
repeated signature), a kernel that dies or is replaced while a request waits, and requests code in
the kernel makes it drop. Each gets an error reply, and the next request its own answer.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from server.limits import JUPYTER_HELD_BYTES
from tests.server.test_jupyter_api import KernelSocket, connect, reply_of, start_kernel, text_of

ANSWER_SECONDS = 1.0  # JupyterKernels.answer_seconds in these tests
WEDGED_AFTER = 8.0  # seconds without the sentinel's reply that count as a blocked queue


def request(msg_type: str, content: dict[str, Any], channel: str = "shell", **header: Any) -> dict[str, Any]:
    fields = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": "queue", "username": "queue",
              "date": "2026-01-01T00:00:00Z", "version": "5.3", **header}
    return {"channel": channel, "header": fields, "parent_header": {}, "metadata": {}, "content": content}


FOUND_BY_FUZZ = json.dumps(request("kernel_info_request", {}, version="V")).replace('"V"', "1.0e-99999")
UNANSWERABLE: dict[str, str | dict[str, Any]] = {
    "version_number": FOUND_BY_FUZZ,
    "version_not_a_version": request("kernel_info_request", {}, version="x"),
    "date_out_of_range": request("kernel_info_request", {}, date="2026-13-45T99:00:00Z"),
    "parent_date_out_of_range": {**request("kernel_info_request", {}), "parent_header": {"date": "2026-02-30T00:00:00Z"}},
    "msg_id_number": request("kernel_info_request", {}, msg_id=7),
    "msg_id_null": request("kernel_info_request", {}, msg_id=None),
    "msg_id_empty": request("kernel_info_request", {}, msg_id=""),
    "complete_without_code": request("complete_request", {}),
    "complete_code_number": request("complete_request", {"code": 5, "cursor_pos": 1}),
    "inspect_without_code": request("inspect_request", {}),
    "is_complete_code_number": request("is_complete_request", {"code": 5}),
    "history_without_fields": request("history_request", {}),
    "execute_without_code": request("execute_request", {}),
    "execute_expressions_not_object": request("execute_request", {"code": "1", "user_expressions": 5}),
    "shutdown_without_restart": request("shutdown_request", {}),
    "interrupt_on_shell": request("interrupt_request", {}),
}


async def frames_until(socket: KernelSocket, done: Any, timeout: float) -> list[dict[str, Any]]:
    """Messages up to the first for which ``done`` holds; a TimeoutError after ``timeout`` seconds."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not got or not done(got[-1]):
        got.append(await socket.receive(timeout=max(0.01, deadline - time.monotonic())))
    return got


def is_reply_to(msg_id: str) -> Any:
    return lambda message: message["channel"] == "shell" and message["parent_header"].get("msg_id") == msg_id


async def sentinel_answered(socket: KernelSocket, first: str | dict[str, Any], repeat: int = 1) -> list[dict[str, Any]]:
    """Send ``first`` (``repeat`` times), then a kernel_info_request; every message up to the latter's reply."""
    for _ in range(repeat):
        socket.connection.write_message(first if isinstance(first, str) else json.dumps(first))
    sentinel = socket.send("kernel_info_request", {})
    return await frames_until(socket, is_reply_to(sentinel), WEDGED_AFTER)


def replies_to(got: list[dict[str, Any]], msg_id: Any, channel: str = "shell") -> list[dict[str, Any]]:
    return [m["content"] for m in got if m["channel"] == channel and m["parent_header"].get("msg_id") == msg_id]


async def test_requests_the_kernel_cannot_answer_are_refused_and_the_next_is_answered(start_cards):
    """Each unanswerable request gets an error reply, and the kernel_info_request after it its own reply."""
    api = await start_cards(JupyterKernels__answer_seconds=ANSWER_SECONDS)
    token = await api.login()
    wedged, unanswered = [], []
    for name, frame in UNANSWERABLE.items():
        kernel = await start_kernel(api, token)
        socket = await connect(api, token, kernel["id"], v1=False)
        try:
            got = await sentinel_answered(socket, frame)
        except TimeoutError:
            wedged.append(name)
        else:
            replies = replies_to(got, (json.loads(frame) if isinstance(frame, str) else frame)["header"]["msg_id"])
            if not replies or replies[0]["status"] != "error":
                unanswered.append((name, replies))
        socket.close()
        await api.fetch("DELETE", f"/api/kernels/{kernel['id']}", token=token)
    assert not wedged, f"the next request was never answered after: {wedged}"
    assert not unanswered, f"no error reply to: {unanswered}"


async def test_a_repeated_message_is_refused_not_dropped(start_cards):
    """The same message twice: ipykernel drops the second (its signature repeats); the server refuses it."""
    api = await start_cards(JupyterKernels__answer_seconds=ANSWER_SECONDS)
    token = await api.login()
    socket = await connect(api, token, (await start_kernel(api, token))["id"], v1=False)
    frame = request("kernel_info_request", {})
    got = await sentinel_answered(socket, frame, repeat=2)
    replies = replies_to(got, frame["header"]["msg_id"])  # the refusal may come before the kernel's reply
    assert sorted((reply["status"], reply.get("ename")) for reply in replies) == [
        ("error", "DuplicateMessage"), ("ok", None)], replies
    socket.close()


DROP_IN_KERNEL = """
kernel = get_ipython().kernel
read = kernel.session.deserialize
def deserialize(parts, content=True, copy=True):
    message = read(parts, content=content, copy=copy)
    code = message["content"].get("code") if isinstance(message["content"], dict) else None
    if message["header"]["msg_type"] == "comm_info_request" or code == "'dropped'":
        raise ValueError("dropped on purpose")
    return message
kernel.session.deserialize = deserialize
kernel.shell_handlers["is_complete_request"] = lambda *args: None  # busy and idle, no reply
"""


async def test_a_request_the_kernel_never_answers_ends_at_the_bound(start_cards):
    """Valid requests the kernel drops (no busy, or busy and idle without a reply) end with an error reply
    after ``answer_seconds``; the queue goes on and the kernel keeps its variables."""
    api = await start_cards(JupyterKernels__answer_seconds=ANSWER_SECONDS)
    token = await api.login()
    socket = await connect(api, token, (await start_kernel(api, token))["id"], v1=False)
    assert reply_of(await socket.execute("kept = 42\n" + DROP_IN_KERNEL))["status"] == "ok"
    for msg_type, content in [("comm_info_request", {}), ("execute_request", {"code": "'dropped'"}),
                              ("is_complete_request", {"code": "1"})]:
        frame = request(msg_type, content)
        started = time.monotonic()
        got = await sentinel_answered(socket, frame)
        replies = replies_to(got, frame["header"]["msg_id"])
        assert [reply["status"] for reply in replies] == ["error"], (msg_type, replies)
        assert replies[0]["ename"] == "NoReply" and "did not answer" in replies[0]["evalue"], replies
        assert time.monotonic() - started < ANSWER_SECONDS + 4, msg_type
    assert text_of(await socket.execute("kept")) == "42"
    socket.close()


async def test_requests_held_while_the_kernel_goes_away_are_answered(start_cards):
    """A shutdown_request on shell ends the kernel; what was held behind it is answered with an error."""
    api = await start_cards(JupyterKernels__answer_seconds=ANSWER_SECONDS)
    token = await api.login()
    socket = await connect(api, token, (await start_kernel(api, token))["id"], v1=False)
    socket.send("shutdown_request", {"restart": False})
    held = [socket.send("kernel_info_request", {}), socket.send("execute_request", {"code": "1", "silent": False})]
    got = await frames_until(socket, is_reply_to(held[-1]), WEDGED_AFTER)
    assert [len(replies_to(got, msg_id)) for msg_id in held] == [1, 1], got
    assert text_of(await socket.execute("6 * 7")) == "42"
    socket.close()


async def test_an_interrupt_on_control_lets_held_requests_through(start_cards):
    """interrupt_request on control while a cell runs and requests are held: all are answered at once."""
    api = await start_cards(JupyterKernels__answer_seconds=ANSWER_SECONDS, KernelPool__execution_timeout=30.0)
    token = await api.login()
    socket = await connect(api, token, (await start_kernel(api, token))["id"], v1=False)
    await socket.execute("kept = 42")
    running = socket.send("execute_request", {"code": "import time\nprint('go', flush=True)\ntime.sleep(25)",
                                              "silent": False})
    await frames_until(socket, lambda m: m["msg_type"] == "stream", 10)
    held = [socket.send("kernel_info_request", {}), socket.send("execute_request", {"code": "kept", "silent": False})]
    started = time.monotonic()
    interrupt = socket.send("interrupt_request", {}, channel="control")
    got = await frames_until(socket, is_reply_to(held[-1]), WEDGED_AFTER)
    assert time.monotonic() - started < 5
    assert [r["status"] for r in replies_to(got, interrupt, "control")] == ["ok"]
    assert [r.get("ename") for r in replies_to(got, running)] == ["KeyboardInterrupt"]
    assert [r["status"] for r in replies_to(got, held[0])] == ["ok"]
    assert [r["status"] for r in replies_to(got, held[1])] in (["ok"], ["aborted"])
    assert text_of(await socket.execute("kept")) == "42"
    socket.close()


async def test_a_cell_waiting_for_input_ends_at_the_wall_clock_and_the_queue_goes_on(start_cards):
    """input() with nobody answering on stdin is a run like any other: stopped at the wall clock, and the
    request held behind it answered."""
    api = await start_cards(JupyterKernels__answer_seconds=ANSWER_SECONDS, KernelPool__execution_timeout=1.5,
                            KernelPool__interrupt_grace=1.0)
    token = await api.login()
    socket = await connect(api, token, (await start_kernel(api, token))["id"], v1=False)
    waiting = socket.send("execute_request", {"code": "input('?')", "silent": False, "allow_stdin": True})
    held = socket.send("kernel_info_request", {})
    got = await frames_until(socket, is_reply_to(held), WEDGED_AFTER)
    assert [r["status"] for r in replies_to(got, waiting)] == ["error"], replies_to(got, waiting)
    assert [r["status"] for r in replies_to(got, held)] == ["ok"]
    socket.close()


async def test_requests_waiting_behind_a_busy_kernel_are_bounded_in_bytes(start_cards):
    """A client sends a long cell, then 60 execute_requests of 1.5 MB each: the server holds requests for
    the kernel up to its byte bound and answers the rest at once with an error reply, so it never holds
    90 MB for one socket (the red team's 400 requests of 1.9 MB grew the server by 731 MB)."""
    api = await start_cards(JupyterKernels__answer_seconds=ANSWER_SECONDS)
    token = await api.login()
    kernel = await start_kernel(api, token)
    socket = await connect(api, token, kernel["id"], v1=False)
    busy = request("execute_request", {"code": "import time; time.sleep(3)", "silent": False})
    socket.connection.write_message(json.dumps(busy))
    padding = "#" + "x" * 1_500_000
    sent = [request("execute_request", {"code": f"1\n{padding}", "silent": False}) for _ in range(60)]
    for frame in sent:
        socket.connection.write_message(json.dumps(frame))
    refused: list[str] = []
    deadline = time.monotonic() + 20
    while len(refused) < 60 - JUPYTER_HELD_BYTES // 1_500_000 and time.monotonic() < deadline:
        message = await socket.receive(timeout=max(0.01, deadline - time.monotonic()))
        if message["channel"] == "shell" and message["content"].get("ename") == "TooManyRequests":
            refused.append(message["parent_header"]["msg_id"])
    assert len(refused) >= 60 - JUPYTER_HELD_BYTES // 1_500_000, len(refused)
    assert set(refused) <= {frame["header"]["msg_id"] for frame in sent}
    socket.close()
