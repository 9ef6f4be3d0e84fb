"""CSV import throughput: our server's upload API against pandas and pyarrow on the same file.

Generates a CSV (default 50 MB, CP932, mixed types and Japanese text), starts
``bi serve`` on a free loopback port with a throwaway data dir, uploads the
file through ``POST /api/datasets`` and times it end to end (upload, decode,
parse, Parquet, store). Then times, on the same file, ``pandas.read_csv`` +
``to_parquet`` and ``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table``.
The three run in turn, round after round (the machine's load then weighs on each alike). Prints
MB/s of each, the ratios (of the best runs, the median of the rounds', and of CPU seconds), and the
peak memory during each upload (after a 1 MB warm-up upload, so one-time initialisation is not
counted): the server's RSS, and the sum of
the unique set sizes (USS: private pages) of the server and every process it starts (its
executor agent and kernels), sampled every 250 ms (reading
smaps_rollup holds each process's memory map lock: sampling every 20 ms made the upload it
measured twice as slow). Also the CPU seconds of each (the server's own and its ended children's, for an
upload): on a shared machine the wall clock swings with the load, the CPU time much less.

    python bench/csv_import.py [--size-mb 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
STORES = ["東京本店", "大阪支店", "名古屋営業所", "福岡店", "札幌店", "横浜ベイサイド店"]
PRODUCTS = ["りんご", "みかん", "ぶどう", "もも", "メロン", "いちご", "①特選品", "ｶﾀｶﾅ商品"]


def make_csv(path: Path, size_mb: int) -> None:
    """Write a CP932 CSV of about ``size_mb`` MB: ints, floats, dates, booleans, Japanese text."""
    rng = random.Random(7)
    target = size_mb * 1024 * 1024
    with path.open("w", encoding="cp932", newline="") as out:
        out.write("id,日付,店舗,商品,数量,単価,売上,割引,備考\n")
        row = 0
        while out.tell() < target:
            lines = []
            for _ in range(10_000):
                row += 1
                qty = rng.randint(1, 50)
                price = round(rng.uniform(50, 5000), 2)
                lines.append(
                    f"{row},2024/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d},{rng.choice(STORES)},"
                    f"{rng.choice(PRODUCTS)},{qty},{price},{round(qty * price, 2)},"
                    f"{'true' if rng.random() < 0.2 else 'false'},"
                    f"{'在庫あり' if rng.random() < 0.5 else '取り寄せ（約' + str(rng.randint(2, 9)) + '日）'}\n")
            out.write("".join(lines))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=1 << 20)  # not 8 KB sends
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else {}


def proc_status(pid: int, field: str) -> int:
    """A memory figure of a process in bytes, from /proc/PID/status (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """The CPU time of a process and of its children it has waited for, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def tree(root: int) -> list[int]:
    """``root`` and every process under it now."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue  # ended meanwhile
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def uss(pid: int) -> int:
    """The private (unique) bytes of a process, from /proc/PID/smaps_rollup; 0 once it has ended."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) * 1024 for line in lines if line.startswith(("Private_Clean:", "Private_Dirty:")))


class TreeUss:
    """The peak of the summed USS of a process tree, sampled on a thread until ``stop`` (not too often: see above)."""

    def __init__(self, root: int, interval: float = 0.25):
        self.root, self.interval = root, interval
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def current(self) -> int:
        return sum(uss(pid) for pid in tree(self.root))

    def start(self) -> TreeUss:
        self.peak = self.current()
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, self.current())

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


class BIServer:
    def __init__(self, data_dir: Path):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BI_") and k != "JWT_SECRET_KEY"}
        env.update(BI_ADMIN_EMAIL="bench@example.com", BI_ADMIN_PASSWORD="bench password 1",
                   PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--data-dir", str(data_dir),
             "--log-level=WARN"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180  # the executor agent fills its warm pool first: slow on a busy machine
        while time.monotonic() < deadline:
            try:
                if call(self.port, "GET", "/api/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        _, body = call(self.port, "POST", "/api/auth/login",
                       json.dumps({"email": "bench@example.com", "password": "bench password 1"}),
                       {"Content-Type": "application/json"})
        self.token = body["access_token"]

    def upload(self, path: Path, name: str) -> tuple[float, int, int, int, int, float]:
        """Seconds for one upload, the server's RSS before it and its peak RSS during it, the summed USS
        of the server and its processes before and at their peak, and the server's CPU seconds."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        before = proc_status(self.proc.pid, "VmRSS")
        sampler = TreeUss(self.proc.pid)
        uss_before = sampler.current()
        sampler.start()
        started, cpu_before = time.perf_counter(), cpu_seconds(self.proc.pid)
        with path.open("rb") as body:
            status, result = call(self.port, "POST", f"/api/datasets?name={name}", body, {
                "Authorization": f"Bearer {self.token}", "Content-Type": "text/csv",
                "Content-Length": str(path.stat().st_size)})
        seconds, cpu = time.perf_counter() - started, cpu_seconds(self.proc.pid) - cpu_before
        uss_peak = sampler.stop()
        if status != 201:
            raise SystemExit(f"upload failed: {status} {result}")
        return seconds, before, proc_status(self.proc.pid, "VmHWM"), uss_before, uss_peak, cpu

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def with_pandas(source: Path, target: Path) -> None:
    import pandas as pd

    pd.read_csv(source, encoding="cp932").to_parquet(target)


def with_pyarrow(source: Path, target: Path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(pacsv.read_csv(source, read_options=pacsv.ReadOptions(encoding="cp932")), target)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[Path, Path], None], source: Path, target: Path) -> tuple[float, float]:
    started, cpu = time.perf_counter(), own_cpu()
    fn(source, target)
    return time.perf_counter() - started, own_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the three, one after another")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        source = tmp_path / "sales.csv"
        make_csv(source, args.size_mb)
        mb = source.stat().st_size / 1e6
        server = BIServer(tmp_path / "data")
        warm_up = tmp_path / "warm_up.csv"
        make_csv(warm_up, 1)
        try:
            server.upload(warm_up, "warm_up")
            for method in (with_pyarrow, with_pandas):  # their imports are not counted either
                method(warm_up, tmp_path / "warm_up.parquet")
            uploads, arrow, pandas = [], [], []
            for number in range(args.repeat):  # interleaved: each round meets the machine's load of its moment
                uploads.append(server.upload(source, f"sales{number}"))
                arrow.append(timed(with_pyarrow, source, tmp_path / "pa.parquet"))
                pandas.append(timed(with_pandas, source, tmp_path / "pd.parquet"))
        finally:
            server.stop()
    ours = [(u[0], u[5]) for u in uploads]
    print(f"file: {mb:.1f} MB CP932 CSV, {args.repeat} interleaved rounds (best of them)")
    print(f"{'method':<40}{'seconds':>9}{'MB/s':>9}{'CPU s':>9}   per round: seconds / CPU s")
    for label, runs in [("bi server upload (HTTP -> Parquet stored)", ours),
                        ("pyarrow read_csv + write_table", arrow), ("pandas read_csv + to_parquet", pandas)]:
        seconds, cpu = min(s for s, _ in runs), min(c for _, c in runs)
        rounds = "  ".join(f"{s:.2f}/{c:.2f}" for s, c in runs)
        print(f"{label:<40}{seconds:>9.2f}{mb / seconds:>9.1f}{cpu:>9.2f}   {rounds}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, runs, target in [("pyarrow", arrow, 1.0), ("pandas", pandas, 1.5)]:
        best = min(s for s, _ in runs) / min(s for s, _ in ours)
        per_round = sorted(theirs[0] / mine[0] for theirs, mine in zip(runs, ours, strict=True))
        cpu = min(c for _, c in runs) / min(c for _, c in ours)
        print(f"ratio to {name + ':':<9} {best:.2f}x best, {per_round[len(per_round) // 2]:.2f}x median of rounds, "
              f"{cpu:.2f}x in CPU seconds (target >= {target}x)")
    for number, (_, before, peak, uss_before, uss_peak, _) in enumerate(uploads, 1):
        print(f"upload {number}: server RSS {before / 1e6:.0f} MB before, peak {peak / 1e6:.0f} MB "
              f"(+{(peak - before) / 1e6:.0f} MB); USS of the server and its processes {uss_before / 1e6:.0f} MB "
              f"before, peak {uss_peak / 1e6:.0f} MB (+{(uss_peak - uss_before) / 1e6:.0f} MB); "
              f"file x 3 = {3 * mb:.0f} MB")


if __name__ == "__main__":
    main()
