"""What the JSON fuzz test and ``bench/fuzz.py`` share: a real server on a loopback port in its own
thread, the routes and websocket message types with their documented shapes, hostile JSON, and the
checks every answer must pass.

Valid cases come from the handlers' JSON Schemas through ``hypothesis-jsonschema``; the large shapes
(cards, dashboard documents) are drawn once into a pool (drawing one takes about 0.1 s), and each
case takes one from it. Hostile cases are valid documents with a hostile literal spliced in (a huge
number, ``NaN``, a lone surrogate escape, deep nesting), JSON of the wrong shape, cut-off JSON and
raw bytes. Kernel-starting bodies are steered to the checks before the kernel start (an unknown
dataset, kernel name or kernel id), so that cases stay fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import http.client
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from tornado import httpclient, httpserver, websocket
from tornado.netutil import bind_sockets
from traitlets.config import Config

import dashboards_spec
from server import json_io
from server.errors import BIError
from server.handlers.auth import (LOGIN_SCHEMA, NEW_TOKEN_SCHEMA, NEW_USER_SCHEMA, PASSWORD_SCHEMA, REFRESH_SCHEMA,
                                 USER_CHANGE_SCHEMA)
from server.handlers.card_socket import CLIENT_MESSAGE as CARD_MESSAGE
from server.handlers.cards import RUN_SCHEMA
from server.handlers.dashboard_socket import CLIENT_MESSAGE as DASHBOARD_MESSAGE
from server.handlers.dashboards import REVOKE, SHARE, WRAPPED
from server.handlers.sessions import EXECUTE_SCHEMA, OPEN_SCHEMA
from server.jupyter.handlers import SESSION_SCHEMA, START_SCHEMA
from server.services.card_schema import CARD_VERSION, NEW_CARD

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
SENTINEL = "\x00hostile\x00"
POOL_SIZE = 30

DEEP = b"[" * 100_000 + b"]" * 100_000
HOSTILE_LITERALS = [
    b"NaN", b"Infinity", b"-Infinity", b"9" * 5000, b"-" + b"9" * 400, b"1e400", b"-1e999", b"0." + b"1" * 5000,
    b"18446744073709551616", b'"\\ud800"', b'"x\\udfff"', b'"\\ud83d"', b'"\\udc00\\ud800"',
    b"[" * 65 + b"]" * 65, b'{"a":' * 65 + b"1" + b"}" * 65, DEEP, b"1" * 41, b"1.0e-99999",
]


# the server ----------------------------------------------------------------------------------------
class LiveServer:
    """``bi serve``'s app with a local executor, on a free 127.0.0.1 port, run by a thread of its own."""

    def __init__(self, data_dir: Path):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.thread.start()
        self.port = self.call(self._start(data_dir), timeout=180)
        self._local = threading.local()

    def call(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _start(self, data_dir: Path) -> int:
        from server.app import ServeApp

        config = Config()
        config.BIApp.data_dir = str(data_dir)
        config.ServeApp.admin_email = ADMIN_EMAIL
        config.ServeApp.admin_password = ADMIN_PASSWORD
        config.ServeApp.local_executor = True
        config.ServeApp.local_executor_pool_size = 1
        config.LoginThrottle.max_failures_per_address = 3  # then 429s: argon2 would cost 0.5 s a case
        config.AuthService.password_time_cost = 1  # a password change checks the current one: no 0.4 s a case
        config.AuthService.password_memory_kib = 256
        self.app = ServeApp(config=config)
        tornado_app = await self.app.setup()
        sockets = bind_sockets(0, "127.0.0.1")
        self.server = httpserver.HTTPServer(tornado_app)
        self.server.add_sockets(sockets)
        return sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def stop() -> None:
            self.server.stop()
            await self.server.close_all_connections()
            await self.app.shutdown()
        self.call(stop(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # HTTP, keep-alive, from the calling thread
    def fetch(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                self._local.connection = None
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, value: Any, token: str | None = None) -> Any:
        status, _, data = self.fetch(method, path, json.dumps(value).encode(), token)
        assert status < 300, (status, data)
        return json.loads(data)

    # websockets, driven on the server's loop
    def ws_connect(self, path: str, token: str, subprotocols: list[str] | None = None) -> Any:
        request = httpclient.HTTPRequest(f"ws://127.0.0.1:{self.port}{path}",
                                         headers={"Authorization": f"Bearer {token}"})
        async def connect() -> Any:
            return await websocket.websocket_connect(request, subprotocols=subprotocols)
        return self.call(connect())

    def ws_send(self, connection: Any, frame: str | bytes) -> None:
        async def send() -> None:
            await connection.write_message(frame, binary=isinstance(frame, bytes))
        self.call(send())

    def ws_exchange(self, connection: Any, frames: list[str], done: Callable[[list[dict[str, Any]]], bool],
                    timeout: float = 15) -> list[dict[str, Any]]:
        """Send ``frames``, then read messages until ``done(messages)``: one trip to the server's loop, not one a
        frame and message."""
        async def exchange() -> list[dict[str, Any]]:
            for frame in frames:
                await connection.write_message(frame)
            got: list[dict[str, Any]] = []
            while not got or not done(got):
                frame = await asyncio.wait_for(connection.read_message(), timeout)
                assert frame is not None, f"the server closed the socket ({connection.close_code}, {connection.close_reason})"
                got.append(strict_json(frame))
            return got
        return self.call(exchange(), timeout * 4)

    def ws_read(self, connection: Any, timeout: float = 15) -> str | bytes:
        async def read() -> str | bytes | None:
            return await asyncio.wait_for(connection.read_message(), timeout)
        frame = self.call(read(), timeout + 5)
        assert frame is not None, f"the server closed the socket ({connection.close_code}, {connection.close_reason})"
        return frame


# checks ----------------------------------------------------------------------------------------------
def strict_json(data: bytes | str) -> Any:
    """JSON as a browser reads it: no NaN or Infinity, UTF-8 only."""
    def refuse(name: str) -> None:
        raise AssertionError(f"the server wrote {name}")
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data, parse_constant=refuse)


JUPYTER_ERROR = {"error", "message", "reason"}


def check_response(status: int, headers: dict[str, str], body: bytes) -> None:
    """No 5xx but a 503 with Retry-After; errors in the one shape; every JSON body readable by a browser."""
    assert status < 500 or (status == 503 and headers.get("retry-after")), (status, body[:300])
    if "json" not in headers.get("content-type", "") or not body:
        assert status < 400, (status, headers, body[:300])
        return
    value = strict_json(body)
    if status >= 400:
        assert isinstance(value, dict) and set(value) in ({"error"}, JUPYTER_ERROR), value
        check_error(value["error"], status)
        if set(value) == JUPYTER_ERROR:  # the Jupyter API's: Jupyter Server's two fields beside ours
            assert value["message"] == value["error"]["message"] and isinstance(value["reason"], str), value


def check_error(error: Any, status: int = 400) -> None:
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, error
    assert ERROR_CODE.match(error["code"]) and isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error


# shapes ----------------------------------------------------------------------------------------------
def generation_schema(schema: Any) -> Any:
    """An equivalent schema (for the documents it generates) that ``hypothesis-jsonschema`` draws from
    quickly: if/then rules on a ``const`` become alternatives, and collections and strings are kept short."""
    if isinstance(schema, list):
        return [generation_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: generation_schema(value) for key, value in schema.items()}
    for key, cap in (("maxItems", 2), ("maxProperties", 3), ("maxLength", 24)):
        if key in schema:
            schema[key] = min(schema[key], cap)
    rules = schema.get("allOf")
    if rules and all(set(rule) <= {"if", "then"} for rule in rules):
        base = {key: value for key, value in schema.items() if key != "allOf"}
        schema = {"anyOf": [_merged(_merged(base, rule["if"]), rule["then"]) for rule in rules]}
    return schema


def _merged(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if key == "properties":
            mine = out.get(key, {})
            out[key] = {**mine, **{name: {**mine.get(name, {}), **sub} for name, sub in value.items()}}
        elif key == "required":
            out[key] = sorted(set(out.get(key, [])) | set(value))
        else:
            out[key] = value
    return out


class _PoolFull(Exception):
    """Ends the drawing of a pool once it has its documents."""


def draw_pool(schema: dict[str, Any], size: int = POOL_SIZE) -> list[Any]:
    """``size`` distinct valid documents of ``schema`` (fewer if ``3 * size`` draws do not find them), drawn once,
    deterministically; the drawing stops as soon as the pool is full (before, it drew ``3 * size`` every time:
    most of the fuzz test's first minute)."""
    pool: list[Any] = []
    validator = jsonschema.Draft202012Validator(schema)

    @settings(max_examples=size * 3, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck))
    @given(from_schema(generation_schema(schema)))
    def collect(document: Any) -> None:
        if validator.is_valid(document) and document not in pool:
            pool.append(document)
        if len(pool) == size:
            raise _PoolFull

    with contextlib.suppress(_PoolFull):
        collect()
    return pool[:size]


def with_hostile(document: Any, draw: Callable[..., Any]) -> bytes:
    """``document`` as JSON with one value (or the whole) replaced by a hostile literal."""
    paths: list[list[Any]] = [[]]

    def walk(value: Any, path: list[Any]) -> None:
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            paths.append([*path, key])
            walk(item, [*path, key])
    walk(document, [])
    path = draw(st.sampled_from(paths))
    literal = draw(st.sampled_from(HOSTILE_LITERALS))
    if not path:
        return literal
    document = json.loads(json.dumps(document))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = SENTINEL
    return json.dumps(document).encode().replace(json.dumps(SENTINEL).encode(), literal)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@functools.cache
def hostile_body(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bodies that must be refused with a 4xx (or, for JSON of the wrong shape, may be taken); made once per
    strategy of valid ones (making a composite strategy reads its function's source: 6 ms a case)."""
    @st.composite
    def spliced(draw: Callable[..., Any]) -> bytes:
        return with_hostile(draw(valid), draw)

    @st.composite
    def cut(draw: Callable[..., Any]) -> bytes:
        text = json.dumps(draw(valid)).encode()
        return text[:len(text) * draw(st.integers(0, 99)) // 100]  # a share: ids may differ between replays

    return st.one_of(
        spliced(), spliced(), cut(),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=48),
        st.integers(60, 70).map(lambda depth: b"[" * depth + b"]" * depth),
    )


@dataclasses.dataclass
class Route:
    method: str
    path: str
    valid: st.SearchStrategy[Any] | None  # None: a route without a body (GET, DELETE)
    auth: bool = True


@dataclasses.dataclass
class Sockets:
    dashboard: Any
    card: Any
    kernel: Any
    card_token: str  # to open a new card socket after a case closed the session


@dataclasses.dataclass
class Fixtures:
    """What the routes refer to, made once per server."""

    token: str
    card_id: str
    dashboard_id: str
    empty_dashboard_id: str
    session_id: str
    kernel_id: str
    sockets: Sockets | None = None


@functools.cache
def _pool(schema_json: str, size: int) -> tuple[Any, ...]:
    return tuple(draw_pool(json.loads(schema_json), size))


def valid(schema: dict[str, Any], size: int = POOL_SIZE) -> st.SearchStrategy[Any]:
    """Valid documents of ``schema``: one of a pool drawn once per process (drawing is slow)."""
    return st.sampled_from(_pool(json.dumps(schema, sort_keys=True), size))


def routes(f: Fixtures) -> list[Route]:
    unknown = st.text("abcdef0123456789", min_size=1, max_size=12).map(lambda s: f"x{s}")
    documents = valid(dashboards_spec.SCHEMA, 6)
    return [
        Route("POST", "/api/auth/login", valid(LOGIN_SCHEMA), auth=False),
        Route("POST", "/api/auth/refresh", valid(REFRESH_SCHEMA), auth=False),
        Route("POST", "/api/auth/logout", valid(REFRESH_SCHEMA), auth=False),
        Route("GET", "/api/me", None),
        Route("POST", "/api/me/password", valid(PASSWORD_SCHEMA)),  # the current password is never guessed
        Route("GET", "/api/me/tokens", None),
        Route("POST", "/api/me/tokens", valid(NEW_TOKEN_SCHEMA)),
        Route("GET", "/api/users", None),
        Route("POST", "/api/users", valid(NEW_USER_SCHEMA)),
        Route("PATCH", "/api/users/nope", valid(USER_CHANGE_SCHEMA)),
        Route("GET", "/api/datasets", None),
        Route("GET", "/api/datasets/nope/preview", None),
        Route("GET", "/api/cards", None),
        Route("POST", "/api/cards", valid(NEW_CARD, 8)),
        Route("PUT", f"/api/cards/{f.card_id}", valid(CARD_VERSION, 8)),
        Route("POST", f"/api/cards/{f.card_id}/run", st.just({"parameters": {"n": 1}}) | valid(RUN_SCHEMA)),
        Route("GET", "/api/dashboards", None),
        Route("POST", "/api/dashboards", documents),
        Route("POST", "/api/dashboards/import", documents),
        Route("PUT", f"/api/dashboards/{f.dashboard_id}", valid(WRAPPED) | documents),  # not watched: no re-runs
        Route("PUT", f"/api/dashboards/{f.dashboard_id}/shares", valid(SHARE)),
        Route("DELETE", f"/api/dashboards/{f.dashboard_id}/shares", valid(REVOKE)),
        Route("POST", f"/api/dashboards/{f.dashboard_id}/cards/total/run", st.just({}) | valid(RUN_SCHEMA)),
        Route("GET", "/api/outputs/nope/rows?offset=-1&limit=99999999999999999999", None),
        Route("POST", "/api/card-sessions", valid(OPEN_SCHEMA).map(
            lambda body: {"datasets": ["no-such-dataset", *body.get("datasets", [])][:2]})),
        Route("POST", f"/api/card-sessions/{f.session_id}/execute", valid(EXECUTE_SCHEMA)),
        Route("GET", "/api/kernels", None),
        Route("POST", "/api/kernels", valid(START_SCHEMA).map(
            lambda body: {"name": "not-python"} if not body or body.get("name") in (None, "python3") else body)),
        Route("POST", "/api/sessions", st.builds(
            lambda body, kernel: {**body, "path": "p.ipynb", "kernel": {"id": kernel}}, valid(SESSION_SCHEMA), unknown)),
        Route("PATCH", "/api/sessions/nope", valid(SESSION_SCHEMA)),
    ]


def make_fixtures(server: LiveServer) -> Fixtures:
    status, _, body = server.fetch("POST", "/api/auth/login",
                                   json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode())
    assert status == 200, body
    token = json.loads(body)["access_token"]
    card = server.json("POST", "/api/cards", {"title": "t", "code": "", "parameters": [
        {"name": "n", "type": "number", "default": 1}]}, token)
    document = {"schemaVersion": 1, "title": "d", "layout": [{"card": "total", "x": 0, "y": 0, "w": 6, "h": 4}],
                "cards": [{"key": "total", "title": "t", "code": "n", "datasets": [],
                           "parameters": [{"name": "n", "type": "number", "default": 1}]}]}
    dashboard = server.json("POST", "/api/dashboards", document, token)
    empty = server.json("POST", "/api/dashboards", {"schemaVersion": 1, "title": "e", "cards": [], "layout": []}, token)
    session = server.json("POST", "/api/card-sessions", {"datasets": []}, token)
    status, _, body = server.fetch("POST", "/api/kernels", b'{"name": "python3"}', token)
    assert status == 201, body
    fixtures = Fixtures(token, card["id"], dashboard["id"], empty["id"], session["id"], json.loads(body)["id"])
    fixtures.sockets = open_sockets(server, fixtures)  # before the routes' fuzz reaches the kernel limits
    return fixtures


@dataclasses.dataclass
class Tally:
    cases: int = 0
    valid: int = 0
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)


def http_case(server: LiveServer, fixtures: Fixtures, all_routes: list[Route], tally: Tally,
              data: st.DataObject) -> None:
    """One request: a valid body (half the time) or a hostile one to a drawn route; its answer checked."""
    route = data.draw(st.sampled_from(all_routes), label="route")
    body = None
    if route.valid is not None:
        good = data.draw(st.integers(0, 99), label="valid") < 50
        body = json.dumps(data.draw(route.valid, label="body")).encode() if good else \
            data.draw(hostile_body(route.valid), label="body")
        tally.valid += good
    else:
        tally.valid += 1
    tally.cases += 1
    started = time.perf_counter()
    status, headers, answer = server.fetch(route.method, route.path, body, fixtures.token if route.auth else None)
    key = f"{route.method} {route.path}"
    tally.seconds[key] = tally.seconds.get(key, 0) + time.perf_counter() - started
    check_response(status, headers, answer)


# websockets --------------------------------------------------------------------------------------------
JUPYTER_REQUESTS = {  # requests every kernel answers at once, with well-formed content
    "kernel_info_request": st.just({}),
    "comm_info_request": st.fixed_dictionaries({}, optional={"target_name": st.text(max_size=12)}),
    "is_complete_request": st.fixed_dictionaries({"code": st.text(max_size=12)}),
}


def open_sockets(server: LiveServer, f: Fixtures) -> Sockets:
    dashboard = server.ws_connect(f"/api/dashboards/{f.empty_dashboard_id}/ws", f.token)
    until(server, dashboard, lambda m: m["type"] == "snapshot")
    card = server.ws_connect("/api/cards/scratch/ws", f.token)
    until(server, card, lambda m: m["type"] == "session")
    kernel = server.ws_connect(f"/api/kernels/{f.kernel_id}/channels?session_id=fuzz", f.token)
    return Sockets(dashboard, card, kernel, f.token)


def until(server: LiveServer, connection: Any, last: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Messages up to and including the first for which ``last`` holds; every error in its shape."""
    got = []
    while True:
        message = strict_json(server.ws_read(connection))
        if message.get("type") == "error":
            check_error({key: message[key] for key in ("code", "message")} | {"details": {}})
        got.append(message)
        if last(message):
            return got


def checked(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages``, each error among them checked for its shape."""
    for message in messages:
        if message.get("type") == "error":
            check_error({key: message[key] for key in ("code", "message")} | {"details": {}})
    return messages


def accepts(validator: jsonschema.Draft202012Validator, frame: bytes) -> bool:
    try:
        return validator.is_valid(json_io.loads(frame, None))
    except BIError:
        return False


def frame_of(messages: st.SearchStrategy[Any], data: st.DataObject, tally: Tally) -> bytes:
    tally.cases += 1
    if data.draw(st.integers(0, 99), label="valid") < 50:
        tally.valid += 1
        return json.dumps(data.draw(messages, label="message")).encode()
    return data.draw(hostile_body(messages), label="frame")


def kernel_message(msg_type: str, content: dict[str, Any], msg_id: str) -> dict[str, Any]:
    header = {"msg_id": msg_id, "msg_type": msg_type, "session": "fuzz", "username": "fuzz",
              "date": "2026-01-01T00:00:00Z", "version": "5.3"}
    return {"channel": "shell", "header": header, "parent_header": {}, "metadata": {}, "content": content}


MESSAGE_IDS = itertools.count()  # unique: the server holds shell requests until the one before is answered
KERNEL_MESSAGES = st.one_of(*(st.builds(kernel_message, st.just(msg_type), content,
                                        st.builds(lambda: f"fuzz-{next(MESSAGE_IDS)}"))
                              for msg_type, content in JUPYTER_REQUESTS.items()))


def ws_case(server: LiveServer, sockets: Sockets, tally: Tally, data: st.DataObject) -> None:
    """One frame to one of the sockets; the socket must answer a bad one with an error and stay open."""
    kind = data.draw(st.sampled_from(["dashboard", "card", "kernel"]), label="socket")
    if kind == "dashboard":
        frame = frame_of(valid(DASHBOARD_MESSAGE.schema), data, tally)
        accepted = accepts(DASHBOARD_MESSAGE, frame.decode("utf-8", "replace").encode())
        snapshots = 2 if accepted and json.loads(frame)["type"] == "resync" else 1
        got = checked(server.ws_exchange(sockets.dashboard, [frame.decode("utf-8", "replace"), '{"type": "resync"}'],
                                         lambda got: sum(m["type"] == "snapshot" for m in got) == snapshots))
        got = [m for m in got if m["type"] != "presence"]
        if not accepted:
            assert got[0]["type"] == "error" and got[0]["code"] == "bad_message", got
    elif kind == "card":
        frame = frame_of(valid(CARD_MESSAGE.schema), data, tally)
        text = frame.decode("utf-8", "replace")
        accepted = accepts(CARD_MESSAGE, text.encode())
        answers = {"execute": ("done",), "close": ("closed",), "card": ("card", "error")}
        ends = answers.get(json.loads(text)["type"]) if accepted else ("error",)
        if ends is None:  # a message answered by nothing (an interrupt with nothing running)
            server.ws_send(sockets.card, text)
            return
        got = checked(server.ws_exchange(sockets.card, [text], lambda got: not accepted or got[-1]["type"] in ends))
        if not accepted:
            assert got[0]["type"] == "error" and got[0]["code"] == "bad_message", got
        elif ends == ("closed",):  # leaving the editor ends the session: the next case opens one
            sockets.card = server.ws_connect("/api/cards/scratch/ws", sockets.card_token)
            until(server, sockets.card, lambda m: m["type"] == "session")
    else:
        frame = frame_of(KERNEL_MESSAGES, data, tally)
        text = frame.decode("utf-8", "replace")
        sentinel = kernel_message("kernel_info_request", {}, f"sentinel-{tally.cases}")
        # a request the kernel never answers is ended by the server (JupyterKernels.answer_seconds, or a run's
        # wall clock, interrupt, kill and a fresh kernel): give that time on a loaded machine before calling it a hang
        got = server.ws_exchange(sockets.kernel, [text, json.dumps(sentinel)], lambda got: (
            got[-1]["parent_header"].get("msg_id") == sentinel["header"]["msg_id"] and got[-1]["channel"] == "shell"),
            timeout=40)
        refusals = [m for m in got if m["header"]["msg_type"] == "error" and m["content"].get("ename") == "BadMessage"]
        if not _is_kernel_message(text):
            assert refusals, got


def _is_kernel_message(text: str) -> bool:
    try:
        message = json_io.loads(text, None)
    except BIError:
        return False
    return (isinstance(message, dict) and isinstance(message.get("header"), dict)
            and bool(message["header"].get("msg_type"))
            and (message.get("channel") or "shell") in ("shell", "control", "stdin")
            and all(isinstance(message.get(part) or {}, dict) for part in ("parent_header", "metadata", "content")))
