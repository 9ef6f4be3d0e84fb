"""CSV import throughput: our server's upload API against pandas and pyarrow on the same file.

Generates a CSV (default 50 MB, CP932, mixed types and Japanese text), starts
``bi serve`` on a free loopback port with a throwaway data dir, uploads the
file through ``POST /api/datasets`` and times it end to end (upload, decode,
parse, Parquet, store). Then times, on the same file, ``pandas.read_csv`` +
``to_parquet`` and ``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table``.
Prints MB/s of each, the ratios, and the server's peak memory during each upload
(after a 1 MB warm-up upload, so one-time initialisation is not counted).

    python bench/csv_import.py [--size-mb 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

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
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
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


class BIServer:
    def __init__(self, data_dir: Path):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BI_") and k != "JWT_SECRET_KEY"}
        env.update(BI_ADMIN_EMAIL="bench@example.com", BI_ADMIN_PASSWORD="bench password 1",
                   PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--data-dir", str(data_dir),
             "--log-level=WARN"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                if call(self.port, "GET", "/api/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        _, body = call(self.port, "POST", "/api/auth/login",
                       json.dumps({"email": "bench@example.com", "password": "bench password 1"}),
                       {"Content-Type": "application/json"})
        self.token = body["access_token"]

    def upload(self, path: Path, name: str) -> tuple[float, int, int]:
        """Seconds for one upload, the server's RSS before it and its peak RSS during it."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        before = proc_status(self.proc.pid, "VmRSS")
        started = time.perf_counter()
        with path.open("rb") as body:
            status, result = call(self.port, "POST", f"/api/datasets?name={name}", body, {
                "Authorization": f"Bearer {self.token}", "Content-Type": "text/csv",
                "Content-Length": str(path.stat().st_size)})
        seconds = time.perf_counter() - started
        if status != 201:
            raise SystemExit(f"upload failed: {status} {result}")
        return seconds, before, proc_status(self.proc.pid, "VmHWM")

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


def best_of(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def timed(fn: Callable[[Path, Path], None], source: Path, target: Path) -> float:
    started = time.perf_counter()
    fn(source, target)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
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
            uploads = [server.upload(source, f"sales{i}") for i in range(args.repeat)]
        finally:
            server.stop()
        ours = min(u[0] for u in uploads)
        pandas_s = best_of(args.repeat, lambda: timed(with_pandas, source, tmp_path / "pd.parquet"))
        arrow_s = best_of(args.repeat, lambda: timed(with_pyarrow, source, tmp_path / "pa.parquet"))
    print(f"file: {mb:.1f} MB CP932 CSV, best of {args.repeat}")
    print(f"{'method':<40}{'seconds':>9}{'MB/s':>9}")
    for label, seconds in [("bi server upload (HTTP -> Parquet stored)", ours),
                           ("pyarrow read_csv + write_table", arrow_s),
                           ("pandas read_csv + to_parquet", pandas_s)]:
        print(f"{label:<40}{seconds:>9.2f}{mb / seconds:>9.1f}")
    print(f"ratio to pyarrow: {arrow_s / ours:.2f}x (target >= 0.7x)")
    print(f"ratio to pandas:  {pandas_s / ours:.2f}x (target >= 2x)")
    for number, (_, before, peak) in enumerate(uploads, 1):
        print(f"server RSS upload {number}: {before / 1e6:.0f} MB before, peak {peak / 1e6:.0f} MB during "
              f"(+{(peak - before) / 1e6:.0f} MB); file x 3 = {3 * mb:.0f} MB")


if __name__ == "__main__":
    main()
