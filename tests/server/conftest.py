"""A real API server on a free 127.0.0.1 port, and a small HTTP client for it."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from tornado import httpclient, httpserver
from tornado.netutil import bind_sockets
from traitlets.config import Config

from ..conftest import aws_store_config

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"


class Response:
    def __init__(self, raw: httpclient.HTTPResponse):
        self.code = raw.code
        self.headers = raw.headers
        self.body = raw.body or b""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        return self.json()["error"]["code"]


class Client:
    """Talks HTTP to one running server; ``token`` is sent as a bearer token when set."""

    def __init__(self, base_url: str, app: Any):
        self.base_url = base_url
        self.app = app
        self.token: str | None = None
        self._http = httpclient.AsyncHTTPClient(force_instance=True)

    async def fetch(self, method: str, path: str, *, json_body: Any = None, body: bytes | None = None,
                    headers: dict[str, str] | None = None, token: str | None = None) -> Response:
        headers = dict(headers or {})
        bearer = token if token is not None else self.token
        if bearer:
            headers.setdefault("Authorization", f"Bearer {bearer}")
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        raw = await self._http.fetch(self.base_url + path, method=method, body=body, headers=headers,
                                     raise_error=False, request_timeout=120,
                                     allow_nonstandard_methods=True)
        return Response(raw)

    async def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
        response = await self.fetch("POST", "/api/auth/login", json_body={"email": email, "password": password})
        assert response.code == 200, response.body
        return response.json()["access_token"]

    async def add_user(self, email: str, password: str = "member password 1", role: str = "member") -> str:
        """Create a user as the admin and return a token of theirs."""
        admin = await self.login()
        response = await self.fetch("POST", "/api/users", token=admin, json_body={
            "email": email, "name": email.split("@")[0], "role": role, "password": password})
        assert response.code == 201, response.body
        return await self.login(email, password)

    def close(self) -> None:
        self._http.close()


ServerFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def start_server(tmp_path, request: pytest.FixtureRequest) -> AsyncIterator[ServerFactory]:
    """Start servers with the given config; all are stopped after the test."""
    from server.app import ServeApp

    running: list[tuple[httpserver.HTTPServer, Any, Client]] = []

    async def start(store_kind: str = "embedded", **traits: Any) -> Client:
        config = Config()
        config.BIApp.data_dir = str(tmp_path / f"data{len(running)}")
        config.BIApp.store = store_kind
        config.ServeApp.admin_email = ADMIN_EMAIL
        config.ServeApp.admin_password = ADMIN_PASSWORD
        config.ServeApp.local_executor = False  # tests that run cards turn it on
        if store_kind == "aws":
            config.AWSStore = Config(aws_store_config(request.getfixturevalue("moto_endpoint")))
            config.AuthService.jwt_secret_key = "k" * 40
        for dotted, value in traits.items():
            section, name = dotted.split("__")
            config[section][name] = value
        app = ServeApp(config=config)
        if store_kind == "aws":
            schema_store = app.make_store()
            await schema_store.create_schema()
            await schema_store.close()
        tornado_app = await app.setup()
        sockets = bind_sockets(0, "127.0.0.1")
        server = app.make_http_server(tornado_app)
        server.add_sockets(sockets)
        client = Client(f"http://127.0.0.1:{sockets[0].getsockname()[1]}", app)
        running.append((server, app, client))
        return client

    yield start
    for server, app, client in running:
        client.close()
        server.stop()
        await server.close_all_connections()
        await app.shutdown()


@pytest.fixture
async def api(start_server: ServerFactory) -> Client:
    """A server on the embedded store with an admin, and a client not yet signed in."""
    return await start_server()


@pytest.fixture
async def any_api(start_server: ServerFactory, store_kind: str) -> Client:
    """The same, once per backend."""
    return await start_server(store_kind)
