"""Known hostile JSON against the real server: huge numbers, deep nesting, lone surrogates, NaN.

Each once got a 500, or was stored and then broke every response that carried it. Every one must
be a 400 ``invalid_json`` naming where the problem is, on HTTP routes and websockets alike, and a
socket that got a bad frame answers it and stays open.

Red team 5: schema patterns were read with Python's ``re``, where ``$`` also matches before a final newline
and ``\d`` any Unicode digit (ECMA-262, which JSON Schema names, allows neither): a dashboard uid ``"x\n"``
was stored, and exporting that dashboard was a 500 for everyone it was shared with (a newline in
``Content-Disposition``); keys and parameter names ending in a newline, and dates in Arabic-Indic digits,
were stored too.
"""

from __future__ import annotations

import json

import pytest

from dashboards_spec.bounded import Validator
from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

from ..server.conftest import ADMIN_EMAIL
from ..server.test_card_socket import connect
from ..server.test_jupyter_api import KernelSocket, start_kernel
from ..server.test_jupyter_api import connect as connect_kernel

DEEP = b"[" * 100_000 + b"]" * 100_000
SHALLOWER = b"[" * 5_000 + b"]" * 5_000  # past Python's recursion limit, within the 16 KB an anonymous body may have
HUGE_INT = b"9" * 5000
JSON = {"Content-Type": "application/json"}
HOSTILE_VALUES = {
    "huge_int": HUGE_INT,
    "long_fraction": b"0." + b"1" * 5000,
    "out_of_range_float": b"1e400",
    "nan": b"NaN",
    "infinity": b"Infinity",
    "minus_infinity": b"-Infinity",
    "lone_surrogate": b'"\\ud800x"',
    "lone_low_surrogate": b'"x\\udc00"',
    "deep": DEEP,
}


def strict(body: bytes) -> object:
    """``body`` as JSON, refusing NaN and Infinity as browsers do."""
    def refuse(name: str) -> None:
        raise AssertionError(f"the response carries {name}")
    return json.loads(body, parse_constant=refuse)


def assert_invalid_json(response, pointer: str | None = None) -> None:
    assert response.code == 400, response.body[:300]
    error = strict(response.body)["error"]
    assert error["code"] == "invalid_json" and error["message"]
    if pointer is not None:
        assert error["details"]["pointer"] == pointer, error


@pytest.mark.parametrize("name", HOSTILE_VALUES)
async def test_login_refuses_hostile_values(api, name):
    """The anonymous sign-in route: each hostile value as the password is a 400 naming /password."""
    value = SHALLOWER if name == "deep" else HOSTILE_VALUES[name]
    body = b'{"email": "%s", "password": %s}' % (ADMIN_EMAIL.encode(), value)
    response = await api.fetch("POST", "/api/auth/login", body=body, headers=JSON)
    assert_invalid_json(response, None if name == "deep" else "/password")


@pytest.mark.parametrize("raw", [SHALLOWER, b'{"a":' * 2_000 + b"1" + b"}" * 2_000, HUGE_INT, b"NaN",
                                 b'"\\udfff"', b"\xff\xfe{}", b'{"email": "a\xed\xa0\x80"}'])
async def test_login_refuses_hostile_documents(api, raw):
    """Whole bodies that are hostile JSON, or not UTF-8, are 400s too."""
    response = await api.fetch("POST", "/api/auth/login", body=raw, headers=JSON)
    assert_invalid_json(response)


async def test_login_refuses_a_deep_body_past_its_size_unread(api):
    """A 200 KB nest is past what an anonymous body may have: 413 before any of it is parsed."""
    response = await api.fetch("POST", "/api/auth/login", body=DEEP, headers=JSON)
    assert response.code == 413 and strict(response.body)["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("default, pointer", [
    (b"NaN", "/parameters/0/default"),
    (b"-Infinity", "/parameters/0/default"),
    (b"1e999", "/parameters/0/default"),
    (b"1" * 400, "/parameters/0/default"),
])
async def test_card_parameter_defaults_are_finite(api, default, pointer):
    """A number parameter's default is a finite number of sensible size, or the card is refused."""
    token = await api.login()
    body = (b'{"title": "t", "code": "", "parameters": [{"name": "x", "type": "number", "default": %s}]}'
            % default)
    response = await api.fetch("POST", "/api/cards", token=token, body=body, headers=JSON)
    assert_invalid_json(response, pointer)
    assert strict((await api.fetch("GET", "/api/cards", token=token)).body)["cards"] == []


async def test_nan_in_a_dashboard_never_reaches_a_viewer(api):
    """A NaN default is refused; one already stored (written before this check) goes out as null."""
    token = await api.login()
    body = (b'{"schemaVersion": 1, "title": "d", "cards": [], "layout": [],'
            b' "parameters": [{"name": "x", "type": "number", "default": NaN}]}')
    assert_invalid_json(await api.fetch("POST", "/api/dashboards", token=token, body=body, headers=JSON),
                        "/parameters/0/default")
    user = await api.app.store_instance.get_user_by_email(ADMIN_EMAIL)
    document = {"schemaVersion": 1, "title": "old", "cards": [], "layout": [],
                "parameters": [{"name": "x", "type": "number", "default": float("nan")}]}
    await api.app.dashboard_hub.dashboards.create(user, document)
    listed = strict((await api.fetch("GET", "/api/dashboards", token=token)).body)
    dashboard_id = listed["dashboards"][0]["id"]
    whole = strict((await api.fetch("GET", f"/api/dashboards/{dashboard_id}", token=token)).body)
    assert whole["document"]["parameters"][0]["default"] is None


async def test_dashboard_socket_answers_bad_frames_and_stays_open(api):
    """Each hostile frame gets a bad_message error; the socket then still answers a resync."""
    token = await api.login()
    created = await api.fetch("POST", "/api/dashboards", token=token,
                              json_body={"schemaVersion": 1, "title": "d", "cards": [], "layout": []})
    assert created.code == 201, created.body
    socket = await connect(api, token, path=f"/api/dashboards/{created.json()['id']}/ws")
    assert (await socket.receive())["type"] == "snapshot"
    for frame in [b"{not json", DEEP, b'{"type": "parameters", "values": {"x": NaN}}',
                  b'{"type": "parameters", "values": {"x": %s}}' % HUGE_INT,
                  b'{"type": "parameters", "values": {"x": "\\ud800"}}', b'{"type": "unknown"}', b"[]", b"null"]:
        socket.connection.write_message(frame.decode())
        answer = await next_not_presence(socket)
        assert answer["type"] == "error" and answer["code"] == "bad_message", (frame[:40], answer)
    socket.send(type="resync")
    assert (await next_not_presence(socket))["type"] == "snapshot"
    socket.close()


async def test_frames_past_the_hard_cap_close_the_socket(api):
    """A frame larger than ``limits.SOCKET_FRAME_BYTES`` is not read whole (Tornado's default is
    10 MiB per frame, per socket): the server closes the socket with 1009 (message too big)."""
    from server import limits

    token = await api.login()
    created = await api.fetch("POST", "/api/dashboards", token=token,
                              json_body={"schemaVersion": 1, "title": "d", "cards": [], "layout": []})
    socket = await connect(api, token, path=f"/api/dashboards/{created.json()['id']}/ws")
    assert (await socket.receive())["type"] == "snapshot"
    socket.connection.write_message("x" * (limits.SOCKET_FRAME_BYTES + 1))
    while (await socket.connection.read_message()) is not None:
        pass
    assert socket.connection.close_code == 1009


async def next_not_presence(socket) -> dict:
    while True:
        message = await socket.receive(timeout=10)
        if message["type"] != "presence":
            return message


async def test_card_socket_answers_bad_frames_and_stays_open(start_cards):
    """The card editor's socket: bad frames get bad_message, and the next run still works."""
    api = await start_cards()
    socket = await connect(api, await api.login())
    assert (await socket.receive())["type"] == "session"
    for frame in [DEEP, b'{"type": "execute", "code": "1", "run_id": NaN}',
                  b'{"type": "execute", "code": "\\udc00"}', b'{"type": "execute", "code": %s}' % HUGE_INT]:
        socket.connection.write_message(frame.decode())
        answer = await socket.receive(timeout=10)
        assert answer["type"] == "error" and answer["code"] == "bad_message", (frame[:40], answer)
    socket.send(type="execute", run_id="after", code="21 * 2")
    outputs = [m["output"] for m in await socket.until("done") if m["type"] == "output"]
    assert outputs[0]["data"]["text/plain"] == "42"
    socket.close()


HOSTILE_KERNEL_MESSAGES = [  # (header, content) as raw JSON
    (b'{"msg_type": "kernel_info_request", "msg_id": NaN}', b"{}"),
    (b'{"msg_type": "kernel_info_request", "msg_id": "\\ud800"}', b"{}"),
    (b'{"msg_type": "kernel_info_request", "msg_id": "a"}', b'{"x":' * 1000 + b"1" + b"}" * 1000),
    (b'{"msg_type": "kernel_info_request", "msg_id": "b"}', b'{"x": %s}' % HUGE_INT),
]


def kernel_frame(header: bytes, content: bytes, v1: bool, channel: str = "shell") -> bytes | str:
    if v1:
        return serialize_msg_to_ws_v1([header, b"{}", b"{}", content], channel)
    return (b'{"channel": "%s", "header": %s, "parent_header": {}, "metadata": {}, "content": %s}'
            % (channel.encode(), header, content)).decode()


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
async def test_jupyter_socket_answers_bad_frames_and_stays_open(start_cards, v1):
    """A Jupyter client's unusable frame gets an error message back; the kernel still answers."""
    api = await start_cards()
    token = await api.login()
    kernel = await start_kernel(api, token)
    socket: KernelSocket = await connect_kernel(api, token, kernel["id"], v1=v1)
    frames = [kernel_frame(header, content, v1) for header, content in HOSTILE_KERNEL_MESSAGES]
    frames += [kernel_frame(b'{"msg_type": "kernel_info_request", "msg_id": "c"}', b"{}", v1, channel="iopub"),
               DEEP if v1 else DEEP.decode(), b"\x00" * 7 + b"\x09garbage"]
    for frame in frames:
        socket.connection.write_message(frame, binary=isinstance(frame, bytes))
        answer = await socket.receive(timeout=10)
        assert answer["msg_type"] == "error" and answer["content"]["ename"] == "BadMessage", answer
    msg_id = socket.send("kernel_info_request", {})
    replies = await socket.answers(msg_id)
    assert any(m["msg_type"] == "kernel_info_reply" for m in replies)
    socket.close()


def test_counting_a_part_costs_a_slice_not_a_copy_per_string():
    """The depth check split out every string of a part first: a 4 MB Bokeh item of 60,000 models cost
    91 MB and 10 MB of short strings 450 MB before parsing began. Counted slice by slice, either costs
    the arrays of one slice; a part of too many values is refused unparsed."""
    import tracemalloc

    from server.execution.links import unpack_part
    from server.limits import KERNEL_JSON_VALUES

    strings = b"[" + b'"a",' * 2_500_000 + b'"a"]'
    spacers = b"[" + b'{"type":"object","name":"Spacer","id":"p1","attributes":{}},' * 60_000 + b"{}]"
    for part in (strings, spacers):
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=f"more than {KERNEL_JSON_VALUES:,} values"):
                unpack_part(part)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 * 1024 * 1024, f"counting {len(part) >> 20} MB cost {peak >> 20} MB"


def test_jupyter_message_parts_of_too_many_values_are_bad_frames():
    """The Jupyter relay parses a kernel's status content (and every part, for a legacy client): a part of
    450,000 empty lists (a 30 MB tree) is a bad frame, refused before it is parsed."""
    from server.jupyter.wire import BadFrame, KernelMessage
    from server.limits import KERNEL_JSON_VALUES

    empties = b"[" + b"[]," * 450_000 + b"[]]"
    message = KernelMessage("iopub", [b'{"msg_type": "status"}', b"{}", b"{}", empties])
    with pytest.raises(BadFrame, match=f"more than {KERNEL_JSON_VALUES:,} values"):
        message.content
    assert KernelMessage("iopub", [b"{}", b"{}", b"{}", b'{"execution_state": "idle"}']).content


def test_kernel_message_parts_are_checked_for_depth_before_parsing():
    """A hostile kernel's deeply nested message part is a bad part (dropped like a bad signature),
    never a RecursionError in the reader; ordinary parts, Bokeh-deep ones included, still parse."""
    from jupyter_client.asynchronous import AsyncKernelClient

    from server.execution.links import bound_messages, unpack_part
    from server.limits import KERNEL_JSON_DEPTH

    client = AsyncKernelClient()
    bound_messages(client, 1 << 20)
    with pytest.raises(ValueError, match="nests deeper"):
        client.session.unpack(b"[" * 100_000 + b"]" * 100_000)
    deep_but_fine = b"[" * KERNEL_JSON_DEPTH + b"]" * KERNEL_JSON_DEPTH
    assert unpack_part(deep_but_fine) is not None
    message = client.session.msg("display_data", {"data": {"text/plain": "[[1]]"}})
    parts = client.session.serialize(message)
    assert client.session.deserialize(client.session.feed_identities(parts)[1])["content"] == message["content"]


BASE_DOCUMENT = {"schemaVersion": 1, "title": "patterns", "cards": [], "layout": []}
PAST_PATTERNS = {
    "uid": ({**BASE_DOCUMENT, "uid": "rt5-uid\n"}, "/uid"),
    "card key": ({**BASE_DOCUMENT, "cards": [{"key": "k\n", "title": "t", "code": "1"}],
                  "layout": [{"card": "k\n", "x": 0, "y": 0, "w": 4, "h": 4}]}, "/cards/0"),
    "parameter name": ({**BASE_DOCUMENT, "parameters": [{"name": "d\n", "type": "date", "default": "2024-01-01"}]},
                       "/parameters/0/name"),
    "date in other digits": ({**BASE_DOCUMENT, "parameters": [{"name": "d", "type": "date", "default": "٢٠٢٤-٠١-٠١"}]},
                             "/parameters/0/default"),
}


@pytest.mark.parametrize("field", PAST_PATTERNS)
async def test_schema_patterns_hold_as_json_schema_reads_them(api, field):
    document, pointer = PAST_PATTERNS[field]
    token = await api.login()
    for path in ("/api/dashboards", "/api/dashboards/import"):
        refused = await api.fetch("POST", path, token=token, json_body=document)
        assert (refused.code, refused.error_code) == (422, "unprocessable"), refused.body
        assert refused.json()["error"]["details"]["pointer"] == pointer


@pytest.mark.parametrize(("pattern", "valid", "invalid"), [
    ("^[a-z]+$", ["abc"], ["abc\n", "abc\n\n", "ab\nc"]),
    ("^\\d{2}$", ["12"], ["١٢", "12\n"]),
    ("^\\w+$", ["a_1"], ["é", "a\n"]),
    ("^[$]x$", ["$x"], ["$x\n"]),
    ("^a\\$$", ["a$"], ["a$\n"]),
])
def test_patterns_are_read_as_ecma_262(pattern, valid, invalid):
    validator = Validator({"type": "string", "maxLength": 10, "pattern": pattern})
    assert all(validator.is_valid(text) for text in valid)
    assert not any(validator.is_valid(text) for text in invalid)
