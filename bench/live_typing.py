"""Live output as you type: the card editor's Auto-run, driven with exactly the editor's messages.

Needs root (bi serve's agent sandboxes kernels). Starts ``bi serve`` on a fresh data directory, uploads a
100,000-row dataset and opens a card editor session on it (``/api/cards/scratch/ws``). A typist then
edits a pandas groupby card at 8 characters a second, pausing briefly (``--think``) after each token as
people do; as the editor does, 300 ms after the last keystroke the whole code is sent as an auto-run
(``{"type": "execute", "auto": true}``), which interrupts a run still going. Prints how many auto-runs
were sent, how many were answered as syntax errors without running, started, interrupted and completed,
and p50/p95 from the debounce firing to the updated output (the run's first output, or its end when it
shows nothing), and from the last keystroke (300 ms more). Target: p95 from the debounce < 300 ms.

    python bench/live_typing.py [--rounds 3] [--think 0.6]      (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tornado import httpclient, websocket

from cards import start_bi
from throughput import Api, csv_rows, quantile

ROWS = 100_000
CHARS_PER_SECOND = 8
PAUSE_MS = 300  # the editor's debounce (static/src/cards/auto-run.ts)
START = "df = load_dataset('sales')\ndf.groupby('region').amount.sum()"
TYPED = "\nbig = df[df.amount > 5000]\nbig.groupby('region').amount.agg(['sum', 'mean', 'count'])"


@dataclass
class Run:
    sent: float
    started: bool = False
    updated: float | None = None  # first output, or the end of a run that showed nothing
    status: str | None = None
    error: str | None = None  # the ename of its error output (KeyboardInterrupt: interrupted)


def tokens(text: str) -> list[str]:
    """``text`` cut after each token a typist would pause at (a word, a bracket, a dot, a comma)."""
    return [piece for piece in re.split(r"(?<=[\s.,()\[\]=>])", text) if piece]


async def read(connection: websocket.WebSocketClientConnection, runs: dict[str, Run]) -> None:
    while (frame := await connection.read_message()) is not None:
        message = json.loads(frame)
        run = runs.get(message.get("run_id", ""))
        if run is None:
            continue
        now = time.perf_counter()
        if message["type"] == "status" and message["state"] == "busy":
            run.started = True
        elif message["type"] == "output":
            run.updated = run.updated or now
            if message["output"].get("output_type") == "error":
                run.error = message["output"].get("ename")
        elif message["type"] == "done":
            run.status = message["status"]
            if run.updated is None:
                run.updated = now


async def type_card(connection: websocket.WebSocketClientConnection, runs: dict[str, Run], think: float) -> None:
    """Type ``TYPED`` after ``START``; send an auto-run whenever typing pauses for ``PAUSE_MS``."""
    code, pending = START, None

    async def debounce(snapshot: str) -> None:
        await asyncio.sleep(PAUSE_MS / 1000)
        run_id = f"a{len(runs) + 1}"
        runs[run_id] = Run(time.perf_counter())
        connection.write_message(json.dumps({"type": "execute", "code": snapshot, "run_id": run_id, "auto": True}))

    for piece in tokens(TYPED):
        for char in piece:
            code += char
            if pending is not None:
                pending.cancel()
            pending = asyncio.ensure_future(debounce(code))
            await asyncio.sleep(1 / CHARS_PER_SECOND)
        await asyncio.sleep(think)
    await asyncio.sleep(2)  # the last run ends


async def measure(rounds: int, think: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bi-bench-") as data_dir:
        server, base, token = await start_bi(Path(data_dir))
        try:
            dataset = await Api(base, token).call("POST", "/api/datasets?name=sales", csv_rows(ROWS), "text/csv")
            assert dataset.code == 201, dataset.body
            request = httpclient.HTTPRequest(
                f"{base.replace('http', 'ws')}/api/cards/scratch/ws?datasets={json.loads(dataset.body)['id']}",
                headers={"Authorization": f"Bearer {token}"})
            connection = await websocket.websocket_connect(request)
            runs: dict[str, Run] = {}
            reader = asyncio.ensure_future(read(connection, runs))
            runs["first"] = Run(time.perf_counter())  # the editor's first run (Ctrl+Enter), then Auto-run is on
            connection.write_message(json.dumps({"type": "execute", "code": START, "run_id": "first"}))
            while runs["first"].status is None:
                await asyncio.sleep(0.05)
            del runs["first"]
            for _ in range(rounds):
                await type_card(connection, runs, think)
            reader.cancel()
            connection.close()
        finally:
            server.terminate()
            server.wait()
    statuses = [run.status for run in runs.values()]
    shown = sorted((run.updated - run.sent) * 1000 for run in runs.values()
                   if run.started and run.status == "ok" and run.updated is not None)
    print(f"a typist at {CHARS_PER_SECOND} characters/s ({think:g} s after each token) editing a groupby card "
          f"over {ROWS:,} rows, {rounds} rounds")
    print(f"auto-runs sent {len(runs)}   syntax errors (not run) {statuses.count('syntax_error')}   "
          f"started {sum(run.started for run in runs.values())}   "
          f"interrupted {sum(run.error == 'KeyboardInterrupt' for run in runs.values())}   "
          f"failed otherwise {sum(run.error not in (None, 'KeyboardInterrupt') for run in runs.values())}   "
          f"completed {statuses.count('ok')}   not started (superseded) "
          f"{sum(not run.started and run.status is None for run in runs.values())}")
    if shown:
        print(f"debounce to updated output: p50 {statistics.median(shown):7.1f} ms   p95 {quantile(shown, 0.95):7.1f} ms")
        print(f"last keystroke to output:   p50 {statistics.median(shown) + PAUSE_MS:7.1f} ms   "
              f"p95 {quantile(shown, 0.95) + PAUSE_MS:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="how many times the edit is typed")
    parser.add_argument("--think", type=float, default=0.6, help="seconds the typist pauses after each token")
    args = parser.parse_args()
    asyncio.run(measure(args.rounds, args.think))


if __name__ == "__main__":
    main()
