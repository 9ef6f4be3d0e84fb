"""Datasets reach kernels without their bytes being copied: the local server's stored file itself, or the
agent's cached copy of a version, by hard link; the kernel still cannot write them."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pandas as pd
import pytest

from kernels.admission import Admission
from kernels.agent import CACHE_DIRECTORY
from kernels.helpers import MAX_ARROW_THREADS, dataset_filename
from kernels.pool import WarmPool
from server.execution.agent_client import AgentClient, Placement, dataset_version
from tests.kernels.test_agent import SERVER_KEY, Agent, serve_agent
from tests.kernels.test_attacks import EACCES, attack

VERSION = "ab" * 32
FRAME = pd.DataFrame({"店舗": ["東京", "大阪", "福岡"], "売上": [10, 20, 30]})


@pytest.fixture
def pool_size() -> int:
    return 1


@pytest.fixture
def server_blobs(tmp_path: Path) -> Path:
    """A stand-in for ``bi serve``'s dataset blobs: a 0700 folder of root's, its files 0444 as the store keeps them."""
    root = tmp_path / "blobs" / "datasets"
    (root / "d1").mkdir(parents=True)
    (tmp_path / "blobs").chmod(0o700)
    stored = root / "d1" / "v1.parquet"
    FRAME.to_parquet(stored)
    stored.chmod(0o444)
    return root


@pytest.fixture
async def local_agent(pool: WarmPool, server_blobs: Path) -> AsyncIterator[Agent]:
    """The agent as ``bi serve`` starts it beside itself: it may link the server's dataset files."""
    async for client in serve_agent(pool, dataset_root=server_blobs):
        yield client


@pytest.fixture
async def remote_agent(pool: WarmPool) -> AsyncIterator[Agent]:
    """An agent on another host: datasets come as bytes, then from its cache."""
    async for client in serve_agent(pool):
        yield client


async def new_kernel(agent: Agent, tenant: str | None = None) -> str:
    body = json.dumps({"tenant": tenant}).encode() if tenant else None
    created = await agent.call("POST", "/kernels", body=body)
    assert created.code == 201, created.body
    return json.loads(created.body)["kernel_id"]


async def link(agent: Agent, kernel_id: str, **body) -> dict:
    answer = await agent.call("POST", f"/kernels/{kernel_id}/datasets/sales/link", body=json.dumps(body).encode())
    assert answer.code == 200, answer.body
    return json.loads(answer.body)


def parquet_bytes() -> bytes:
    data = io.BytesIO()
    FRAME.to_parquet(data)
    return data.getvalue()


WRITES = """
path = ARGS["path"]
attempt("open for writing", lambda: os.close(os.open(path, os.O_WRONLY)))
attempt("open to append", lambda: os.close(os.open(path, os.O_RDWR | os.O_APPEND)))
attempt("truncate", lambda: os.truncate(path, 0))
attempt("chmod", lambda: os.chmod(path, 0o666))
attempt("unlink", lambda: os.unlink(path))
attempt("rename", lambda: os.rename(path, path + ".x"))
attempt("link into the workdir", lambda: os.link(path, "/tmp/workdir/sales.parquet"))
RESULTS["load_dataset"] = load_dataset("sales")["売上"].tolist()
RESULTS["threads"] = load_dataset.__globals__["arrow_threads"]()
"""
REFUSED = {"open for writing": EACCES, "open to append": EACCES, "truncate": EACCES, "chmod": "PermissionError:EPERM",
           "unlink": EACCES, "rename": EACCES}
EROFS = "OSError:EROFS"  # the kernel's directory is bound read-only in its mount view: refused before the file's mode


def refused(seen: dict) -> bool:
    """Every write in ``REFUSED`` refused, by the file's mode or by the read-only directory above it."""
    return all(seen[name] in (error, EROFS) for name, error in REFUSED.items())


async def test_the_local_servers_file_is_linked_not_copied_and_stays_unwritable(local_agent, server_blobs):
    """The stored file itself (same inode, no byte copied) becomes load_dataset's, and the kernel can write,
    truncate, chmod, unlink or re-link it nowhere."""
    kernel_id = await new_kernel(local_agent)
    stored = server_blobs / "d1" / "v1.parquet"
    before = stored.read_bytes()
    assert await link(local_agent, kernel_id, version=VERSION, file="d1/v1.parquet") == {
        "placed": True, "mechanism": "hard_link", "bytes_copied": 0}
    kernel = local_agent.launcher.kernels[kernel_id]
    placed = kernel.dataset_dir / dataset_filename("sales")
    assert placed.stat().st_ino == stored.stat().st_ino
    seen = await attack(local_agent.launcher, kernel, WRITES, path=str(placed))
    assert refused(seen), seen
    assert seen["link into the workdir"] in ("PermissionError:EPERM", "OSError:EXDEV", EACCES)
    assert seen["load_dataset"] == [10, 20, 30]
    assert 1 <= seen["threads"] <= MAX_ARROW_THREADS
    assert stored.read_bytes() == before and stored.stat().st_mode & 0o777 == 0o444
    assert (await local_agent.call("DELETE", f"/kernels/{kernel_id}")).code == 204
    assert stored.read_bytes() == before  # the kernel's link went with it, the stored file stays


async def test_only_parquet_files_beneath_the_root_are_linked(local_agent):
    kernel_id = await new_kernel(local_agent)
    for file in ("../d1/v1.parquet", "/etc/passwd", "d1", "d1/v1.parquet/..", "d1/missing.parquet"):
        answer = await local_agent.call("POST", f"/kernels/{kernel_id}/datasets/sales/link",
                                        body=json.dumps({"version": VERSION, "file": file}).encode())
        assert answer.code == 400, file
    assert list(local_agent.launcher.kernels[kernel_id].dataset_dir.iterdir()) == []


async def test_the_servers_client_links_the_local_servers_files(local_agent, server_blobs):
    """``AgentClient.place_dataset`` names the stored file to an agent given the server's dataset root."""
    client = AgentClient(local_agent.base_url, SERVER_KEY, dataset_root=server_blobs)
    try:
        placement = await client.place_dataset(await new_kernel(local_agent), "sales", server_blobs / "d1/v1.parquet")
    finally:
        client.close()
    assert placement == Placement("hard_link", 0)


async def test_a_file_kernels_may_not_read_is_copied(local_agent, server_blobs):
    """A stored file only its owner may read (an older store's 0440) is copied, never made readable."""
    kernel_id = await new_kernel(local_agent)
    stored = server_blobs / "d1" / "v1.parquet"
    stored.chmod(0o440)
    placed = await link(local_agent, kernel_id, version=VERSION, file="d1/v1.parquet")
    assert placed == {"placed": True, "mechanism": "copy", "bytes_copied": stored.stat().st_size}
    copy = local_agent.launcher.kernels[kernel_id].dataset_dir / dataset_filename("sales")
    assert copy.stat().st_ino != stored.stat().st_ino and copy.read_bytes() == stored.read_bytes()
    assert stored.stat().st_mode & 0o777 == 0o440


async def test_a_remote_agent_keeps_a_version_sent_once(remote_agent, server_blobs):
    """The first kernel gets the bytes (and the agent keeps them); the next gets the same file by hard link."""
    stored = server_blobs / "d1" / "v1.parquet"
    client = AgentClient(remote_agent.base_url, SERVER_KEY)
    try:
        first = await new_kernel(remote_agent)
        assert await client.place_dataset(first, "sales", stored) == Placement("sent", stored.stat().st_size)
        second = await new_kernel(remote_agent)
        assert await client.place_dataset(second, "sales", stored) == Placement("hard_link", 0)
    finally:
        client.close()
    assert os.listdir(remote_agent.launcher.run_dir / CACHE_DIRECTORY) == [dataset_version(stored) + ".parquet"]
    kernels = remote_agent.launcher.kernels
    files = [kernels[kernel_id].dataset_dir / dataset_filename("sales") for kernel_id in (first, second)]
    assert files[0].stat().st_ino == files[1].stat().st_ino
    seen = await attack(remote_agent.launcher, kernels[second], WRITES, path=str(files[1]))
    assert refused(seen), seen
    assert seen["load_dataset"] == [10, 20, 30]


async def test_a_bad_version_is_refused(remote_agent):
    kernel_id = await new_kernel(remote_agent)
    for body in ({"version": "../x"}, {"version": VERSION.upper()}, {}):
        answer = await remote_agent.call("POST", f"/kernels/{kernel_id}/datasets/sales/link",
                                         body=json.dumps(body).encode())
        assert answer.code == 400
    answer = await remote_agent.call("PUT", f"/kernels/{kernel_id}/datasets/sales?version=x", body=parquet_bytes())
    assert answer.code == 400


@pytest.fixture
async def single_tenant_agent(pool: WarmPool) -> AsyncIterator[Agent]:
    async for client in serve_agent(pool, admission=Admission(pool.launcher.is_alive, single_tenant=True)):
        yield client


async def test_a_single_tenant_agent_forgets_its_datasets_when_the_tenant_changes(single_tenant_agent):
    """What one tenant's kernels were sent is not there for the next tenant's."""
    agent = single_tenant_agent
    first = await new_kernel(agent, "tenant-a")
    sent = await agent.call("PUT", f"/kernels/{first}/datasets/sales?version={VERSION}", body=parquet_bytes())
    assert sent.code == 204
    assert (await agent.call("DELETE", f"/kernels/{first}")).code == 204
    again = await new_kernel(agent, "tenant-a")
    assert (await link(agent, again, version=VERSION))["placed"]  # the same tenant: a cache hit
    assert (await agent.call("DELETE", f"/kernels/{again}")).code == 204
    other = await new_kernel(agent, "tenant-b")
    assert await link(agent, other, version=VERSION) == {"placed": False}
    assert os.listdir(agent.launcher.run_dir / CACHE_DIRECTORY) == []
