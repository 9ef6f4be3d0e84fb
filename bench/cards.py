"""Card websocket latency against the floor and a stock Jupyter Kernel Gateway, side by side.

Needs root (bi serve's agent sandboxes kernels). Starts ``bi serve`` on a fresh data directory,
a bare ipykernel through jupyter_client (the floor), and Jupyter Kernel Gateway 3 installed in
its own virtualenv under /tmp (a peer to compare with, never our dependency). Prints:
(a) round trips of ``1+1`` and of a pandas cell over our card websocket, over jupyter_client
    straight to ZeroMQ, and over Kernel Gateway's channels websocket;
(b) opening a card session (websocket connect) to its first output;
(c) ``POST /api/cards/{id}/run`` answered from the result cache: latency, and requests per second
    with 8 concurrent clients.

With ``--store=aws`` it prints only (c), against ``bi serve --store=aws`` on a moto server on loopback with
its own ``bi executor`` (``aws_cluster.py``): the target is p95 < 10 ms on either store.

    python bench/cards.py [--runs 200] [--store=embedded|aws [--serve-flag=--Class.trait=value]]   (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from jupyter_client.manager import start_new_kernel
from tornado import httpclient, websocket

PANDAS_CELL = ("import pandas as pd\n"
               "pd.DataFrame({'k': list('abcabc'), 'v': range(6)}).groupby('k').v.sum().to_dict()")
KERNEL_GATEWAY = "jupyter-kernel-gateway==3.0.1"
KG_VENV = Path(tempfile.gettempdir()) / "bi-bench-kernel-gateway"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):8.2f} ms   p95 {p95:8.2f} ms   (n={len(ordered)})"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_for(url: str, timeout: float = 120) -> None:
    http = httpclient.AsyncHTTPClient()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await http.fetch(url, raise_error=False)
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


async def timed(runs: int, once: Callable[[], Awaitable[Any]]) -> list[float]:
    await once()  # warm up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await once()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


# ours ------------------------------------------------------------------------
async def start_bi(data_dir: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """``bi serve`` (with ``flags``) on ``data_dir``: the process, its URL and an admin's access token."""
    port, password = free_port(), secrets.token_urlsafe(16)
    env = {**os.environ, "BI_ADMIN_EMAIL": "bench@example.com", "BI_ADMIN_PASSWORD": password}
    server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", f"--port={port}",
                               f"--data-dir={data_dir}", "--KernelPool.sessions_per_user=1000", *flags],
                              env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    await wait_for(base + "/api/health")
    return server, base, await login(base, "bench@example.com", password)


async def login(base: str, email: str, password: str) -> str:
    answer = await httpclient.AsyncHTTPClient().fetch(
        base + "/api/auth/login", method="POST", headers={"Content-Type": "application/json"},
        body=json.dumps({"email": email, "password": password}))
    return json.loads(answer.body)["access_token"]


async def card_socket(base: str, token: str) -> websocket.WebSocketClientConnection:
    request = httpclient.HTTPRequest(base.replace("http", "ws") + "/api/cards/scratch/ws",
                                     headers={"Authorization": f"Bearer {token}"})
    return await websocket.websocket_connect(request)


async def leave(connection: websocket.WebSocketClientConnection) -> None:
    """Leave as the editor does: the session and its kernel end at once (a socket that only drops keeps
    them for the 30 s resume window, and twenty in a row filled the executor)."""
    connection.write_message(json.dumps({"type": "close"}))
    while await connection.read_message() is not None:
        pass


async def card_run(connection: websocket.WebSocketClientConnection, code: str) -> None:
    connection.write_message(json.dumps({"type": "execute", "code": code}))
    while json.loads(await connection.read_message())["type"] != "done":
        pass


async def cache_hits(base: str, token: str, runs: int) -> tuple[list[float], float]:
    """Latencies of cache hits one at a time, then hits per second from 8 concurrent clients."""
    http = httpclient.AsyncHTTPClient()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    created = await http.fetch(base + "/api/cards", method="POST", headers=headers, body=json.dumps(
        {"title": "bench", "code": PANDAS_CELL, "datasets": [], "parameters": []}))
    url = base + f"/api/cards/{json.loads(created.body)['id']}/run"

    async def hit() -> None:
        response = await http.fetch(url, method="POST", headers=headers, body="{}")
        assert json.loads(response.body)["cached"], "expected a cache hit"

    await http.fetch(url, method="POST", headers=headers, body="{}")  # the run that fills the cache
    latencies = await timed(runs, hit)

    async def client() -> None:
        for _ in range(runs // 8):
            await hit()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(8)))
    return latencies, 8 * (runs // 8) / (time.perf_counter() - started)


async def first_output_ms(base: str, token: str, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        connection = await card_socket(base, token)
        await connection.read_message()  # the session message
        connection.write_message(json.dumps({"type": "execute", "code": "print('hi')"}))
        while json.loads(await connection.read_message())["type"] != "output":
            pass
        samples.append((time.perf_counter() - started) * 1000)
        await leave(connection)
        await asyncio.sleep(0.3)  # let the pool refill, as between real users
    return samples


# Kernel Gateway --------------------------------------------------------------
def install_kernel_gateway() -> Path:
    python = KG_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(KG_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", KERNEL_GATEWAY, "ipykernel", "pandas"],
                       check=True)
    return python


async def kg_socket(python: Path) -> tuple[subprocess.Popen[bytes], websocket.WebSocketClientConnection]:
    port = free_port()
    gateway = subprocess.Popen([str(python), "-m", "kernel_gateway", f"--port={port}", "--ip=127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    await wait_for(base + "/api")
    created = await httpclient.AsyncHTTPClient().fetch(base + "/api/kernels", method="POST", body="{}")
    kernel_id = json.loads(created.body)["id"]
    connection = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels")
    return gateway, connection


async def kg_run(connection: websocket.WebSocketClientConnection, code: str) -> None:
    msg_id = uuid.uuid4().hex
    connection.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "", "session": "bench",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    replied = idle = False
    while not (replied and idle):
        message = json.loads(await connection.read_message())
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        replied |= message["msg_type"] == "execute_reply"
        idle |= message["msg_type"] == "status" and message["content"]["execution_state"] == "idle"


# the floor -------------------------------------------------------------------
def floor_ms(code: str, runs: int) -> list[float]:
    manager, client = start_new_kernel(kernel_name="python3", stderr=subprocess.DEVNULL)
    try:
        client.execute_interactive(code, timeout=30, output_hook=lambda m: None)
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            client.execute_interactive(code, timeout=30, output_hook=lambda m: None)
            samples.append((time.perf_counter() - started) * 1000)
        return samples
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


async def measure(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bi-bench-") as data_dir:
        server, base, token = await start_bi(Path(data_dir))
        try:
            connection = await card_socket(base, token)
            await connection.read_message()
            results["ours 1+1"] = await timed(runs, lambda: card_run(connection, "1+1"))
            results["ours pandas"] = await timed(runs, lambda: card_run(connection, PANDAS_CELL))
            await leave(connection)
            results["first output"] = await first_output_ms(base, token, max(5, runs // 10))
            results["cache hit"], results["cache rps"] = await cache_hits(base, token, runs)
        finally:
            server.terminate()
            server.wait()
    gateway, connection = await kg_socket(install_kernel_gateway())
    try:
        results["kg 1+1"] = await timed(runs, lambda: kg_run(connection, "1+1"))
        results["kg pandas"] = await timed(runs, lambda: kg_run(connection, PANDAS_CELL))
    finally:
        connection.close()
        gateway.terminate()
        gateway.wait()
    return results


async def measure_aws(runs: int, flags: list[str]) -> None:
    from aws_cluster import ADMIN, PASSWORD, Cluster

    with tempfile.TemporaryDirectory(prefix="bi-bench-") as folder, Cluster(Path(folder), flags=tuple(flags)) as cluster:
        base = cluster.urls[0]
        latencies, rps = await cache_hits(base, await login(base, ADMIN, PASSWORD), runs)
    print("(c) POST /api/cards/{id}/run from the result cache, bi serve --store=aws on moto (target p95 < 10 ms)")
    print(f"  one client                                  {percentiles(latencies)}")
    print(f"  8 concurrent clients                        {rps:.0f} requests/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--store", choices=("embedded", "aws"), default="embedded")
    parser.add_argument("--serve-flag", action="append", default=[], help="with --store=aws: a flag for bi serve "
                        "(--serve-flag=--CardRunner.memory_bytes=0 compares hits without the memory)")
    args = parser.parse_args()
    if args.store == "aws":
        asyncio.run(measure_aws(args.runs, args.serve_flag))
        return
    results = asyncio.run(measure(args.runs))
    floor = {"1+1": floor_ms("1+1", args.runs), "pandas": floor_ms(PANDAS_CELL, args.runs)}
    for cell in ("1+1", "pandas"):
        print(f"(a) {cell} round trip")
        print(f"  jupyter_client on a bare ipykernel (floor)  {percentiles(floor[cell])}")
        print(f"  our card websocket                          {percentiles(results[f'ours {cell}'])}")
        print(f"  Kernel Gateway 3.0.1 channels websocket     {percentiles(results[f'kg {cell}'])}")
        ratio = statistics.median(results[f"ours {cell}"]) / statistics.median(floor[cell])
        kg_ratio = statistics.median(results[f"kg {cell}"]) / statistics.median(floor[cell])
        print(f"  p50 ratio to the floor: ours {ratio:.2f}x, Kernel Gateway {kg_ratio:.2f}x")
    print("(b) open a card session to its first output")
    print(f"  websocket connect to first stdout           {percentiles(results['first output'])}")
    print("(c) POST /api/cards/{id}/run from the result cache")
    print(f"  one client                                  {percentiles(results['cache hit'])}")
    print(f"  8 concurrent clients                        {results['cache rps']:.0f} requests/s")


if __name__ == "__main__":
    sys.exit(main())
