"""Store round trips per request on the AWS store: how many calls a request makes, and how many of them
are sequential (each waits for the one before).

Starts a moto server, the fault proxy of the tests (``tests/fault_proxy.py``) adding ``--latency`` to every
call, an executor agent (card runs need one: run as root) and an API server on the AWS store behind the
proxy. A viewer is shared a dashboard of ``--cards`` cards (each reading one of the owner's datasets)
and has dashboards of their own and others shared with them; every card has run once (so runs come
from the result cache). Then each request below is sent alone, ``--repeat`` times, and its store calls
counted with a botocore event hook on the store's clients (``before-parameter-build``; attempts are ``before-send``):

- ``GET /api/dashboards/{id}`` (the viewer), ``GET /api/cards`` (the owner, a page of ``--cards`` + 5)
- ``POST /api/dashboards/{id}/cards/{key}/run`` (the viewer, answered from the cache)
- ``POST /api/cards/{id}/run`` (the owner, and the viewer through the dashboard's share, from the cache)
- ``GET /api/cards/{id}`` (the viewer), ``POST /api/cards`` (the owner, reading a dataset, with an
  ``Idempotency-Key`` as the web UI sends)
- opening the live dashboard (the viewer's websocket, until every tile's output arrived)

Calls made after the answer (audit events, the kept idempotent answer) count when they start before the next
request's count does (a pause of 0.2 s between requests).

Prints per request: calls (by operation), and the sequential round trips, estimated as the time the
added latency cost: (median time with latency - median time without) / latency.

    python bench/store_calls.py [--cards 6] [--latency 0.05] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from tornado import httpclient, websocket  # noqa: E402
from traitlets.config import Config  # noqa: E402

from tests.conftest import AWS_TEST_ENV, aws_store_config  # noqa: E402
from tests.fault_proxy import FaultProxy, Latency  # noqa: E402

from bench.store_faults import serve_behind  # noqa: E402

ADMIN, PASSWORD = "admin@example.com", "correct horse battery"
VIEWER, VIEWER_PASSWORD = "viewer@example.com", "viewer password 1"


class Counter:
    """Counts the store's AWS calls (by operation) and attempts, through botocore's event hooks."""

    def __init__(self, store: Any):
        self.calls: collections.Counter[str] = collections.Counter()
        self.attempts = 0
        for client in (store._dynamodb, store._s3):
            client.meta.events.register("before-parameter-build", self._call)
            client.meta.events.register("before-send", self._attempt)

    def _call(self, model: Any = None, params: Any = None, **kwargs: Any) -> None:
        table = str((params or {}).get("TableName", (params or {}).get("Bucket", ""))).rpartition("_")[2]
        self.calls[f"{model.name if model is not None else '?'} {table}".strip()] += 1

    def _attempt(self, **kwargs: Any) -> None:
        self.attempts += 1

    def reset(self) -> None:
        self.calls.clear()
        self.attempts = 0


class Http:
    def __init__(self, base: str):
        self.base = base
        self.http = httpclient.AsyncHTTPClient(force_instance=True)

    async def call(self, method: str, path: str, token: str | None = None, body: Any = None,
                   raw: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        if raw is None and body is not None:
            headers.setdefault("Content-Type", "application/json")
        if data is None and method in ("POST", "PUT"):
            data = b""
        response = await self.http.fetch(self.base + path, method=method, body=data, headers=headers,
                                         raise_error=False, request_timeout=120)
        if response.code >= 300:
            raise RuntimeError(f"{method} {path}: {response.code} {response.body[:300]!r}")
        return json.loads(response.body) if response.body else None

    async def login(self, email: str, password: str) -> str:
        return (await self.call("POST", "/api/auth/login", body={"email": email, "password": password}))["access_token"]

    async def live(self, token: str, dashboard_id: str, tiles: int) -> None:
        """Open the live dashboard and wait for its snapshot and every tile's output."""
        url = self.base.replace("http://", "ws://") + f"/api/dashboards/{dashboard_id}/ws"
        connection = await websocket.websocket_connect(httpclient.HTTPRequest(
            url, headers={"Authorization": f"Bearer {token}"}))
        try:
            outputs: set[str] = set()
            while len(outputs) < tiles:
                message = json.loads(await asyncio.wait_for(connection.read_message(), 60) or "null")
                if message["type"] == "output":
                    outputs.add(message["card"])
        finally:
            connection.close()


def document(title: str, cards: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
    return {"schemaVersion": 1, "title": title, "parameters": [], "refresh": None,
            "cards": [{"key": key, "title": key, "code": code, "datasets": datasets} for key, code, datasets in cards],
            "layout": [{"card": key, "x": 0, "y": 4 * n, "w": 6, "h": 4} for n, (key, _, _) in enumerate(cards)]}


async def start_agent(folder: Path) -> tuple[Any, str, str]:
    from server.execution.local_agent import PUBLIC_KEY_FILE, LocalAgent

    key = Ed25519PrivateKey.generate()
    (folder / PUBLIC_KEY_FILE).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    agent = LocalAgent(folder, pool_size=2, allow_weaker_sandbox=False, advertise_host="127.0.0.1")
    client = await agent.start(key)
    client.close()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return agent, client.base_url, pem


async def start_server(proxy: FaultProxy, moto: str, data_dir: Path, agent_url: str, pem: str) -> tuple[Any, Any, str]:
    config = Config()
    config.BIApp.data_dir = str(data_dir)
    config.BIApp.store = "aws"
    config.ServeApp.admin_email, config.ServeApp.admin_password = ADMIN, PASSWORD
    config.ServeApp.executor_urls = [agent_url]
    config.ServeApp.executor_private_key = pem
    config.AuthService.jwt_secret_key = "k" * 40
    config.DashboardHub.refresh_tick = 3600.0  # no scheduled-refresh scan among the calls counted
    config.AWSStore = Config(aws_store_config(moto))
    return await serve_behind(proxy, config)


async def measure(args: argparse.Namespace, proxy: FaultProxy, moto: str, folder: Path) -> dict[str, Any]:
    agent, agent_url, pem = await start_agent(folder / "agent")
    app, server, base = await start_server(proxy, moto, folder / "data", agent_url, pem)
    try:
        http = Http(base)
        owner = await http.login(ADMIN, PASSWORD)
        await http.call("POST", "/api/users", owner, {"email": VIEWER, "name": "viewer", "role": "member",
                                                       "password": VIEWER_PASSWORD})
        viewer = await http.login(VIEWER, VIEWER_PASSWORD)
        names, dataset_ids = [], []
        for n in range(2):
            names.append(f"sales{n}")
            dataset_ids.append((await http.call("POST", f"/api/datasets?name=sales{n}", owner,
                                                raw=f"a,b\n{n},2\n".encode(), headers={"Content-Type": "text/csv"}))["id"])
        cards = [(f"k{n}", f"load_dataset('{names[n % 2]}')['a'].sum() + {n}", [names[n % 2]])
                 for n in range(args.cards)]
        shown = await http.call("POST", "/api/dashboards", owner, document("shown", cards))
        for n in range(3):  # others shared with the viewer, and the viewer's own
            other = await http.call("POST", "/api/dashboards", owner, document(f"other{n}", [("x", f"{n}", [])]))
            await http.call("PUT", f"/api/dashboards/{other['id']}/shares", owner,
                            {"email": VIEWER, "permission": "view"})
        for n in range(5):
            await http.call("POST", "/api/dashboards", viewer, document(f"mine{n}", [("y", f"{n}", [])]))
        await http.call("PUT", f"/api/dashboards/{shown['id']}/shares", owner, {"email": VIEWER, "permission": "view"})
        for key, _, _ in cards:
            await http.call("POST", f"/api/dashboards/{shown['id']}/cards/{key}/run", owner, {})

        card_id = shown["document"]["cards"][0]["card"]
        new_card = {"title": "new", "code": "1", "datasets": dataset_ids[:1], "parameters": []}
        requests: dict[str, Callable[[], Awaitable[Any]]] = {
            "GET a dashboard (viewer)": lambda: http.call("GET", f"/api/dashboards/{shown['id']}", viewer),
            "run a dashboard card (viewer, cached)": lambda: http.call(
                "POST", f"/api/dashboards/{shown['id']}/cards/k0/run", viewer, {}),
            "run a card (owner, cached)": lambda: http.call("POST", f"/api/cards/{card_id}/run", owner, {}),
            "run a card (viewer, cached)": lambda: http.call("POST", f"/api/cards/{card_id}/run", viewer, {}),
            "GET a card (viewer)": lambda: http.call("GET", f"/api/cards/{card_id}", viewer),
            "create a card (owner, keyed)": lambda: http.call("POST", "/api/cards", owner, new_card,
                                                              headers={"Idempotency-Key": uuid.uuid4().hex}),
            f"open the live dashboard (viewer, {args.cards} tiles)": lambda: http.live(viewer, shown["id"], args.cards),
            "GET /api/cards (owner)": lambda: http.call("GET", "/api/cards", owner),
        }
        counter = Counter(app.store_instance)
        results = {}
        for name, request in requests.items():
            await request()  # warm: blob cache, tokens
            timings = {}
            for latency in (0.0, args.latency):
                proxy.clear()
                if latency:
                    proxy.inject(Latency(latency))
                seconds = []
                for _ in range(args.repeat):
                    await asyncio.sleep(0.2)  # what the last request left running (audit events) ends first
                    counter.reset()
                    started = time.perf_counter()
                    await request()
                    seconds.append(time.perf_counter() - started)
                timings[latency] = statistics.median(seconds)
                proxy.clear()
            results[name] = {"calls": sum(counter.calls.values()), "by_operation": dict(sorted(counter.calls.items())),
                             "sequential": round((timings[args.latency] - timings[0.0]) / args.latency, 1)}
        return results
    finally:
        server.stop()
        await app.shutdown()
        await agent.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=6)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(AWS_TEST_ENV)
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    proxy = FaultProxy(f"http://{host}:{port}")
    proxy.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "agent").mkdir()
            results = await measure(args, proxy, f"http://{host}:{port}", Path(folder))
    finally:
        proxy.stop()
        moto.stop()
    for name, result in results.items():
        print(f"{name:42} calls {result['calls']:4}  sequential {result['sequential']:6}  {result['by_operation']}")
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
