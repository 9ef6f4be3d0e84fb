"""Live dashboards at scale: many viewers over several API processes, and opening a 20-card dashboard.

Needs root (the executor agent sandboxes kernels) and Debian's ``redis-server``. Starts ``--servers`` ``bi serve``
processes on the AWS store (a moto server on loopback) with a ``redis-server`` as their bus and one ``bi executor``
(``aws_cluster.py``), creates a dashboard of 20 cards, runs them once to fill the cache, then prints:
(a) opening ``/api/dashboards/{id}/ws`` to its snapshot and the 20 cached outputs that follow it;
(b) for each count of ``--viewers`` (websockets spread over the servers, opened by four client processes of
    ``frame_counter.py``, a raw-socket client that only counts frames): an editor's re-run on the first server
    (``POST .../cards/c1/run``, a cache hit, which publishes the output over the bus) until the last viewer has
    it, p50 / p95 / max over the updates; the run's own HTTP round trip; the CPU per update of every
    ``bi serve`` and the ``redis-server`` (user + system from /proc, divided by the updates), per 1,000
    viewers too, the system part of it (mostly the kernel's socket writes: on loopback the sender's also pays
    for the receiving side's TCP and wake-ups), and the client processes' own CPU per update. The first server
    (which answers the run) is split into its event loop's thread and its other threads (the store's SDK calls).
With ``--notrack`` each viewer count is measured a second time with the servers' loopback packets exempt from
connection tracking (an ``iptables -t raw ... -j CT --notrack`` rule on ``lo`` for the servers' ports only, added
for that pass and removed after it): what netfilter's conntrack, active on hosts with Docker's rules, adds to the
socket writes. With ``--perf FILE`` the second server is also recorded under ``perf`` and the shares of its CPU
in its socket writes, in the receiving side's TCP within them (``net_rx_action``: loopback runs it in the sender's
``sendto``, in its system time) and in netfilter printed.
Beside each count, the floor (``send_floor.py``): one ``send`` of a frame of the same size to each of as many loopback
sockets from a bare Python loop, the writer's CPU per update.
Targets: CPU per update <= 15 ms per 1,000 viewers; 10,000 viewers over 4 processes p95 < 250 ms where the
client leaves the cores free enough to say. A snapshot of 20 cards < 50 ms.

    python bench/dashboards.py [--updates 100] [--servers 4] [--viewers 1000,5000,10000] [--profile DIR]
                               [--strace UPDATES] [--perf FILE] [--notrack]   (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tornado import httpclient, websocket

import frame_counter
import send_floor
from aws_cluster import ADMIN, PASSWORD, Cluster
from cards import login, percentiles, timed

CARDS = [{"key": f"c{n}", "title": f"カード {n}", "code": f"print('売上 {n}', {n} * 1000)"} for n in range(1, 21)]
DASHBOARD = {"schemaVersion": 1, "title": "bench", "cards": CARDS, "refresh": None,
             "layout": [{"card": c["key"], "x": 6 * (i % 2), "y": 4 * (i // 2), "w": 6, "h": 4}
                        for i, c in enumerate(CARDS)]}
CLIENT_PROCESSES = 4
IDLE_SECONDS = 10.0
PERF_UPDATES = 50
# One signed-in user stands for every viewer, from one address: the per-user socket cap (50 by default) and
# the per-address connection cap are raised to the viewer count (measure()).


async def viewer(url: str, token: str) -> websocket.WebSocketClientConnection:
    connection = await websocket.websocket_connect(
        httpclient.HTTPRequest(url, headers={"Authorization": f"Bearer {token}"}))
    assert json.loads(await connection.read_message())["type"] == "snapshot"
    return connection


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def cpu_split(pid: int, thread: int | None = None) -> tuple[float, float]:
    """Seconds of user and of system (kernel) CPU the process has used (every thread, or only ``thread``; in ticks
    of 10 ms)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def untracked(ports: list[int]) -> Iterator[None]:
    """Loopback TCP packets to and from ``ports`` skip netfilter's connection tracking while inside (raw table
    rules, removed on the way out)."""
    rules = [["OUTPUT", "-o", "lo"], ["PREROUTING", "-i", "lo"]]
    match = ["-p", "tcp", "-m", "multiport", "--ports", ",".join(map(str, ports)), "-m", "comment", "--comment",
             "bi-bench-notrack", "-j", "CT", "--notrack"]
    added = []
    try:
        for rule in rules:
            subprocess.run(["iptables", "-t", "raw", "-I", *rule, *match], check=True)
            added.append(rule)
        yield
    finally:
        for rule in added:
            subprocess.run(["iptables", "-t", "raw", "-D", *rule, *match], check=True)


PERF_SHARES = {"__sys_sendto": "the socket writes (sendto)", "net_rx_action": "of which the receiving side's TCP "
               "(net_rx_action: loopback runs it in the sender's sendto)", "nf_hook_slow": "netfilter (conntrack)"}


def perf_shares(data: Path) -> dict[str, float]:
    """The share of ``perf record -g`` samples (in %) under each function of ``PERF_SHARES``."""
    report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--children", "--sort", "symbol",
                             "-g", "none", "--percent-limit", "0.5"], capture_output=True, text=True)
    shares = {}
    for line in report.stdout.splitlines():
        fields = line.split()
        for name in PERF_SHARES:
            if name in fields and fields[0].endswith("%"):
                shares[name] = float(fields[0].rstrip("%"))
    return shares


def spread(viewers: int, servers: int) -> list[int]:
    """How many of ``viewers`` each server gets (frame_counter.run: each client's n-th viewer on server n mod)."""
    on = [0] * servers
    for index in range(CLIENT_PROCESSES):
        for n in range(viewers // CLIENT_PROCESSES + (1 if index < viewers % CLIENT_PROCESSES else 0)):
            on[n % servers] += 1
    return on


def strace(pid: int) -> subprocess.Popen[str]:
    """``strace -c`` on every thread of ``pid`` (its counts come when it is stopped: ``syscalls``)."""
    return subprocess.Popen(["strace", "-c", "-f", "-qq", "-p", str(pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def perf(pid: int, output: Path) -> subprocess.Popen[str]:
    """``perf record`` of ``pid``'s threads with call graphs, kernel included, into ``output`` (until interrupted)."""
    return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p", str(pid), "-o", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


def syscalls(tracer: subprocess.Popen[str]) -> dict[str, int]:
    """Calls per system call name, from the summary ``strace -c`` prints when interrupted."""
    tracer.send_signal(signal.SIGINT)
    calls = {}
    for line in tracer.communicate(timeout=60)[1].splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    return calls


async def fan_out(bases: list[str], token: str, dashboard_id: str, pids: list[int], viewers: int,
                  updates: int, traced_updates: int, perf_file: Path | None, notrack: bool) -> dict[str, Any]:
    urls = ",".join(base.replace("http", "ws") + f"/api/dashboards/{dashboard_id}/ws" for base in bases)
    pipes, processes = [], []
    for index in range(CLIENT_PROCESSES):
        ours, theirs = multiprocessing.Pipe()
        share = viewers // CLIENT_PROCESSES + (1 if index < viewers % CLIENT_PROCESSES else 0)
        process = multiprocessing.Process(target=frame_counter.run, args=(urls, token, share, len(CARDS), theirs))
        process.start()
        pipes.append(ours)
        processes.append(process)
    loop = asyncio.get_running_loop()
    for pipe in pipes:
        assert (await loop.run_in_executor(None, pipe.recv))[0] == "ready"
    await asyncio.sleep(1)  # presence settles
    http = httpclient.AsyncHTTPClient()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    clients = [process.pid for process in processes if process.pid is not None]
    ports = sorted({int(base.rsplit(":", 1)[1]) for base in bases})

    async def update() -> tuple[float, float]:
        """One re-run: its HTTP round trip and the time until the last viewer had its output, in ms."""
        started = time.time()
        await http.fetch(bases[0] + f"/api/dashboards/{dashboard_id}/cards/c1/run", method="POST",
                         headers=headers, body="{}")
        http_ms = (time.time() - started) * 1000
        arrivals = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
        return http_ms, (max(at for _, at in arrivals) - started) * 1000

    idle_before, idle_started = sum(map(cpu_seconds, pids)), time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)  # what the servers spend with no update: presence, schedules, discovery
    idle_rate = (sum(map(cpu_seconds, pids)) - idle_before) / (time.monotonic() - idle_started)

    async def updates_cpu() -> dict[str, Any]:
        """``updates`` updates: their timings, and the CPU per update of each process (ms)."""
        before, client_before = [cpu_split(pid) for pid in pids], sum(map(cpu_seconds, clients))
        main_before, started = cpu_split(pids[0], pids[0]), time.monotonic()
        timings = [await update() for _ in range(updates)]
        after, elapsed = [cpu_split(pid) for pid in pids], time.monotonic() - started
        main = [(a - b) / updates * 1000 for a, b in zip(cpu_split(pids[0], pids[0]), main_before, strict=True)]
        per_process = [((a[0] - b[0]) / updates * 1000, (a[1] - b[1]) / updates * 1000)
                       for a, b in zip(after, before, strict=True)]
        cpu = sum(user + system for user, system in per_process)
        return {"timings": timings, "per process": per_process, "cpu": cpu, "main thread": tuple(main),
                "net cpu": cpu - idle_rate * elapsed / updates * 1000,
                "system cpu": sum(system for _, system in per_process),
                "client cpu": (sum(map(cpu_seconds, clients)) - client_before) / updates * 1000}

    measured = await updates_cpu()
    untracked_run = None
    if notrack:
        with untracked(ports):
            untracked_run = await updates_cpu()
    calls: dict[str, int] = {}
    shares: dict[str, float] = {}
    if traced_updates:  # after the measured updates: strace slows the process it traces
        tracer = strace(pids[min(1, len(bases) - 1)])
        await asyncio.sleep(1)  # attached to every thread
        for _ in range(traced_updates):
            await update()
        calls = syscalls(tracer)
    if perf_file is not None:
        recorder = perf(pids[min(1, len(bases) - 1)], perf_file.with_suffix(f".{viewers}.data"))
        await asyncio.sleep(1)
        for _ in range(PERF_UPDATES):
            await update()
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
        shares = perf_shares(perf_file.with_suffix(f".{viewers}.data"))
    for pipe in pipes:
        pipe.send("stop")
    for process in processes:
        process.join(30)
    return {**measured, "idle": idle_rate * 1000, "syscalls": calls, "untracked": untracked_run,
            "perf shares": shares, "tick": len(pids) * 2 / os.sysconf("SC_CLK_TCK") / updates * 1000}


async def measure(updates: int, servers: int, counts: list[int], profile: Path | None = None,
                  traced_updates: int = 0, perf_file: Path | None = None, notrack: bool = False) -> dict[str, Any]:
    flags = (f"--ServeApp.max_sockets_per_user={max(counts) + 10}",
             f"--ServeApp.max_connections_per_client={max(counts) + 100}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bi-bench-") as folder, \
            Cluster(Path(folder), servers=servers, redis=True, flags=flags, profile=profile) as cluster:
        bases = cluster.urls
        token = await login(bases[0], ADMIN, PASSWORD)
        http = httpclient.AsyncHTTPClient()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        created = await http.fetch(bases[0] + "/api/dashboards", method="POST", headers=headers,
                                   body=json.dumps(DASHBOARD))
        dashboard_id = json.loads(created.body)["id"]
        for card in CARDS:  # fill the cache
            ran = await http.fetch(bases[0] + f"/api/dashboards/{dashboard_id}/cards/{card['key']}/run",
                                   method="POST", headers=headers, body="{}", request_timeout=120)
            if card["key"] == "c1":  # its output message: the result behind a short head, framed
                size = len(ran.body) + len(b'{"type":"output","card":"c1","seq":100,"result":}') + 4
        url = bases[0].replace("http", "ws") + f"/api/dashboards/{dashboard_id}/ws"

        async def join() -> None:
            """To the snapshot and the outputs that follow it, one per card."""
            connection = await viewer(url, token)
            outputs = 0
            while outputs < len(CARDS):
                outputs += json.loads(await connection.read_message())["type"] == "output"
            connection.close()

        results["snapshot"] = await timed(50, join)
        for count in counts:
            results[f"{count}"] = await fan_out(bases, token, dashboard_id, cluster.pids, count, updates,
                                                traced_updates, perf_file, notrack)
            results[f"{count}"]["floor"] = (send_floor.floor(count, updates, size), size)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100, help="updates measured per viewer count (CPU is "
                        "counted in ticks of 10 ms per process: at 100 updates at most 0.2 ms per update each)")
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--viewers", default="1000,5000,10000", help="comma-separated viewer counts")
    parser.add_argument("--profile", type=Path, help="folder for a cProfile of each bi serve (serve<n>.prof)")
    parser.add_argument("--strace", type=int, default=0, metavar="UPDATES",
                        help="after the measured updates, this many more under strace -c on the second bi serve "
                             "(fan-out only): its system calls per socket per update")
    parser.add_argument("--perf", type=Path, metavar="FILE", help=f"after those, {PERF_UPDATES} more updates under "
                        "perf record -g on the same bi serve: FILE.<viewers>.data for perf report")
    parser.add_argument("--notrack", action="store_true", help="measure each viewer count again with the servers' "
                        "loopback packets exempt from conntrack (iptables raw rules, removed after)")
    args = parser.parse_args()
    counts = [int(n) for n in args.viewers.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # sockets for every viewer, both ends
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * max(counts) + 1024)), hard))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    results = asyncio.run(measure(args.updates, args.servers, counts, args.profile, args.strace, args.perf,
                                  args.notrack))
    print(f"{args.servers} bi serve processes on moto, one redis-server; load average (1, 5, 15 min) "
          f"{' '.join(f'{n:.2f}' for n in load_before)} before, {' '.join(f'{n:.2f}' for n in os.getloadavg())} "
          f"after, on {os.cpu_count()} cores")
    print("(a) open a 20-card dashboard: websocket connect to its snapshot and outputs (target < 50 ms)")
    print(f"  snapshot                                    {percentiles(results['snapshot'])}")
    print("(b) a re-run until the last viewer has its output (target: CPU <= 15 ms per update per 1,000 viewers)")
    names = [f"serve{n}" for n in range(args.servers)] + ["redis"]
    for count in counts:
        run = results[f"{count}"]
        per = 1000 / count
        timings = run["timings"]
        print(f"  {count:5d} viewers, to the last one            {percentiles([last for _, last in timings])}"
              f"   max {max(last for _, last in timings):7.2f} ms")
        print(f"        the run's HTTP round trip             {percentiles([http for http, _ in timings])}")
        print_cpu(run, per, names, run["idle"], run["tick"])
        (user, system), size = run["floor"]
        print(f"        the floor: a bare send of {size} B to each of {count} loopback sockets {user + system:8.2f} ms"
              f"   ({(user + system) * per:.2f} ms per 1,000 viewers; user {user * per:.2f}, system {system * per:.2f})")
        if run["untracked"] is not None:
            print("      again without conntrack for the servers' ports (--notrack):")
            print_cpu(run["untracked"], per, names, run["idle"], run["tick"])
        if run["perf shares"]:
            print(f"        serve{min(1, args.servers - 1)}'s CPU under perf: " + ", ".join(
                f"{PERF_SHARES[name]} {share:.1f}%" for name, share in run["perf shares"].items()))
        if run["syscalls"]:
            traced = spread(count, args.servers)[min(1, args.servers - 1)] * args.strace
            top = sorted(run["syscalls"].items(), key=lambda item: -item[1])[:6]
            print(f"        system calls per socket per update on serve{min(1, args.servers - 1)} "
                  f"({args.strace} updates): " + ", ".join(f"{name} {calls / traced:.3f}" for name, calls in top))


def print_cpu(run: dict[str, Any], per: float, names: list[str], idle: float, tick: float) -> None:
    print(f"        CPU per update (bi serve + redis)     {run['cpu']:8.2f} ms"
          f"   ({run['cpu'] * per:.2f} ms per 1,000 viewers, +- {tick * per:.2f} for the ticks)")
    print(f"        of which beyond idle (idle {idle:.0f} ms/s) {run['net cpu']:8.2f} ms"
          f"   ({run['net cpu'] * per:.2f} ms per 1,000 viewers)")
    print(f"        of which system (mostly socket writes) {run['system cpu']:11.2f} ms"
          f"   ({run['system cpu'] * per:.2f} ms per 1,000 viewers)")
    print("        each process, user/system per update: " + ", ".join(
        f"{name} {user:.1f}/{system:.1f}" for name, (user, system) in zip(names, run["per process"], strict=True)) + " ms")
    (user, system), main = run["per process"][0], run["main thread"]
    print(f"        {names[0]}'s event loop thread {main[0]:.1f}/{main[1]:.1f} ms, its other threads (store SDK calls) "
          f"{user - main[0]:.1f}/{system - main[1]:.1f} ms")
    print(f"        the client processes' CPU per update  {run['client cpu']:8.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
