"""Kernel start and round-trip latency: our sandboxed pool against a plain jupyter_client kernel.

Needs root (the sandbox). Prints, side by side:
(a) a cold ``jupyter_client`` kernel that imports pandas, numpy, pyarrow and bokeh, to its first
    reply; acquiring a kernel from the warm pool; forking one from the template with the pool empty
    (to its first ``kernel_info`` reply);
(b) ``1+1`` round trips through a sandboxed kernel over ipc, over the agent's unix relay (what
    ``bi serve``'s own agent hands out) and over its TCP relay on 127.0.0.1 (both relays in this
    process), against a bare ``BlockingKernelClient`` on an unsandboxed ipykernel (the floor);
(c) USS and PSS of idle sandboxed kernels (copy-on-write pages shared with the template);
(d) the first ``df.plot()`` of a fresh kernel, from its execute_request to its PNG output, and the
    kernel's USS after it;
(e) what each library costs: importing it in a plain interpreter that has loaded the data stack
    (what every kernel would pay without the template) against importing it in a forked kernel.

Targets: fork to first reply p95 < 100 ms, idle USS < 30 MB, first plot p95 < 300 ms, USS after one
plot < 60 MB.

    python bench/kernels.py [--runs 20]      (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
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
PLOT = "import pandas as pd\npd.DataFrame({'売上': range(100)}).plot(title='月別')"
LIBRARIES = ("matplotlib.pyplot", "scipy.stats", "sklearn.linear_model", "statsmodels.api", "tqdm", "ipywidgets",
             "jupyter_mimetypes")
IMPORT_COST = """
import importlib, sys, time
import numpy, pandas, pyarrow, bokeh.plotting
def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024
before, started = rss(), time.perf_counter()
importlib.import_module(sys.argv[1])
print((time.perf_counter() - started) * 1000, rss() - before)
"""


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


def kernel_pid(reaper_pid: int) -> str:
    return Path(f"/proc/{reaper_pid}/task/{reaper_pid}/children").read_text().split()[0]


def cpu_ms(reaper_pid: int) -> float:
    """CPU time the kernel process has used (user and system), which a loaded machine does not inflate."""
    fields = Path(f"/proc/{kernel_pid(reaper_pid)}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def first_plot_ms(launcher: KernelLauncher, kernel: LaunchedKernel) -> tuple[float, float]:
    """From the execute_request of ``PLOT`` in a fresh kernel to its PNG output, and the kernel's CPU time."""
    client = launcher.client(kernel)
    client.start_channels()
    await client.wait_for_ready(timeout=30)
    shown: list[float] = []
    cpu_before = cpu_ms(kernel.pid)

    def on_output(message: dict) -> None:
        if "image/png" in message["content"].get("data", {}):
            shown.append(time.perf_counter())

    started = time.perf_counter()
    await client.execute_interactive(PLOT, timeout=30, output_hook=on_output)
    client.stop_channels()
    if not shown:
        raise RuntimeError("the plot published no PNG")
    return (shown[0] - started) * 1000, cpu_ms(kernel.pid) - cpu_before


async def kernel_import(launcher: KernelLauncher, kernel: LaunchedKernel, module: str) -> tuple[float, float]:
    """Milliseconds to import ``module`` in a fresh kernel, and the kernel's USS growth (MB) from its
    first cell (which itself costs every kernel the same)."""
    client = launcher.client(kernel)
    client.start_channels()
    await client.wait_for_ready(timeout=30)
    await client.execute_interactive("1", timeout=30, output_hook=quiet)
    before, _ = memory_mb(kernel.pid)
    printed: list[str] = []
    code = f"import time\nstarted = time.perf_counter()\nimport {module}\nprint((time.perf_counter() - started) * 1000)"
    await client.execute_interactive(code, timeout=60, output_hook=lambda m: printed.append(
        m["content"].get("text", "") if m["content"].get("name") == "stdout" else ""))
    client.stop_channels()
    return float("".join(printed).split()[-1]), memory_mb(kernel.pid)[0] - before


def plain_import(module: str) -> tuple[float, float]:
    """Milliseconds and RSS growth (MB) of importing ``module`` in a plain interpreter with the data stack."""
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    printed = subprocess.run([sys.executable, "-c", IMPORT_COST, module], capture_output=True, text=True,
                             check=True, env=env).stdout
    milliseconds, megabytes = printed.split()
    return float(milliseconds), float(megabytes)


def memory_mb(reaper_pid: int) -> tuple[float, float]:
    """USS and PSS of the kernel process (the reaper's child) from smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{kernel_pid(reaper_pid)}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    return fields["Private_Clean"] + fields["Private_Dirty"], fields["Pss"]


async def measure_pool(runs: int) -> dict[str, list[float]]:
    run_dir = Path(tempfile.mkdtemp(prefix="bi-bench-"))
    launcher = KernelLauncher(run_dir, UidAllocator())
    await launcher.start()
    pool = WarmPool(launcher, size=2)
    await pool.start()
    results: dict[str, list[float]] = {"acquire": [], "fork": [], "uss": [], "pss": [], "plot": [], "plot cpu": [], "plot uss": []}
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
        for _ in range(runs):
            kernel = await launcher.launch()
            wall, cpu = await first_plot_ms(launcher, kernel)
            results["plot"].append(wall)
            results["plot cpu"].append(cpu)
            results["plot uss"].append(memory_mb(kernel.pid)[0])
            await launcher.stop(kernel.kernel_id)
        for module in LIBRARIES:
            kernel = await launcher.launch()
            results[module] = list(await kernel_import(launcher, kernel, module))
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
    print("(d) first df.plot() of a fresh kernel")
    print(f"  execute_request to PNG output          {percentiles(ours['plot'])}")
    print(f"  the kernel's CPU time for it           {percentiles(ours['plot cpu'])}")
    print(f"  USS after it p50 {statistics.median(ours['plot uss']):.1f} MB, max {max(ours['plot uss']):.1f} MB")
    print("(e) import of each library: plain interpreter with the data stack | forked kernel (template pre-imported)")
    for module in LIBRARIES:
        plain_ms, plain_mb = plain_import(module)
        kernel_ms, kernel_mb = ours[module]
        print(f"  {module:22s} {plain_ms:7.0f} ms {plain_mb:+7.1f} MB RSS | {kernel_ms:7.1f} ms {kernel_mb:+6.1f} MB USS")


if __name__ == "__main__":
    sys.exit(main())
