"""Live dashboards: joining to a full snapshot, and one new output fanned out to many viewers.

Needs root (bi serve's agent sandboxes kernels). Starts ``bi serve`` on a fresh data directory,
creates a dashboard of four cards, runs them once to fill the cache, then prints:
(a) opening ``/api/dashboards/{id}/ws`` to its snapshot (every card's output, from the cache);
(b) an editor's re-run (``POST .../cards/{key}/run``, a cache hit) until the last of N viewers has
    the new output, for N = 1, 10, 100, 300, beside the plain HTTP run alone: what fan-out adds.

    python bench/dashboards.py [--runs 50]      (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from tornado import httpclient, websocket

from cards import percentiles, start_bi, timed

CARDS = [{"key": f"c{n}", "title": f"カード {n}",
          "code": f"import pandas as pd\npd.DataFrame({{'n': range({10 * n})}}).describe()"} for n in range(1, 5)]
DASHBOARD = {"schemaVersion": 1, "title": "bench", "cards": CARDS, "refresh": None,
             "layout": [{"card": c["key"], "x": 0, "y": 4 * i, "w": 12, "h": 4} for i, c in enumerate(CARDS)]}


async def viewer(base: str, token: str, dashboard_id: str) -> websocket.WebSocketClientConnection:
    request = httpclient.HTTPRequest(base.replace("http", "ws") + f"/api/dashboards/{dashboard_id}/ws",
                                     headers={"Authorization": f"Bearer {token}"})
    connection = await websocket.websocket_connect(request)
    assert json.loads(await connection.read_message())["type"] == "snapshot"
    return connection


async def next_output(connection: websocket.WebSocketClientConnection) -> None:
    while json.loads(await connection.read_message())["type"] != "output":
        pass


async def measure(runs: int) -> dict[str, list[float]]:
    server, base, token = await start_bi(Path(tempfile.mkdtemp(prefix="bi-bench-")))
    http = httpclient.AsyncHTTPClient(max_clients=50)
    headers = {"Authorization": f"Bearer {token}"}
    results: dict[str, list[float]] = {}
    try:
        created = await http.fetch(base + "/api/dashboards", method="POST", headers=headers,
                                   body=json.dumps(DASHBOARD))
        dashboard_id = json.loads(created.body)["id"]
        run_url = base + f"/api/dashboards/{dashboard_id}/cards/c1/run"
        for card in CARDS:  # fill the cache
            await http.fetch(base + f"/api/dashboards/{dashboard_id}/cards/{card['key']}/run",
                             method="POST", headers=headers, body="{}")

        async def join() -> None:
            (await viewer(base, token, dashboard_id)).close()

        results["snapshot"] = await timed(runs, join)

        async def rerun() -> None:
            await http.fetch(run_url, method="POST", headers=headers, body="{}")

        results["run alone"] = await timed(runs, rerun)
        for count in (1, 10, 100, 300):
            viewers = [await viewer(base, token, dashboard_id) for _ in range(count)]
            await asyncio.sleep(0.5)
            for connection in viewers:  # presence messages of the joins
                while True:
                    try:
                        await asyncio.wait_for(connection.read_message(), 0.01)
                    except asyncio.TimeoutError:
                        break

            async def fan_out() -> None:
                waiting = [asyncio.ensure_future(next_output(c)) for c in viewers]
                await rerun()
                await asyncio.gather(*waiting)

            results[f"fan-out {count}"] = await timed(max(5, runs // 5), fan_out)
            for connection in viewers:
                connection.close()
    finally:
        server.terminate()
        server.wait()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    results = asyncio.run(measure(parser.parse_args().runs))
    print("(a) join a dashboard of four cards to its snapshot")
    print(f"  websocket connect to snapshot               {percentiles(results['snapshot'])}")
    print("(b) a re-run until every viewer has the new output")
    print(f"  the HTTP run alone (no viewer)              {percentiles(results['run alone'])}")
    for count in (1, 10, 100, 300):
        print(f"  {count:3d} viewers                                {percentiles(results[f'fan-out {count}'])}")


if __name__ == "__main__":
    sys.exit(main())
