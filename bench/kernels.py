"""Kernel start and round-trip latency: our sandboxed pool against a plain jupyter_client kernel.

Needs root (the sandbox). Prints, side by side:
(a) a cold ``jupyter_client`` kernel that imports pandas, numpy, pyarrow and bokeh, to its first
    reply; acquiring a kernel from the warm pool; forking one from the template with the pool empty
    (to its first ``kernel_info`` reply);
(b) ``1+1`` round trips through a sandboxed kernel over ipc, over the agent's unix relay (what
    ``bi serve``'s own agent hands out) and over its TCP relay on 127.0.0.1 (both relays in this
    process), against a bare ``BlockingKernelClient`` on an unsandboxed ipykernel (the floor);
(c) USS and PSS of idle sandboxed kernels (copy-on-write pages shared with the template).

    python bench/kernels.py [--runs 20]      (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

# This file is named like the ``kernels`` package: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from kernels.launcher import KernelLauncher, LaunchedKernel
from kernels.pool import WarmPool
from kernels.relay import KernelRelay, TcpListeners, UnixListeners
from kernels.sandbox import UidAllocator

STACK = "import pandas, numpy, pyarrow, bokeh.plotting"


def quiet(message: dict) -> None:
    """An output hook that drops outputs (the default one prints them)."""


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):8.2f} ms   p95 {p95:8.2f} ms   (n={len(ordered)})"


def cold_start_ms(runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        manager, client = start_new_kernel(kernel_name="python3", stderr=subprocess.DEVNULL)
        client.execute_interactive(STACK, timeout=60, output_hook=quiet)
        samples.append((time.perf_counter() - started) * 1000)
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return samples


def floor_round_trip_ms(runs: int) -> list[float]:
    manager, client = start_new_kernel(kernel_name="python3", stderr=subprocess.DEVNULL)
    try:
        client.execute_interactive("1+1", timeout=10, output_hook=quiet)
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            client.execute_interactive("1+1", timeout=10, output_hook=quiet)
            samples.append((time.perf_counter() - started) * 1000)
        return samples
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


async def first_reply_ms(launcher: KernelLauncher, kernel: LaunchedKernel, started: float) -> float:
    client = launcher.client(kernel)
    client.start_channels()
    client.kernel_info()
    await client.get_shell_msg(timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    client.stop_channels()
    return elapsed


async def pool_round_trip_ms(launcher: KernelLauncher, kernel: LaunchedKernel, runs: int) -> list[float]:
    client = launcher.client(kernel)
    client.start_channels()
    await client.wait_for_ready(timeout=30)
    await client.execute_interactive("1+1", timeout=10, output_hook=quiet)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await client.execute_interactive("1+1", timeout=10, output_hook=quiet)
        samples.append((time.perf_counter() - started) * 1000)
    client.stop_channels()
    return samples


def memory_mb(reaper_pid: int) -> tuple[float, float]:
    """USS and PSS of the kernel process (the reaper's child) from smaps_rollup."""
    children = Path(f"/proc/{reaper_pid}/task/{reaper_pid}/children").read_text().split()
    fields = {}
    for line in Path(f"/proc/{children[0]}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    return fields["Private_Clean"] + fields["Private_Dirty"], fields["Pss"]


async def measure_pool(runs: int) -> dict[str, list[float]]:
    run_dir = Path(tempfile.mkdtemp(prefix="bi-bench-"))
    launcher = KernelLauncher(run_dir, UidAllocator())
    await launcher.start()
    pool = WarmPool(launcher, size=2)
    await pool.start()
    results: dict[str, list[float]] = {"acquire": [], "fork": [], "uss": [], "pss": []}
    try:
        for _ in range(runs):
            while pool.ready < pool.size:
                await asyncio.sleep(0.01)
            started = time.perf_counter()
            kernel = await pool.acquire()
            results["acquire"].append((time.perf_counter() - started) * 1000)
            await launcher.stop(kernel.kernel_id)
        for _ in range(runs):
            started = time.perf_counter()
            kernel = await launcher.launch()
            results["fork"].append(await first_reply_ms(launcher, kernel, started))
            uss, pss = memory_mb(kernel.pid)
            results["uss"].append(uss)
            results["pss"].append(pss)
            await launcher.stop(kernel.kernel_id)
        kernel = await launcher.launch()
        results["round trip"] = await pool_round_trip_ms(launcher, kernel, runs * 5)
        unix = UnixListeners(run_dir / "relay")
        unix.prepare()
        for name, listeners in (("unix relay", unix), ("tcp relay", TcpListeners("127.0.0.1", "127.0.0.1"))):
            relay = KernelRelay(kernel.connection, listeners)
            relayed = dataclasses.replace(kernel, connection=await relay.start())
            results[name] = await pool_round_trip_ms(launcher, relayed, runs * 5)
            await relay.close()
    finally:
        await pool.close()
        await launcher.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    ours = asyncio.run(measure_pool(args.runs))
    cold = cold_start_ms(max(3, args.runs // 5))
    floor = floor_round_trip_ms(args.runs * 5)
    print("(a) to a kernel that has pandas, numpy, pyarrow and bokeh loaded")
    print(f"  cold jupyter_client start + imports   {percentiles(cold)}")
    print(f"  acquire from the warm pool             {percentiles(ours['acquire'])}")
    print(f"  fork from the template, first reply    {percentiles(ours['fork'])}")
    print("(b) 1+1 round trip")
    print(f"  bare ipykernel (floor)                 {percentiles(floor)}")
    print(f"  sandboxed kernel over ipc              {percentiles(ours['round trip'])}")
    print(f"  the same over a unix relay (bi serve)  {percentiles(ours['unix relay'])}")
    print(f"  the same over the TCP relay            {percentiles(ours['tcp relay'])}")
    print(f"  ratio p50 ours / floor: {statistics.median(ours['round trip']) / statistics.median(floor):.2f}x")
    print("(c) idle sandboxed kernel memory")
    print(f"  USS p50 {statistics.median(ours['uss']):.1f} MB, PSS p50 {statistics.median(ours['pss']):.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
