"""What a large dataset costs a card run beyond the card's own work: cache-miss runs on 3 million rows.

Needs root (bi serve's agent sandboxes kernels). Starts ``bi serve`` on a fresh data directory, uploads a
3,000,000-row CSV (about 80 MB) and a card that loads it, then runs the card in sequence with a new
parameter each time (a cache miss: a fresh kernel that gets the dataset placed, runs, and is destroyed).
Prints, per run, how the dataset reached the kernel and the bytes copied (from the server's
``bi_datasets_placed`` and ``bi_dataset_bytes_copied`` counters), ``load_dataset``'s own time (timed by
the card), the kernel-reported execution time, p50/p95 of the API round trip minus that execution time
(what placement, kernel hand-out and teardown add; target < 50 ms p95), and whether the kernel was the
agent's spare, connected ahead of need, or a fresh one (``bi_kernels_handed_out``). Beside it, the baseline:
the bytes a copy of the dataset per run moved before datasets were placed in place.

    python bench/dataset_load.py [--runs 20] [--rows 3000000]      (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cards import start_bi
from throughput import Api, quantile

CARD = ("import time\n"
        "started = time.perf_counter()\n"
        "df = load_dataset('sales')\n"
        "print(f'load_dataset_ms={(time.perf_counter() - started) * 1000:.1f}')\n"
        "df[df.amount > threshold].groupby('region').amount.agg(['sum', 'count'])")
def csv_rows(rows: int) -> bytes:
    """About 26 bytes a row: a region, an amount, a day and a customer number that compresses poorly."""
    lines = ["region,amount,day,customer"] + [
        f"r{i % 17},{(i * 7919) % 10_000},2026-01-{i % 28 + 1:02d},{(i * 2654435761) % 10**7}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


SAMPLE = re.compile(r'^(bi_datasets_placed_total|bi_dataset_bytes_copied_total)\{mechanism="(\w+)"\} (\S+)$', re.M)
ACQUIRE = re.compile(r"^bi_kernel_acquire_seconds_sum (\S+)$", re.M)
HANDED_OUT = re.compile(r'^bi_kernels_handed_out_total\{source="(\w+)"\} (\S+)$', re.M)


async def placements(api: Api, scrape_token: str) -> dict[tuple[str, str], float]:
    """The server's placement counters, {(counter, mechanism): value}, ("acquire", "") its seconds spent
    getting kernels ready (agent call, dataset placement, first reply) and ("handed_out", source) its kernels
    handed out, by source (a spare connected ahead of need, or fresh)."""
    response = await api.http.fetch(api.base + "/metrics", headers={"Authorization": f"Bearer {scrape_token}"})
    text = response.body.decode()
    counters = {(name, mechanism): float(value) for name, mechanism, value in SAMPLE.findall(text)}
    handed_out = {("handed_out", source): float(value) for source, value in HANDED_OUT.findall(text)}
    return {**counters, **handed_out, ("acquire", ""): float(ACQUIRE.search(text).group(1))}


async def measure(runs: int, rows: int) -> None:
    scrape_token = secrets.token_urlsafe(16)
    os.environ["BI_METRICS_TOKEN"] = scrape_token  # start_bi hands its environment to bi serve
    with tempfile.TemporaryDirectory(prefix="bi-bench-") as data_dir:
        server, base, token = await start_bi(Path(data_dir))
        try:
            api = Api(base, token)
            csv = csv_rows(rows)
            started = time.perf_counter()
            dataset = await api.call("POST", "/api/datasets?name=sales", csv, "text/csv")
            assert dataset.code == 201, dataset.body
            upload_s = time.perf_counter() - started
            parquet_bytes = sum(f.stat().st_size for f in (Path(data_dir) / "blobs" / "datasets").rglob("*.parquet"))
            card = await api.call("POST", "/api/cards", {
                "title": "big", "code": CARD, "datasets": [json.loads(dataset.body)["id"]],
                "parameters": [{"name": "threshold", "type": "number", "default": 0}]})
            assert card.code == 201, card.body
            url = f"/api/cards/{json.loads(card.body)['id']}/run"
            await api.call("POST", url, {"parameters": {"threshold": -1}})  # the first run imports what runs need
            print(f"{rows:,} rows: {len(csv) / 1e6:.1f} MB CSV uploaded in {upload_s:.1f} s, "
                  f"{parquet_bytes / 1e6:.1f} MB Parquet stored")
            print("run   mechanism   bytes copied   load_dataset ms   execution ms   round trip ms   overhead ms"
                  "   of which kernel hand-out ms   kernel")
            overheads, loads = [], []
            for number in range(1, runs + 1):
                before = await placements(api, scrape_token)
                started = time.perf_counter()
                response = await api.call("POST", url, {"parameters": {"threshold": number}})
                round_trip = (time.perf_counter() - started) * 1000
                assert response.code == 200, response.body
                result = json.loads(response.body)
                assert not result["cached"], "expected a cache miss"
                after = await placements(api, scrape_token)
                moved = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
                mechanism = ",".join(m for (name, m) in moved if name == "bi_datasets_placed_total")
                copied = sum(n for (name, _), n in moved.items() if name == "bi_dataset_bytes_copied_total")
                text = json.dumps(result["outputs"])
                load_ms = float(re.search(r"load_dataset_ms=([0-9.]+)", text).group(1))
                execution = result["execution_time_ms"]
                overheads.append(round_trip - execution)
                loads.append(load_ms)
                hand_out = 1000 * moved.get(("acquire", ""), 0)
                source = ",".join(source for (name, source) in moved if name == "handed_out")
                print(f"{number:3d}   {mechanism:<9} {copied:14,.0f} {load_ms:17.1f} {execution:14.1f} "
                      f"{round_trip:15.1f} {round_trip - execution:13.1f} {hand_out:28.1f}   {source}")
            ordered = sorted(overheads)
            print(f"round trip - kernel execution: p50 {statistics.median(ordered):.1f} ms, "
                  f"p95 {quantile(ordered, 0.95):.1f} ms (target < 50 ms p95)")
            print(f"load_dataset: p50 {statistics.median(loads):.1f} ms, p95 {quantile(sorted(loads), 0.95):.1f} ms")
            print(f"baseline (a copy per run, as before): {parquet_bytes:,} bytes copied per run")
        finally:
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="cache-miss runs, one after another")
    parser.add_argument("--rows", type=int, default=3_000_000, help="rows of the dataset")
    args = parser.parse_args()
    asyncio.run(measure(args.runs, args.rows))


if __name__ == "__main__":
    sys.exit(main())
