"""Datasets travel from the server to a kernel's agent as streams, never as whole bodies in memory.

A 70 MB Parquet file loaded by 8 card sessions at once grew the server by 498 MB and the agent by
400 MB: the server read each file whole and the agent took each request body whole. The server now
sends the file in chunks and the agent writes the chunks to the dataset folder as they arrive; a body
past the agent's limit is refused from its ``Content-Length`` before it is read, and a body cut short
leaves no partial file.
"""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.parse
from pathlib import Path

import pytest

from kernels.launcher import DIRECTORY_NAME_LENGTH
from kernels.limits import DATASET_BYTES
from server.execution.agent_client import load_private_key
from server.execution.pool import tenant_of
from tests.kernels.test_agent import token

from .conftest import read_response, vm_kb

DATASET_MB = 160
CEILING_KB = 64 * 1024


def listening_pid(port: int) -> int:
    """The process that listens on the loopback TCP ``port`` (read from ``/proc``; needs root)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    raise LookupError(f"nothing listens on port {port}")


def reset_peak(*pids: int) -> dict[int, int]:
    """Reset the peak memory of ``pids``; their current resident size (KiB) as the baseline."""
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    return {pid: vm_kb(pid, "VmRSS") for pid in pids}


def write_incompressible(path: Path, megabytes: int) -> None:
    with path.open("wb") as file:
        for _ in range(megabytes):
            file.write(os.urandom(1 << 20))


class SharedAgent:
    """The shared test agent: its URL, process, run directory and the key that signs calls to it."""

    def __init__(self, url: str, pem: str):
        self.url = url
        self.key = load_private_key(pem)
        self.pid = listening_pid(urllib.parse.urlsplit(url).port or 80)
        arguments = Path(f"/proc/{self.pid}/cmdline").read_bytes().decode().split("\0")
        self.run_dir = Path(next(a for a in arguments if a.startswith("--run-dir=")).partition("=")[2])

    def dataset_folder(self, kernel_id: str) -> Path:
        return self.run_dir / kernel_id[:DIRECTORY_NAME_LENGTH] / "datasets"

    def connect(self, head: str) -> socket.socket:
        """A connection that has sent ``head`` (a request line and headers, signed)."""
        parts = urllib.parse.urlsplit(self.url)
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        sock.sendall(f"{head}\r\nHost: agent\r\nAuthorization: Bearer {token(key=self.key)}\r\n\r\n".encode())
        return sock


@pytest.fixture
def agent(shared_agent) -> SharedAgent:
    if shared_agent is None:
        pytest.skip("the executor agent needs root")
    return SharedAgent(*shared_agent)


@pytest.fixture
async def cards(start_cards):
    return await start_cards()


@pytest.fixture
async def kernel(cards, agent):
    """A kernel of the shared agent, deleted after the test."""
    started = await cards.app.kernel_pool.start_kernel([], tenant_of("dataset-attacker"))
    yield started
    started.client.stop_channels()
    await started.agent.delete_kernel(started.kernel_id)


async def test_a_large_dataset_reaches_its_kernel_in_bounded_memory(cards, agent, tmp_path):
    """Placing a 160 MB dataset grows neither the server (this process) nor the agent by 64 MB."""
    dataset = tmp_path / "big.parquet"
    write_incompressible(dataset, DATASET_MB)
    baseline = reset_peak(os.getpid(), agent.pid)
    started = await cards.app.kernel_pool.start_kernel([("big", dataset)], tenant_of("dataset-attacker"))
    try:
        growth = {pid: vm_kb(pid, "VmHWM") - rss for pid, rss in baseline.items()}
        placed = agent.dataset_folder(started.kernel_id) / "big.parquet"
        assert placed.stat().st_size == DATASET_MB << 20 and placed.stat().st_mode & 0o777 == 0o444
    finally:
        started.client.stop_channels()
        await started.agent.delete_kernel(started.kernel_id)
    grew = f"peak memory grew by {growth[os.getpid()] >> 10} MB (server), {growth[agent.pid] >> 10} MB (agent)"
    assert growth[os.getpid()] < CEILING_KB and growth[agent.pid] < CEILING_KB, grew


async def test_a_dataset_past_the_limit_is_refused_before_its_body(agent, kernel):
    """A ``Content-Length`` past ``DATASET_BYTES`` is answered 413 with no byte of the body sent."""
    with agent.connect(f"PUT /kernels/{kernel.kernel_id}/datasets/big HTTP/1.1\r\n"
                       f"Content-Length: {DATASET_BYTES + 1}") as sock:
        status, _, _ = await asyncio.to_thread(read_response, sock)
    assert status == 413


async def test_other_routes_take_no_large_body(agent, kernel):
    """Only a dataset PUT may be large: a signed 2 MB ``POST /kernels`` is refused before it is read
    (Tornado answers a declared length past the connection's limit with a 400 and closes)."""
    with agent.connect(f"POST /kernels HTTP/1.1\r\nContent-Length: {2 << 20}") as sock:
        status, _, _ = await asyncio.to_thread(read_response, sock)
    assert status == 400


async def test_a_body_cut_short_leaves_no_partial_file(agent, kernel):
    """The sender goes away mid-body: the dataset is not placed and no partial file stays behind."""
    with agent.connect(f"PUT /kernels/{kernel.kernel_id}/datasets/cut HTTP/1.1\r\nContent-Length: {8 << 20}") as sock:
        sock.sendall(b"x" * (1 << 20))
        await asyncio.sleep(0.3)
    folder = agent.dataset_folder(kernel.kernel_id)
    for _ in range(50):
        if not any(folder.iterdir()):
            break
        await asyncio.sleep(0.1)
    assert sorted(p.name for p in folder.iterdir()) == []
