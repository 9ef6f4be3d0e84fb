"""Resource attacks on a real ``bi serve``: what each costs the server and its agent, and whether they survive.

Needs root (bi serve's agent sandboxes kernels). Starts ``bi serve`` (embedded store, its local
executor agent) on a free loopback port with a fresh data directory, signs in as the admin from
``data/initial_admin_password``, then runs each attack of issue 13, one after the other, and prints
for each:

- peak: the growth of ``VmHWM`` of the ``bi serve`` process plus that of its agent over the attack
  (both reset by writing ``5`` to ``/proc/PID/clear_refs`` before it), and kept: their RSS after the
  attack (its sessions and kernels closed) less their RSS before it. The server runs with glibc's
  mmap threshold fixed at 64 KiB, so that what one attack freed goes back to the system instead of
  staying in the heap, where the next attack would reuse it unseen;
- disk: the growth of the data directory (blocks allocated), and the files added there and in the
  agent's run directory (the kernels' ipc directories), at their most during the attack;
- 5xx: the responses of 500 or more the attack got;
- up: ``GET /api/health`` (within 30 s) and a normal card run answer after the attack. A server that
  does not is reported "DOWN", stopped, and started afresh for the next attack; so is one that kept
  100 MB or more, so that no attack is measured on what an earlier one left behind.

Targets: every attack < 100 MB of peak memory, no 5xx, up; disk < 100 MB (the storage flood: under
the user's 1 GiB quota). Every call has a timeout and every attack a time bound; the whole run takes
about five minutes on 2 cores. Everything goes to 127.0.0.1 only. The last line is JSON:
``{attack: {"peak_mb", "disk_mb", "status_5xx", "up"}}``.

    python bench/abuse.py [--only NAME ...]      (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self

from tornado import httpclient, websocket

ROOT = Path(__file__).resolve().parents[1]
PEAK_TARGET_MB = 100
DISK_TARGET_MB = 100
QUOTA_MB = 1024  # a user's output store quota (issue 13, 2c): what one run may fill at most
HALF_SENT = 3000  # half-sent requests held open at once (2 cores: about 2 s to open them all)
HTTP_TIMEOUT = 60.0
MMAP_THRESHOLD = 64 * 1024  # glibc: larger blocks are mapped, and unmapped when freed (module docstring)


# the server ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def status_kb(pid: int, field: str) -> int:
    """``VmHWM`` or ``VmRSS`` of ``pid`` in kB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_bytes(path: Path) -> tuple[int, int]:
    """Bytes allocated under ``path`` and how many entries it holds."""
    allocated = entries = 0
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            entries += 1
            with contextlib.suppress(OSError):
                allocated += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return allocated, entries


class Server:
    """``bi serve`` in a subprocess with its data in a temporary directory, signed in as the admin."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=workdir))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.agent = 0
        self.run_dir: Path | None = None
        self.token = ""

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BI_") and k != "JWT_SECRET_KEY"}
        env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
        with open(self.log_path, "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", f"--port={self.port}", f"--data-dir={self.data_dir}",
                 "--KernelPool.sessions_per_user=100"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self.proc = self.spawn()
        deadline = time.monotonic() + 120
        while not await self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bi serve did not start; its log: {self.log_path}")
            await asyncio.sleep(0.3)
        password = (self.data_dir / "initial_admin_password").read_text().strip()
        status, body = await self.call("POST", "/api/auth/login", {"email": "admin@bi.local", "password": password},
                                       auth=False)
        if status != 200:
            raise RuntimeError(f"cannot sign in: {status} {body}")
        self.token = body["access_token"]
        agents = [pid for pid in children(self.proc.pid)
                  if b"executor" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        self.agent = agents[0] if agents else 0
        if self.agent:
            for arg in Path(f"/proc/{self.agent}/cmdline").read_bytes().split(b"\0"):
                if arg.startswith(b"--run-dir="):
                    self.run_dir = Path(arg.split(b"=", 1)[1].decode())

    async def stop(self) -> None:
        """SIGTERM the server (it stops its agent), SIGKILL after 20 s; then the agent the same way."""
        for pid in (self.proc.pid if self.proc else 0, self.agent):
            if pid and Path(f"/proc/{pid}").exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 20
                while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                    if self.proc and pid == self.proc.pid and self.proc.poll() is not None:
                        break
                    await asyncio.sleep(0.2)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if self.proc and pid == self.proc.pid:
                    await asyncio.to_thread(self.proc.wait)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        return [pid for pid in (self.proc.pid if self.proc else 0, self.agent) if pid]

    def reset_peaks(self) -> int:
        """Reset ``VmHWM`` of the server and its agent; their RSS in kB now."""
        for pid in self.pids:
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        return sum(status_kb(pid, "VmRSS") for pid in self.pids)

    def peaks(self) -> int:
        return sum(status_kb(pid, "VmHWM") for pid in self.pids)

    def disk(self) -> tuple[int, int]:
        allocated, entries = tree_bytes(self.data_dir)
        if self.run_dir is not None:
            entries += tree_bytes(self.run_dir)[1]
        return allocated, entries

    # calls -------------------------------------------------------------------
    def headers(self, auth: bool = True) -> dict[str, str]:
        return {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.token}"} if auth else {})}

    async def call(self, method: str, path: str, body: Any = None, auth: bool = True, raw: bytes | None = None,
                   timeout: float = HTTP_TIMEOUT) -> tuple[int, Any]:
        """(status, JSON body or None); status 599 is no answer (connection refused, timeout)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b"{}"
        request = httpclient.HTTPRequest(self.base + path, method=method, body=data, headers=self.headers(auth),
                                         connect_timeout=10, request_timeout=timeout)
        try:
            response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except (TimeoutError, OSError, httpclient.HTTPClientError):
            return 599, None
        if response.code == 599:
            return 599, None
        try:
            return response.code, json.loads(response.body) if response.body else None
        except ValueError:
            return response.code, None

    async def healthy(self) -> bool:
        return (await self.call("GET", "/api/health", auth=False, timeout=5))[0] == 200

    async def card_runs(self) -> str:
        """"" if a new card (so no cache hit) runs and prints what it should, else what went wrong."""
        nonce = secrets.token_hex(4)
        status, card = await self.call("POST", "/api/cards", {"title": "check", "code": f"print('{nonce}')",
                                                              "datasets": [], "parameters": []}, timeout=20)
        if status != 201:
            return f"card not saved: {status}"
        status, result = await self.call("POST", f"/api/cards/{card['id']}/run", {}, timeout=30)
        if status == 200 and result.get("status") == "ok" and nonce in json.dumps(result.get("outputs")):
            return ""
        return f"card run {status} {json.dumps(result)[:80]}"

    async def down(self, tally: Tally, patience: float = 30) -> str:
        """Why the server is not serving ("" when it is): exited, no health within ``patience``
        seconds (a late answer is noted), or no card run."""
        started = time.monotonic()
        while True:
            if self.proc is None or self.proc.poll() is not None:
                return f"exited ({self.proc.returncode if self.proc else None})"
            status, _ = await self.call("GET", "/api/health", auth=False, timeout=5)
            if status == 200:
                break
            if time.monotonic() - started > patience:
                return f"health {status} for {patience:.0f} s"
            await asyncio.sleep(0.5)
        if time.monotonic() - started > 1:
            tally.note(f"health answered after {time.monotonic() - started:.0f} s")
        return await self.card_runs()


# what an attack reports --------------------------------------------------------
@dataclasses.dataclass
class Tally:
    status_5xx: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    disk: tuple[int, int] = (0, 0)  # the most bytes and files seen in the data and run directories

    def sample(self, server: Server) -> None:
        """Look at the disk now, before a session or kernel goes (and its files with it)."""
        self.disk = tuple(map(max, self.disk, server.disk()))  # type: ignore[assignment]

    def saw(self, status: int) -> int:
        if 500 <= status < 599:
            self.status_5xx += 1
        return status

    def note(self, text: str) -> None:
        self.notes.append(text)


class Session:
    """A card session over HTTP (``/api/card-sessions``), closed when done."""

    def __init__(self, server: Server, tally: Tally):
        self.server, self.tally, self.id = server, tally, ""

    async def __aenter__(self) -> Self:
        status, body = await self.server.call("POST", "/api/card-sessions", {"datasets": []})
        if self.tally.saw(status) != 201:
            raise AttackFailed(f"no session: {status} {body}")
        self.id = body["id"]
        return self

    async def execute(self, code: str, timeout: float = HTTP_TIMEOUT) -> tuple[int, Any]:
        status, body = await self.server.call("POST", f"/api/card-sessions/{self.id}/execute", {"code": code},
                                              timeout=timeout)
        self.tally.saw(status)
        return status, body

    async def __aexit__(self, *exc: object) -> None:
        self.tally.sample(self.server)
        self.tally.saw((await self.server.call("DELETE", f"/api/card-sessions/{self.id}", timeout=20))[0])


class AttackFailed(Exception):
    """The attack could not be carried out (not the server's failure to resist it)."""


# a websocket client that never reads ------------------------------------------
class DeafSocket:
    """A websocket opened over a raw TCP socket with a small receive buffer, that sends and never reads."""

    def __init__(self, writer: asyncio.StreamWriter, sock: socket.socket):
        self.writer, self.sock = writer, sock

    @classmethod
    async def open(cls, server: Server, path: str, tally: Tally) -> DeafSocket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Authorization: Bearer {server.token}\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            with contextlib.suppress(IndexError, ValueError):
                tally.saw(int(head.split()[1]))
            raise AttackFailed(f"websocket refused: {head.splitlines()[0].decode(errors='replace')}")
        return cls(writer, sock)

    async def send(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x81, 0x80 | length)
        elif length < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
        key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
        self.writer.write(head + mask + masked)
        await asyncio.wait_for(self.writer.drain(), 30)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the server may have closed it already
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, no FIN wait
        self.writer.close()


async def reading_socket(server: Server, path: str) -> websocket.WebSocketClientConnection:
    request = httpclient.HTTPRequest(server.base.replace("http", "ws") + path, connect_timeout=10,
                                     request_timeout=30, headers={"Authorization": f"Bearer {server.token}"})
    return await websocket.websocket_connect(request, max_message_size=1 << 30)


def kernel_message(channel: str, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"channel": channel, "parent_header": {}, "metadata": {}, "buffers": [], "content": content,
            "header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "bench", "session": "bench",
                       "version": "5.3", "date": ""}}


def execute_request(channel: str, code: str) -> dict[str, Any]:
    return kernel_message(channel, "execute_request", {"code": code, "silent": False, "store_history": False,
                                                       "user_expressions": {}, "allow_stdin": False,
                                                       "stop_on_error": False})


class Kernel:
    """A Jupyter kernel (``/api/kernels``), shut down when done."""

    def __init__(self, server: Server, tally: Tally):
        self.server, self.tally, self.id = server, tally, ""

    async def __aenter__(self) -> Self:
        status, body = await self.server.call("POST", "/api/kernels", {"name": "python3"})
        if self.tally.saw(status) != 201:
            raise AttackFailed(f"no kernel: {status} {body}")
        self.id = body["id"]
        return self

    async def state(self) -> str:
        status, body = await self.server.call("GET", f"/api/kernels/{self.id}", timeout=10)
        return body.get("execution_state", "?") if status == 200 and body else "gone"

    async def __aexit__(self, *exc: object) -> None:
        self.tally.sample(self.server)
        self.tally.saw((await self.server.call("DELETE", f"/api/kernels/{self.id}", timeout=20))[0])


# the attacks -------------------------------------------------------------------
PRINT_300MB = "s = 'x' * 300_000_000\nprint(s)"
MANY_PARTS = "get_ipython().kernel.iopub_socket.send_multipart([b'x' * 16 * 2**20] * 25)"
MEDIUM_MESSAGES = """
from IPython.display import display
for i in range(4000):
    print('m' * 4000)
    display({'text/plain': 'd' * 4000}, raw=True)
"""
ARROW_BOMB = """
import numpy as np, pyarrow as pa
from IPython.display import display
batch = pa.record_batch([pa.array(np.zeros(8_000_000, dtype='int64'))], names=['v'])  # 64 MB of one value
with pa.OSFile(get_ipython().kernel.tables_dir + '/' + 'b' * 32 + '.arrow', 'wb') as file:
    with pa.ipc.new_stream(file, batch.schema, options=pa.ipc.IpcWriteOptions(compression='zstd')) as writer:
        for _ in range(32):  # 2 GiB once inflated
            writer.write_batch(batch)
rows = 32 * 8_000_000
display({'application/vnd.bi.dataframe.v1+json': {
             'columns': [{'name': 'v', 'dtype': 'int64'}], 'index': [], 'row_count': rows,
             'rows': [[0]] * 50, 'rows_available': rows, 'complete': True},
         'application/vnd.bi.table-file.v1+json': {'name': 'b' * 32},
         'text/plain': f'{rows} zeros'}, raw=True)
"""
REPLAY_RUN = "for i in range(40):\n    print('r' * 100_000)"  # 4 MB in 40 messages, under the 5 MB cap
STORAGE_FLOOD = """
import time, uuid, numpy as np, pyarrow as pa
from IPython.display import display
table = pa.table({'v': np.random.default_rng().integers(0, 2**62, 5_000_000)})  # 40 MB that do not compress
sink = pa.BufferOutputStream()
with pa.ipc.new_stream(sink, table.schema) as writer:
    writer.write_table(table)
stream, folder = sink.getvalue(), get_ipython().kernel.tables_dir
summary = {'columns': [{'name': 'v', 'dtype': 'int64'}], 'index': [], 'row_count': table.num_rows,
           'rows': [[0]] * 50, 'rows_available': table.num_rows, 'complete': True}
end, shown = time.time() + 6, 0
while shown < 25 and time.time() < end:  # at most 1 GB; a full tables folder makes the kernel wait for the server
    name = uuid.uuid4().hex
    try:
        with pa.OSFile(f'{folder}/{name}.arrow', 'wb') as file:
            file.write(stream)
    except OSError:
        time.sleep(0.01)
        continue
    display({'application/vnd.bi.dataframe.v1+json': summary, 'application/vnd.bi.table-file.v1+json': {'name': name},
             'text/plain': 'random'}, raw=True)
    shown += 1
"""
CONTROL_EXECUTE = """
import time
end = time.time() + 30
while time.time() < end:
    print('c' * 200_000)
    time.sleep(0.05)
"""
# The card policy refuses these imports for an early error; it is no boundary (kernels/policy.py),
# and an attacker steps around it through the real builtins of any function handed to cards.
REAL_IMPORT = """
from IPython.display import display
builtins = display.__globals__['__builtins__']
import_ = builtins['__import__'] if isinstance(builtins, dict) else builtins.__import__
"""
BACKGROUND_THREAD = REAL_IMPORT + """
import time
threading = import_('threading')
def spin():
    end = time.time() + 20
    while time.time() < end:
        print('b' * 50_000)
        sum(range(50_000))
threading.Thread(target=spin, daemon=True).start()
print('started')
"""
IPC_INODES = REAL_IMPORT + """
import time
glob, os, socket = import_('glob'), import_('os'), import_('socket')
kernel = get_ipython().kernel
places = [os.path.dirname(p) for p in [getattr(kernel.parent, 'connection_file', '')] if p]
places += glob.glob('/tmp/bi-k-*/*/') + [os.getcwd()]
made, end = 0, time.time() + 5
for place in places:
    try:
        while made < 150_000 and time.time() < end:
            s = socket.socket(socket.AF_UNIX)
            s.bind(os.path.join(place, f's{made}'))
            s.close()
            made += 1
    except OSError as exc:
        print(place, exc)
    else:
        print(place, made)
        break
print('socket files', made)
"""


LONG_CELL = """
import pyarrow as pa
from IPython.display import display
with pa.OSFile(get_ipython().kernel.tables_dir + '/' + 'c' * 32 + '.arrow', 'wb') as file:
    with pa.ipc.new_stream(file, pa.schema([('s', pa.string())])) as writer:
        writer.write_table(pa.table({'s': pa.array(['\\x01' * (45 * 1024 * 1024)])}))  # one 45 MB value
display({'application/vnd.bi.dataframe.v1+json': {
             'columns': [{'name': 's', 'dtype': 'object'}], 'index': [], 'row_count': 1,
             'rows': [], 'rows_available': 1, 'complete': True},
         'application/vnd.bi.table-file.v1+json': {'name': 'c' * 32}, 'text/plain': 'x'}, raw=True)
"""

NESTED_SVG = """
from IPython.display import display
n = 340_000
display({'image/svg+xml': '<svg xmlns="http://www.w3.org/2000/svg">' + '<g>' * n + '</g>' * n + '</svg>',
         'text/plain': 'x'}, raw=True)
"""

SPACERS = """
from IPython.display import display
spacers = [{'type': 'object', 'name': 'Spacer', 'id': f'p{i}', 'attributes': {}} for i in range(60_000)]
display({'application/vnd.bi.bokeh-item.v1+json': {'target_id': None, 'root_id': 'c', 'version': '3.9.2',
         'doc': {'version': '3.9.2', 'title': '', 'roots': [
             {'type': 'object', 'name': 'Column', 'id': 'c', 'attributes': {'children': spacers}}]}},
         'text/plain': 'x'}, raw=True)
"""


async def health_waits(server: Server, work: Awaitable[Any]) -> tuple[Any, float]:
    """``work``'s result and the longest a ``GET /api/health`` (asked every 50 ms meanwhile) waited."""
    task = asyncio.ensure_future(work)
    longest = 0.0
    while not task.done():
        start = time.monotonic()
        await server.call("GET", "/api/health", auth=False)
        longest = max(longest, time.monotonic() - start)
        await asyncio.sleep(0.05)
    return await task, longest


def outputs_of(body: Any) -> list[dict[str, Any]]:
    """The outputs of an execute answer, or of its 408 (the outputs until the time limit)."""
    body = body or {}
    return body.get("outputs") or body.get("error", {}).get("details", {}).get("outputs") or []


def answer(status: int, body: Any) -> str:
    """``HTTP 200 ok``, ``HTTP 408 timeout``: the status and the run's status or the error's code."""
    body = body or {}
    return f"HTTP {status} {body.get('status') or body.get('error', {}).get('code', '')}".strip()


async def print_300mb(server: Server, tally: Tally) -> None:
    """A card prints one 300 MB string."""
    async with Session(server, tally) as session:
        status, body = await session.execute(PRINT_300MB, timeout=90)
        tally.note(answer(status, body))


async def many_parts(server: Server, tally: Tally) -> None:
    """A card sends, straight on its iopub socket, one message of 25 parts of 16 MB (each under the bound)."""
    async with Session(server, tally) as session:
        status, body = await session.execute(MANY_PARTS, timeout=90)
        tally.note(answer(status, body))


async def medium_messages(server: Server, tally: Tally) -> None:
    """A card prints and displays 8,000 messages of 4 KB, 32 MB against the 5 MB cap."""
    async with Session(server, tally) as session:
        status, body = await session.execute(MEDIUM_MESSAGES)
        tally.note(f"{answer(status, body)}, truncated {(body or {}).get('truncated')}")


async def arrow_bomb(server: Server, tally: Tally) -> None:
    """A DataFrame output whose zstd Arrow stream (~66 KB) inflates to 2 GiB, then a page of its rows."""
    async with Session(server, tally) as session:
        status, body = await session.execute(ARROW_BOMB)
        outputs = outputs_of(body)
        ids = [o["output_id"] for o in outputs if o.get("output_id")]
        text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream").split()
        tally.note(f"stream {text[-1] if text else '?'} bytes")
        if not ids:
            tally.note(f"no table stored ({answer(status, body)})")
            return
        status, _ = await server.call("GET", f"/api/outputs/{ids[0]}/rows?offset=0&limit=10")
        tally.saw(status)
        tally.note(f"rows HTTP {status}")


async def long_cell(server: Server, tally: Tally) -> None:
    """A DataFrame output's table of one 45 MB string of control characters, then three pages of it at once."""
    async with Session(server, tally) as session:
        status, body = await session.execute(LONG_CELL)
        ids = [o["output_id"] for o in outputs_of(body) if o.get("output_id")]
        if not ids:
            raise AttackFailed(f"no table stored ({answer(status, body)})")
        page = server.call("GET", f"/api/outputs/{ids[0]}/rows?limit=1")
        pages, waited = await health_waits(server, asyncio.gather(page, page, page))
        tally.note(f"rows HTTP {[tally.saw(status) for status, _ in pages]}, "
                   f"{len(json.dumps(pages[0][1]))} bytes, health waited {waited:.2f} s")


async def costly_outputs(server: Server, tally: Tally, sessions: int = 4) -> None:
    """From four sessions at once, an SVG of 340,000 nested groups, then a Bokeh item of 60,000 Spacers."""
    async def both() -> list[str]:
        async with Session(server, tally) as session:
            runs = [await session.execute(code) for code in (NESTED_SVG, SPACERS)]
            return [f"{answer(status, body)} {[o.get('ename') for o in outputs_of(body) if 'ename' in o]}"
                    for status, body in runs]
    answers, waited = await health_waits(server, asyncio.gather(*(both() for _ in range(sessions))))
    tally.note(f"{sorted(set(a for each in answers for a in each))}, health waited {waited:.2f} s")


async def card_replay(server: Server, tally: Tally, runs: int = 150, seconds: float = 45) -> None:
    """150 runs of 4 MB each on one card socket whose client never reads."""
    _, before = await server.call("GET", "/api/card-sessions")
    deaf = await DeafSocket.open(server, "/api/cards/scratch/ws", tally)
    try:
        session_id = ""
        for _ in range(50):
            _, after = await server.call("GET", "/api/card-sessions")
            known = {s["id"] for s in (before or {}).get("sessions", [])}
            new = [s["id"] for s in (after or {}).get("sessions", []) if s["id"] not in known]
            if new:
                session_id = new[0]
                break
            await asyncio.sleep(0.1)
        if not session_id:
            raise AttackFailed("the socket's session did not appear")
        sent, end = 0, time.monotonic() + seconds
        while sent < runs and time.monotonic() < end:
            try:
                await deaf.send({"type": "execute", "code": REPLAY_RUN, "run_id": f"r{sent}"})
            except ConnectionError:
                tally.note("the server closed the deaf socket")
                break
            sent += 1
            await asyncio.sleep(0.05)
            while time.monotonic() < end:
                status, session = await server.call("GET", f"/api/card-sessions/{session_id}", timeout=10)
                tally.saw(status)
                if status != 200 or not session["busy"]:
                    break
                await asyncio.sleep(0.05)
        tally.note(f"{sent} runs")
    finally:
        deaf.close()
        tally.sample(server)
        if session_id:
            tally.saw((await server.call("DELETE", f"/api/card-sessions/{session_id}", timeout=20))[0])


async def jupyter_replay(server: Server, tally: Tally, runs: int = 150, seconds: float = 45) -> None:
    """150 execute_requests of 4 MB output each on a kernel websocket whose client never reads.

    A second client on the kernel, which reads (the server sends every socket of a kernel all of its
    messages), tells when the last reply has come.
    """
    async with Kernel(server, tally) as kernel:
        path = f"/api/kernels/{kernel.id}/channels"
        deaf = await DeafSocket.open(server, path + "?session_id=deaf", tally)
        watch = await reading_socket(server, path + "?session_id=watch")
        replies, end = 0, time.monotonic() + seconds
        try:
            for _ in range(runs):
                await deaf.send(execute_request("shell", REPLAY_RUN))
            with contextlib.suppress(asyncio.TimeoutError):
                while replies < runs:
                    text = await asyncio.wait_for(watch.read_message(), max(0.1, end - time.monotonic()))
                    if text is None:
                        break
                    if isinstance(text, str) and '"execute_reply"' in text[:2000]:
                        replies += json.loads(text)["header"]["msg_type"] == "execute_reply"
        finally:
            watch.close()
            deaf.close()
            tally.note(f"{replies} of {runs} runs replied")


async def dashboard_tiles(server: Server, tally: Tally, sockets: int = 3) -> None:
    """A card printing 4.9 MB on all 50 tiles of a dashboard (one run: the cache answers the rest),
    joined by three sockets that never read, each asking for a fresh snapshot too."""
    status, card = await server.call("POST", "/api/cards", {"title": "big", "code": "print('x' * 4_900_000)",
                                                           "datasets": [], "parameters": []})
    if tally.saw(status) != 201:
        raise AttackFailed(f"cannot create the card: {status}")
    keys = [f"t{n}" for n in range(50)]
    status, dashboard = await server.call("POST", "/api/dashboards", {
        "schemaVersion": 1, "title": "big tiles", "refresh": None,
        "cards": [{"key": key, "card": card["id"]} for key in keys],
        "layout": [{"card": key, "x": 0, "y": n, "w": 6, "h": 4} for n, key in enumerate(keys)]})
    if tally.saw(status) != 201:
        raise AttackFailed(f"cannot create the dashboard: {status}")
    tally.saw((await server.call("POST", f"/api/dashboards/{dashboard['id']}/cards/t0/run", {}, timeout=60))[0])
    deaf: list[DeafSocket] = []
    try:
        for _ in range(sockets):
            deaf.append(await DeafSocket.open(server, f"/api/dashboards/{dashboard['id']}/ws", tally))
            await deaf[-1].send({"type": "resync"})
        await asyncio.sleep(5)
    finally:
        for socket_ in deaf:
            socket_.close()
        tally.sample(server)
        tally.saw((await server.call("DELETE", f"/api/dashboards/{dashboard['id']}", timeout=20))[0])


async def card_resumes(server: Server, tally: Tally, resumes: int = 95) -> None:
    """A card session's replay buffer filled by two runs of 4.5 MB, then resumed from its start by 95
    sockets that never read, one after the other."""
    reader = await reading_socket(server, "/api/cards/scratch/ws")
    session_id = json.loads(await reader.read_message())["session_id"]
    for run in range(2):
        await reader.write_message(json.dumps({"type": "execute", "code": "print('x' * 4_500_000)", "run_id": f"r{run}"}))
        while json.loads(await asyncio.wait_for(reader.read_message(), 60))["type"] != "done":
            pass
    reader.close()
    deaf: list[DeafSocket] = []
    try:
        for _ in range(resumes):
            deaf.append(await DeafSocket.open(server, f"/api/cards/scratch/ws?session={session_id}&after=0", tally))
        await asyncio.sleep(2)
    finally:
        for socket_ in deaf:
            socket_.close()
        tally.sample(server)
        tally.saw((await server.call("DELETE", f"/api/card-sessions/{session_id}", timeout=20))[0])


async def storage_flood(server: Server, tally: Tally) -> None:
    """One run displays up to 25 tables of 40 MB (random, so they do not compress) for 6 s."""
    async with Session(server, tally) as session:
        status, body = await session.execute(STORAGE_FLOOD)
        stored = sum(1 for o in outputs_of(body) if o.get("output_id"))
        tally.note(f"{answer(status, body)}, {stored} tables stored")


async def control_execute(server: Server, tally: Tally) -> None:
    """An execute_request on the control channel that prints 4 MB/s for 30 s."""
    async with Kernel(server, tally) as kernel:
        connection = await reading_socket(server, f"/api/kernels/{kernel.id}/channels?session_id=bench")
        request = execute_request("control", CONTROL_EXECUTE)
        connection.write_message(json.dumps(request))
        received, end, reply = 0, time.monotonic() + 40, "none"
        try:
            while time.monotonic() < end:
                text = await asyncio.wait_for(connection.read_message(), max(0.1, end - time.monotonic()))
                if text is None:
                    reply = "socket closed"
                    break
                received += len(text)
                message = json.loads(text)
                if message.get("parent_header", {}).get("msg_id") == request["header"]["msg_id"] and \
                        message.get("channel") == "control":
                    reply = f"{message['header']['msg_type']} {message['content'].get('status')}"
                    break
        except TimeoutError:
            pass
        finally:
            connection.close()
        tally.note(f"reply: {reply}, {received / 1e6:.0f} MB received")


async def background_thread(server: Server, tally: Tally, seconds: float = 10) -> None:
    """A cell starts a thread that prints 50 KB at a time and spins after the cell has returned."""
    connection = await reading_socket(server, "/api/cards/scratch/ws")
    session_id = ""
    try:
        connection.write_message(json.dumps({"type": "execute", "code": BACKGROUND_THREAD, "run_id": "bg"}))
        received, done, end = 0, None, time.monotonic() + seconds
        with contextlib.suppress(asyncio.TimeoutError):
            while time.monotonic() < end:
                text = await asyncio.wait_for(connection.read_message(), max(0.1, end - time.monotonic()))
                if text is None:
                    break
                message = json.loads(text)
                session_id = message.get("session_id", session_id)
                if message["type"] == "done":
                    done = time.monotonic()
                elif done is not None:
                    received += len(text)
        tally.note(f"{received / 1e6:.0f} MB relayed after the run ended")
    finally:
        connection.close()
        tally.sample(server)
        if session_id:
            tally.saw((await server.call("DELETE", f"/api/card-sessions/{session_id}", timeout=20))[0])


async def ipc_inodes(server: Server, tally: Tally) -> None:
    """A cell binds up to 150,000 AF_UNIX sockets in its ipc directory for 5 s."""
    async with Session(server, tally) as session:
        status, body = await session.execute(IPC_INODES, timeout=30)
        text = "".join(o.get("text", "") for o in outputs_of(body) if o.get("output_type") == "stream")
        tally.note(text.strip().splitlines()[-1] if text.strip() else answer(status, body))


async def raw_request(server: Server, head: bytes, body_bytes: int, tally: Tally) -> str:
    """Send ``head`` then ``body_bytes`` zeros 1 MB at a time, reading the answer meanwhile: its status
    code, or "closed" when the server closed the connection without one."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 10)

    async def status_line() -> str:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            line = await reader.readline()
            if line.startswith(b"HTTP/"):
                return str(tally.saw(int(line.split()[1])))
        return "closed"

    answer = asyncio.ensure_future(status_line())
    try:
        writer.write(head)
        chunk = bytes(1 << 20)
        with contextlib.suppress(ConnectionError):
            for offset in range(0, body_bytes, len(chunk)):
                if answer.done():
                    break
                writer.write(chunk[:min(len(chunk), body_bytes - offset)])
                await asyncio.wait_for(writer.drain(), 30)
        return await asyncio.wait_for(answer, 30)
    except TimeoutError:
        return "no answer"
    finally:
        answer.cancel()
        writer.close()


async def anonymous_bodies(server: Server, tally: Tally) -> None:
    """Eight anonymous 95 MB bodies at once, to a JSON route and to the upload route."""
    size = 95 * 1024 * 1024
    heads = [(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
              f"Content-Length: {size}\r\n\r\n").encode()
             for path, kind in [("/api/cards", "application/json"), ("/api/datasets?name=x", "text/csv")] * 4]
    codes = await asyncio.gather(*(raw_request(server, head, size, tally) for head in heads))
    tally.note("answers " + ",".join(codes))


async def half_sent(server: Server, tally: Tally, count: int = HALF_SENT, hold: float = 10) -> None:
    """``count`` connections send part of a request (headers, or headers and part of a body) and wait."""
    async def open_one(index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 10)
        except (TimeoutError, OSError):
            return None
        head = "POST /api/cards HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        writer.write((head + ("X-Slow: 1\r\n" if index % 2 else "Content-Length: 1000\r\n\r\n{\"t")).encode())
        return reader, writer

    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = []
    for start in range(0, count, 250):
        connections += await asyncio.gather(*(open_one(i) for i in range(start, min(count, start + 250))))
    opened = [c for c in connections if c is not None]
    await asyncio.sleep(hold)
    closed = 0
    for reader, writer in opened:
        if reader.at_eof() or writer.is_closing() or reader._buffer:  # type: ignore[attr-defined]
            closed += 1
            line = bytes(reader._buffer).split(b"\r\n", 1)[0]  # type: ignore[attr-defined]
            if line.startswith(b"HTTP/"):
                tally.saw(int(line.split()[1]))
    for _, writer in opened:
        writer.close()
    tally.note(f"{len(opened)} of {count} opened, {closed} answered or closed by the server within {hold:.0f} s")


NUMBER_PARAMETER = (b'{"title": "t", "code": "1", "datasets": [], '
                    b'"parameters": [{"name": "n", "type": "number", "default": %s}]}')


def hostile_bodies() -> list[bytes]:
    """Bodies no JSON reader should choke on, many of them in the documented shapes around the bad part."""
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    big_int = b"1" * 5000
    bodies = [deep, deep_object, b"NaN", b"[NaN, Infinity, -Infinity]", b"1e999999", b"\xff\xfe\xfd",
              b'"\\ud800"', b"{" * 10, b"", b"null", b"[]", b'{"a": 1, "a": 2}', b"0" * 100_000]
    for field in (b"email", b"password", b"title", b"code"):
        bodies += [b'{"%s": %s}' % (field, big_int), b'{"%s": "\\udfff"}' % field, b'{"%s": NaN}' % field,
                   b'{"%s": %s}' % (field, deep[:20_000] + deep[-20_000:])]
    bodies += [b'{"email": "admin@bi.local", "password": "\\ud800\\ud800"}',
               b'{"email": "\\ud83d@bi.local", "password": "x"}',
               b'{"email": %s, "password": %s}' % (big_int, big_int),
               NUMBER_PARAMETER % b"NaN", NUMBER_PARAMETER % (b"9" * 400),
               b'{"title": "\\ud800", "code": "1", "datasets": [], "parameters": []}',
               b'{"parameters": {"n": %s}}' % (b"9" * 400), b'{"parameters": {"n": NaN}}',
               b'{"parameters": {"n": 1e400}}', b'{"parameters": {"\\udc00": 1}}',
               b'{"parameters": %s}' % (b"[" * 50_000 + b"]" * 50_000)]
    return bodies


async def hostile_json(server: Server, tally: Tally) -> None:
    """Each hostile body to the login route (anonymous), card creation and a card run (signed in)."""
    status, card = await server.call("POST", "/api/cards", {"title": "fuzz", "code": "n = 1", "datasets": [],
                                                            "parameters": [{"name": "n", "type": "number",
                                                                            "default": 1}]})
    if tally.saw(status) != 201:
        raise AttackFailed(f"no card: {status}")
    routes = [("/api/auth/login", False), ("/api/cards", True), (f"/api/cards/{card['id']}/run", True)]
    bodies = hostile_bodies()
    semaphore = asyncio.Semaphore(4)

    async def send(path: str, auth: bool, body: bytes) -> int:
        async with semaphore:
            return tally.saw((await server.call("POST", path, raw=body, auth=auth, timeout=30))[0])

    codes = await asyncio.gather(*(send(path, auth, body) for path, auth in routes for body in bodies))
    tally.note(f"{len(codes)} requests, {sum(c == 599 for c in codes)} unanswered")


ATTACKS: dict[str, tuple[Callable[[Server, Tally], Awaitable[None]], float]] = {
    # name: (attack, its time bound in seconds)
    "print_300mb": (print_300mb, 100),
    "many_parts": (many_parts, 60),
    "medium_messages": (medium_messages, 70),
    "arrow_bomb": (arrow_bomb, 120),
    "long_cell": (long_cell, 60),
    "costly_outputs": (costly_outputs, 60),
    "card_replay": (card_replay, 70),
    "jupyter_replay": (jupyter_replay, 70),
    "dashboard_tiles": (dashboard_tiles, 90),
    "card_resumes": (card_resumes, 60),
    "storage_flood": (storage_flood, 70),
    "control_execute": (control_execute, 60),
    "background_thread": (background_thread, 40),
    "ipc_inodes": (ipc_inodes, 40),
    "anonymous_bodies": (anonymous_bodies, 90),
    "half_sent": (half_sent, 60),
    "hostile_json": (hostile_json, 90),
}


# the run -----------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    peak_mb: float
    kept_mb: float
    disk_mb: float
    files: int
    status_5xx: int
    up: bool
    seconds: float
    notes: str


async def attack(server: Server, name: str) -> Result:
    function, bound = ATTACKS[name]
    tally = Tally()
    disk_before, files_before = server.disk()
    rss_kb = server.reset_peaks()
    peak_kb = 0

    async def watch() -> None:  # a server that dies takes its VmHWM with it: keep the last seen
        nonlocal peak_kb
        while True:
            peak_kb = max(peak_kb, server.peaks())
            await asyncio.sleep(0.2)

    watcher = asyncio.ensure_future(watch())
    started = time.monotonic()
    try:
        await asyncio.wait_for(function(server, tally), bound)
    except TimeoutError:
        tally.note(f"stopped at its {bound:.0f} s bound")
    except AttackFailed as exc:
        tally.note(f"could not attack: {exc}")
    except httpclient.HTTPClientError as exc:  # a websocket refused
        tally.saw(exc.code)
        tally.note(f"refused: {exc}"[:120])
    except (OSError, websocket.WebSocketClosedError) as exc:
        tally.note(f"connection failed: {exc!r}"[:120])
    except (KeyError, TypeError, ValueError) as exc:  # an answer of a shape the attack did not expect
        tally.note(f"attack error: {exc!r}"[:120])
    seconds = time.monotonic() - started
    watcher.cancel()
    peak_kb = max(peak_kb, server.peaks()) - rss_kb
    kept_kb = sum(status_kb(pid, "VmRSS") for pid in server.pids) - rss_kb
    tally.sample(server)
    disk_after, files_after = tally.disk
    down = await server.down(tally)
    if down:
        tally.note(f"down: {down}")
    return Result(peak_mb=round(max(0, peak_kb) / 1024, 1), kept_mb=round(kept_kb / 1024, 1) + 0.0,  # no -0.0
                  disk_mb=round(max(0, disk_after - disk_before) / 2**20, 1),
                  files=max(0, files_after - files_before), status_5xx=tally.status_5xx, up=not down,
                  seconds=round(seconds, 1), notes="; ".join(tally.notes))


def row(name: str, result: Result) -> str:
    disk_target = QUOTA_MB if name == "storage_flood" else DISK_TARGET_MB

    def mark(ok: bool) -> str:
        return "ok  " if ok else "OVER"

    return (f"{name:<18} {result.peak_mb:8.1f} {mark(result.peak_mb < PEAK_TARGET_MB)} {result.kept_mb:7.1f}"
            f"  {result.disk_mb:7.1f} <{disk_target:<4d} {mark(result.disk_mb < disk_target)} {result.files:>7d}"
            f"  {result.status_5xx:4d} {mark(result.status_5xx == 0)} {'up  ' if result.up else 'DOWN'}"
            f"  {result.seconds:5.1f}  {result.notes}")


HEADER = (f"{'attack':<18} {'peak MB <100':>13} {'kept MB':>7}  {'disk MB (target)':>18} {'files':>7}"
          f"  {'5xx =0':>9} {'up':<4}  {'s':>5}  notes")


async def run(names: list[str]) -> dict[str, Result]:
    if os.geteuid() != 0:
        sys.exit("bench/abuse.py needs root: bi serve's agent sandboxes kernels.")
    workdir = Path(tempfile.mkdtemp(prefix="bi-abuse-"))
    results: dict[str, Result] = {}
    server = Server(workdir)
    await server.start()
    print(f"bi serve and its agent: {server.reset_peaks() / 1024:.0f} MB RSS after start", flush=True)
    print(HEADER, flush=True)
    failed = True
    try:
        for name in names:
            last = list(results.values())[-1] if results else None
            if last is not None and (not last.up or last.kept_mb >= PEAK_TARGET_MB):
                old, server = server, Server(workdir)
                await asyncio.gather(old.stop(), server.start())
                print(f"(bi serve restarted: it was {'down' if not last.up else f'keeping {last.kept_mb:.0f} MB'})",
                      flush=True)
            results[name] = await attack(server, name)
            print(row(name, results[name]), flush=True)
        failed = False
    finally:
        await server.stop()
        if not failed:  # else keep the servers' logs
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(ATTACKS), action="append",
                        help="run only this attack (repeatable)")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(run(args.only or list(ATTACKS)))
    over = [name for name, r in results.items()
            if r.peak_mb >= PEAK_TARGET_MB or r.status_5xx or not r.up
            or r.disk_mb >= (QUOTA_MB if name == "storage_flood" else DISK_TARGET_MB)]
    print(f"{len(results) - len(over)} of {len(results)} attacks within the targets "
          f"({time.monotonic() - started:.0f} s)")
    print(json.dumps({name: {"peak_mb": r.peak_mb, "disk_mb": r.disk_mb, "status_5xx": r.status_5xx, "up": r.up}
                      for name, r in results.items()}))


if __name__ == "__main__":
    main()
