"""Cache-miss card runs as a team runs them: 1, 4 and 16 users, each running, waiting 1 s, repeating.

Needs root (bi serve's agent sandboxes kernels). Starts ``bi serve`` on a fresh data directory with
its defaults (an agent of 8 kernels), adds the users, and gives each one a
20,000-row dataset and a card that reads it. Every run passes a new parameter value, so none is
answered from the result cache: each one takes a fresh kernel that is destroyed afterwards. For
each number of users it prints runs per second, p50/p95/p99 of ``POST /api/cards/{id}/run`` and
how many runs got a 503 (or another error), and the CPU time the server, its agent and the kernels
used per run.

Targets: one user p95 <= 1.5x p50; 16 users no 503 and p95 < 2 s.

    python bench/throughput.py [--seconds 60] [--users 1,4,16] [--pause 1]      (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tornado import httpclient

from cards import start_bi

ROWS = 20_000
CARD = ("df = load_dataset('sales')\n"
        "df[df.amount > threshold].groupby('region').amount.agg(['sum', 'count'])")


def csv_rows(rows: int) -> bytes:
    lines = ["region,amount,day"] + [f"r{i % 17},{(i * 7919) % 10_000},2026-01-{i % 28 + 1:02d}"
                                     for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used by process ``root`` and everything under it (reaped children included)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return sum(times.get(pid, 0.0) for pid in tree)


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Api:
    def __init__(self, base: str, token: str):
        self.base = base
        self.http = httpclient.AsyncHTTPClient(force_instance=True, max_clients=64)
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: bytes | dict[str, object] | None = None,
                   content_type: str = "application/json") -> httpclient.HTTPResponse:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        return await self.http.fetch(self.base + path, method=method, body=data, raise_error=False,
                                     headers={**self.headers, "Content-Type": content_type}, request_timeout=120)

    async def as_user(self, email: str, password: str) -> Api:
        login = await self.call("POST", "/api/auth/login", {"email": email, "password": password})
        return Api(self.base, json.loads(login.body)["access_token"])


async def prepare_user(admin: Api, number: int) -> tuple[Api, str]:
    """A new user with a dataset and a card reading it; their client and the card's id."""
    email, password = f"user{number}@example.com", f"bench-password-{number}"
    created = await admin.call("POST", "/api/users", {"email": email, "name": f"User {number}",
                                                      "password": password, "role": "member"})
    assert created.code == 201, created.body
    user = await admin.as_user(email, password)
    dataset = await user.call("POST", "/api/datasets?name=sales", csv_rows(ROWS), "text/csv")
    assert dataset.code == 201, dataset.body
    card = await user.call("POST", "/api/cards", {
        "title": "threshold", "code": CARD, "datasets": [json.loads(dataset.body)["id"]],
        "parameters": [{"name": "threshold", "type": "number", "default": 0}]})
    assert card.code == 201, card.body
    return user, json.loads(card.body)["id"]


async def drive(users: list[tuple[Api, str]], seconds: float, pause: float,
                runs: Iterator[int]) -> tuple[list[float], collections.Counter[int]]:
    """Each user runs its card with a new threshold (the next of ``runs``, numbered across every call), waits
    ``pause`` and repeats, for ``seconds``."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    deadline = time.monotonic() + seconds

    async def user_loop(api: Api, card_id: str, offset: float) -> None:
        await asyncio.sleep(offset)  # users do not arrive in lockstep
        while time.monotonic() < deadline:
            started = time.perf_counter()
            number = next(runs)  # a threshold among the amounts, never seen before: always a cache miss
            response = await api.call("POST", f"/api/cards/{card_id}/run",
                                      {"parameters": {"threshold": number % 10_000 + number / 10**9}})
            statuses[response.code] += 1
            if response.code == 200:
                assert not json.loads(response.body)["cached"], "expected a cache miss"
                latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(pause)

    await asyncio.gather(*(user_loop(api, card_id, pause * i / len(users))
                           for i, (api, card_id) in enumerate(users)))
    return latencies, statuses


async def measure(counts: list[int], seconds: float, pause: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bi-bench-") as data_dir:
        server, base, token = await start_bi(Path(data_dir))
        try:
            admin = Api(base, token)
            users = [await prepare_user(admin, number) for number in range(max(counts))]
            for _, card_id in users[:1]:  # the first run of a server imports what a run needs
                await users[0][0].call("POST", f"/api/cards/{card_id}/run", {"parameters": {"threshold": -1}})
            print(f"cache-miss card runs on a {ROWS:,}-row dataset, {seconds:g} s per line, {pause:g} s between runs")
            print("users   runs/s      p50 ms    p95 ms    p99 ms   p95/p50   503   other errors   CPU ms/run")
            runs = itertools.count(1)
            for count in counts:
                cpu = tree_cpu_seconds(server.pid)
                latencies, statuses = await drive(users[:count], seconds, pause, runs)
                cpu = tree_cpu_seconds(server.pid) - cpu
                ordered = sorted(latencies)
                p50 = statistics.median(ordered) if ordered else float("nan")
                p95, p99 = (quantile(ordered, 0.95), quantile(ordered, 0.99)) if ordered else (p50, p50)
                others = sum(n for code, n in statuses.items() if code not in (200, 503))
                print(f"{count:5d} {len(ordered) / seconds:8.2f} {p50:11.1f} {p95:9.1f} {p99:9.1f} "
                      f"{p95 / p50:9.2f} {statuses[503]:5d} {others:14d} {1000 * cpu / max(len(ordered), 1):12.0f}")
        finally:
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long each number of users runs")
    parser.add_argument("--users", default="1,4,16", help="comma-separated numbers of users")
    parser.add_argument("--pause", type=float, default=1, help="seconds each user waits between runs")
    args = parser.parse_args()
    asyncio.run(measure([int(n) for n in args.users.split(",")], args.seconds, args.pause))


if __name__ == "__main__":
    sys.exit(main())
