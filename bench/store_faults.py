"""The AWS store under faults: a mixed workload through the fault proxy, then an integrity check.

Starts a moto server and the fault proxy of the tests (``tests/fault_proxy.py``) on loopback, and
an API server (in this process) on the AWS store behind the proxy. For each scenario it runs
``--seconds`` of mixed work from ``--clients`` clients (uploads and new versions, card creates and
edits, dashboards with inline cards, shares, deletes, lists) while the proxy injects its faults; a
client retries a 503 or a lost answer twice with the same ``Idempotency-Key``, as the web UI's user
would. Then the faults stop and, once a late write can have landed and the store has written again what it
may have made stale (``AWSStore.late_write_seconds`` plus the proxy's longest latency), it checks that every
object the API last answered 2xx for is intact and readable (datasets page their rows, cards read back the code
of their answered version, dashboards and the cards they show exist, deleted objects are gone), and runs
``bi fsck``.

Prints per scenario: ok / 4xx / 5xx (503s apart) / p50 / p95 / integrity problems / what fsck found
(records pointing at nothing are integrity problems; orphan blobs are the garbage fsck sweeps).
Card runs are left out (they need an executor agent and root). Scenarios: 20 % DynamoDB throttling,
20 % S3 5xx, 10 % resets on both (before and after the store), 2 s latency on 20 %, a 15 s outage
of both (from the fifth second).

    python bench/store_faults.py [--seconds 60] [--clients 4] [--only NAME ...] [--set Class.trait=JSON ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from tornado import httpclient  # noqa: E402
from tornado.netutil import bind_sockets  # noqa: E402
from traitlets.config import Config  # noqa: E402

from server.services.fsck import fsck  # noqa: E402
from tests.conftest import AWS_TEST_ENV, aws_store_config  # noqa: E402
from tests.fault_proxy import (RESET_AFTER, RESET_BEFORE, SERVER_ERROR, THROTTLE, FaultProxy, Latency,  # noqa: E402
                               Request, dynamodb, s3)

ADMIN, PASSWORD = "admin@example.com", "correct horse battery"
LATENCY_SECONDS = 2.0
INTEGRITY_KINDS = {"blob_missing", "headless", "broken_table", "unlisted", "listed_orphan"}


def chance(share: float, match: Callable[[Request], bool]) -> Callable[[Request], bool]:
    return lambda request: match(request) and random.random() < share


SCENARIOS: dict[str, Callable[[FaultProxy], None]] = {
    "throttle-20": lambda p: p.inject(THROTTLE, chance(0.2, dynamodb())),
    "s3-5xx-20": lambda p: p.inject(SERVER_ERROR, chance(0.2, s3())),
    "resets-10": lambda p: (p.inject(RESET_BEFORE, chance(0.05, lambda r: True)),
                            p.inject(RESET_AFTER, chance(0.05 / 0.95, lambda r: True))),
    "latency-2s-20": lambda p: p.inject(Latency(LATENCY_SECONDS), chance(0.2, lambda r: True)),
    "outage-15s": lambda p: None,  # started and stopped by the run
}


class Tally:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.seconds: list[float] = []


class Client:
    def __init__(self, base: str, token: str, tally: Tally):
        self.base, self.token, self.tally = base, token, tally
        self.http = httpclient.AsyncHTTPClient(force_instance=True)

    async def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                   headers: dict[str, str] | None = None, idempotent: bool = True) -> tuple[int, Any]:
        """The last answer, after retrying a 503 or a lost answer twice with the same Idempotency-Key."""
        headers = {"Authorization": f"Bearer {self.token}", **({"Content-Type": "application/json"} if body is not None else {}),
                   **(headers or {})}
        if method in ("POST", "PUT") and idempotent:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b""
        started = time.perf_counter()
        for attempt in range(3):
            try:
                response = await self.http.fetch(self.base + path, method=method, body=data, headers=headers,
                                                 raise_error=False, request_timeout=120,
                                                 allow_nonstandard_methods=True)
                status = response.code
            except OSError:
                status = 599
            if status not in (503, 599) or attempt == 2:
                break
            await asyncio.sleep(0.5 * (attempt + 1))
        self.tally.statuses.append(status)
        self.tally.seconds.append(time.perf_counter() - started)
        payload = json.loads(response.body) if status != 599 and response.body else None
        return status, payload


class Workload:
    """What one client did and was answered: the objects it believes exist, and those it deleted."""

    def __init__(self, client: Client, tag: str):
        self.client, self.tag = client, tag
        self.datasets: dict[str, list[list[Any]]] = {}  # id -> rows of its answered version
        self.cards: dict[str, tuple[int, str]] = {}  # id -> (answered version, its code)
        self.dashboards: dict[str, int] = {}
        self.deleted: list[str] = []  # paths answered 204
        self.n = 0

    async def step(self) -> None:
        self.n += 1
        action = random.choice([self.upload, self.new_version, self.create_card, self.edit_card, self.create_dashboard,
                                self.share, self.delete, self.list])
        await action()

    async def upload(self) -> None:
        rows = [[f"店{self.n}", self.n]]
        status, body = await self.client.call(
            "POST", f"/api/datasets?name={self.tag}-{self.n}", raw=f"店舗,売上\n店{self.n},{self.n}\n".encode(),
            headers={"Content-Type": "text/csv"})
        if status == 201:
            self.datasets[body["id"]] = rows

    async def new_version(self) -> None:
        if self.datasets:
            dataset_id = random.choice(list(self.datasets))
            status, _ = await self.client.call("POST", f"/api/datasets/{dataset_id}/versions",
                                               raw=f"店舗,売上\nv{self.n},{self.n}\n".encode(),
                                               headers={"Content-Type": "text/csv"})
            if status == 201:
                self.datasets[dataset_id] = [[f"v{self.n}", self.n]]

    async def create_card(self) -> None:
        code = f"{self.n} + 1"
        status, body = await self.client.call("POST", "/api/cards", {"title": "c", "code": code, "datasets": [],
                                                                     "parameters": []})
        if status == 201:
            self.cards[body["id"]] = (1, code)

    async def edit_card(self) -> None:
        if self.cards:
            card_id = random.choice(list(self.cards))
            version, _ = self.cards[card_id]
            code = f"{self.n} * 2"
            status, body = await self.client.call("PUT", f"/api/cards/{card_id}", {
                "title": "c", "code": code, "datasets": [], "parameters": []}, headers={"If-Match": f'"{version}"'})
            if status == 200:
                self.cards[card_id] = (body["version"], code)

    async def create_dashboard(self) -> None:
        document = {"schemaVersion": 1, "title": "d", "parameters": [], "refresh": None,
                    "cards": [{"key": "k", "title": "t", "code": f"{self.n}", "datasets": []}],
                    "layout": [{"card": "k", "x": 0, "y": 0, "w": 6, "h": 4}]}
        status, body = await self.client.call("POST", "/api/dashboards", document)
        if status == 201:
            self.dashboards[body["id"]] = body["version"]

    async def share(self) -> None:
        if self.dashboards:
            dashboard_id = random.choice(list(self.dashboards))
            await self.client.call("PUT", f"/api/dashboards/{dashboard_id}/shares",
                                   {"email": "viewer@example.com", "permission": "view"})

    async def delete(self) -> None:
        kinds = [(name, pool) for name, pool in (("datasets", self.datasets), ("cards", self.cards),
                                                 ("dashboards", self.dashboards)) if pool]
        if kinds:
            name, pool = random.choice(kinds)
            record_id = random.choice(list(pool))
            status, _ = await self.client.call("DELETE", f"/api/{name}/{record_id}")
            if status == 204:
                del pool[record_id]
                self.deleted.append(f"/api/{name}/{record_id}")

    async def list(self) -> None:
        await self.client.call("GET", random.choice(["/api/datasets", "/api/cards", "/api/dashboards"]))

    async def problems(self) -> list[str]:
        """What the API answered 2xx for and cannot be read back as answered."""
        found = []
        for dataset_id, rows in self.datasets.items():
            status, body = await self.client.call("GET", f"/api/datasets/{dataset_id}/preview")
            if status != 200 or body["rows"] != rows:
                found.append(f"dataset {dataset_id}: {status} {body}")
        for card_id, (version, code) in self.cards.items():
            status, body = await self.client.call("GET", f"/api/cards/{card_id}/versions/{version}")
            if status != 200 or body["code"] != code:
                found.append(f"card {card_id} v{version}: {status}")
        for dashboard_id in self.dashboards:
            status, body = await self.client.call("GET", f"/api/dashboards/{dashboard_id}")
            cards = [entry["card"] for entry in body["document"]["cards"]] if status == 200 else []
            card_statuses = [(await self.client.call("GET", f"/api/cards/{c}"))[0] for c in cards]
            if status != 200 or any(s != 200 for s in card_statuses):
                found.append(f"dashboard {dashboard_id}: {status} cards {card_statuses}")
        for path in self.deleted:
            status, _ = await self.client.call("GET", path)
            if status != 404:
                found.append(f"deleted {path}: {status}")
        return found


async def start_server(proxy: FaultProxy, moto: str, data_dir: Path, traits: dict[str, str]) -> tuple[Any, Any, str]:
    config = Config()
    config.BIApp.data_dir = str(data_dir)
    config.BIApp.store = "aws"
    config.ServeApp.admin_email, config.ServeApp.admin_password = ADMIN, PASSWORD
    config.ServeApp.local_executor = False
    config.AuthService.jwt_secret_key = "k" * 40
    config.AWSStore = Config(aws_store_config(moto))
    for dotted, value in traits.items():
        section, name = dotted.split(".")
        config[section][name] = json.loads(value)
    return await serve_behind(proxy, config)


async def serve_behind(proxy: FaultProxy, config: Config) -> tuple[Any, Any, str]:
    """``bi serve`` with ``config`` on the AWS store: its tables made on moto directly, then every store call
    through ``proxy``; the app, its HTTP server and its URL."""
    from server.app import ServeApp

    schema = ServeApp(config=config).make_store()
    await schema.create_schema()
    await schema.close()
    config.AWSStore.dynamodb_endpoint_url = config.AWSStore.s3_endpoint_url = proxy.endpoint
    app = ServeApp(config=config)
    tornado_app = await app.setup()
    sockets = bind_sockets(0, "127.0.0.1")
    server = app.make_http_server(tornado_app)
    server.add_sockets(sockets)
    return app, server, f"http://127.0.0.1:{sockets[0].getsockname()[1]}"


async def login(base: str, email: str, password: str) -> str:
    http = httpclient.AsyncHTTPClient(force_instance=True)
    response = await http.fetch(base + "/api/auth/login", method="POST", headers={"Content-Type": "application/json"},
                                body=json.dumps({"email": email, "password": password}))
    return json.loads(response.body)["access_token"]


async def scenario(name: str, proxy: FaultProxy, moto: str, seconds: float, clients: int,
                   traits: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        app, server, base = await start_server(proxy, moto, Path(data_dir), traits)
        try:
            token = await login(base, ADMIN, PASSWORD)
            admin = Client(base, token, Tally())
            await admin.call("POST", "/api/users", {"email": "viewer@example.com", "name": "viewer",
                                                    "role": "member", "password": "member password 1"})
            tally = Tally()
            workloads = [Workload(Client(base, token, tally), f"{name}{n}") for n in range(clients)]
            SCENARIOS[name](proxy)
            deadline = time.monotonic() + seconds

            async def work(workload: Workload) -> None:
                while time.monotonic() < deadline:
                    await workload.step()

            async def outage() -> None:
                await asyncio.sleep(5)
                proxy.outage()
                await asyncio.sleep(15)
                proxy.clear()

            jobs = [work(w) for w in workloads] + ([outage()] if name == "outage-15s" else [])
            await asyncio.gather(*jobs)
            proxy.clear()
            await asyncio.sleep(app.store_instance.late_write_seconds + LATENCY_SECONDS)
            for workload in workloads:  # the check's own calls are not counted
                workload.client = Client(base, token, Tally())
            problems = [p for w in workloads for p in await w.problems()]
            found = await fsck(app.store_instance, grace_seconds=0)
        finally:
            server.stop()
            await app.shutdown()
    statuses, latencies = tally.statuses, sorted(tally.seconds)
    return {
        "requests": len(statuses), "ok": sum(200 <= s < 300 for s in statuses),
        "4xx": sum(400 <= s < 500 for s in statuses),
        "4xx_codes": sorted({s for s in statuses if 400 <= s < 500}), "503": sum(s == 503 for s in statuses),
        "other_5xx": sum(s >= 500 and s != 503 for s in statuses),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(latencies[int(len(latencies) * 0.95)], 3) if latencies else None,
        "integrity_problems": len(problems) + sum(p.kind in INTEGRITY_KINDS for p in found),
        "fsck": sorted({p.kind for p in found}), "orphan_blobs": sum(p.kind == "orphan_blob" for p in found),
        "examples": problems[:3],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--set", nargs="*", default=[], metavar="Class.trait=JSON",
                        help="server settings, e.g. AWSStore.dynamodb_read_timeout=1")
    args = parser.parse_args()
    traits = dict(setting.split("=", 1) for setting in args.set)
    os.environ.update(AWS_TEST_ENV)
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    proxy = FaultProxy(f"http://{host}:{port}")
    proxy.start()
    results = {}
    try:
        for name in args.only:
            results[name] = await scenario(name, proxy, f"http://{host}:{port}", args.seconds, args.clients, traits)
            r = results[name]
            print(f"{name:14} ok {r['ok']:5}  4xx {r['4xx']:4}  503 {r['503']:4}  other 5xx {r['other_5xx']:3}  "
                  f"p50 {r['p50_s']} s  p95 {r['p95_s']} s  integrity problems {r['integrity_problems']}  "
                  f"orphan blobs {r['orphan_blobs']}", flush=True)
    finally:
        proxy.stop()
        moto.stop()
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
