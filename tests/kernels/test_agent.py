"""The executor agent over real HTTP: tokens, kernels from the pool, datasets placed for load_dataset."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import io
import json
import os
import stat
import time
from collections.abc import AsyncIterator
from typing import Any
from pathlib import Path

import jwt
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jupyter_client.session import Session
from tornado import httpclient, httpserver
from tornado.netutil import bind_sockets

from kernels.agent import AUDIENCE, ISSUER, DatasetFile, UnsafeDirectory, link_dataset, make_app, reap_orphans
from kernels.agent_app import RELAY_DIRECTORY
from kernels.pool import WarmPool
from kernels.relay import Relays, UnixListeners
from tests.kernels.sandbox.helpers import require
from tests.kernels.kernel_fixtures import run, texts
from tests.kernels.test_attacks import ENOENT, attack

SERVER_KEY = Ed25519PrivateKey.generate()


def token(key=SERVER_KEY, algorithm: str = "EdDSA", lifetime: int = 60, **claims) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + lifetime, **claims},
                      key, algorithm=algorithm)


class Agent:
    def __init__(self, base_url: str, launcher):
        self.base_url = base_url
        self.launcher = launcher
        self.http = httpclient.AsyncHTTPClient(force_instance=True)
        self.settings: dict[str, Any] = {}  # the agent app's

    async def call(self, method: str, path: str, bearer: str | None = None, body: bytes | None = None):
        headers = {"Authorization": f"Bearer {bearer if bearer is not None else token()}"}
        if body is None and method in ("POST", "PUT"):
            body = b""
        return await self.http.fetch(self.base_url + path, method=method, headers=headers, body=body,
                                     raise_error=False)


@pytest.fixture
def pool_size() -> int:
    return 1


async def serve_agent(pool: WarmPool, gap_bytes: int = 0, **options: Any) -> AsyncIterator[Agent]:
    """The agent as ``bi executor`` serves it for a server on this host (kernels relayed on unix sockets), with
    ``make_app``'s ``options`` (and ``gap_bytes`` kept per kernel while no server is attached)."""
    listeners = UnixListeners(pool.launcher.run_dir / RELAY_DIRECTORY)
    listeners.prepare()
    relays = Relays(listeners, gap_bytes=gap_bytes)
    sockets = bind_sockets(0, "127.0.0.1")
    app = make_app(pool, SERVER_KEY.public_key(), {"status": "ok"}, relays, **options)
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    client = Agent(f"http://127.0.0.1:{sockets[0].getsockname()[1]}", pool.launcher)
    client.settings = app.settings
    yield client
    client.http.close()
    server.stop()
    await relays.close_all()
    listeners.close()


@pytest.fixture
async def agent(pool: WarmPool) -> AsyncIterator[Agent]:
    async for client in serve_agent(pool):
        yield client


async def test_health_needs_no_token(agent):
    """/health answers without a token and shows the pool."""
    response = await agent.call("GET", "/health", bearer="")
    body = json.loads(response.body)
    assert response.code == 200 and body["status"] == "ok" and body["pool"]["size"] == 1


async def test_a_hand_out_opens_its_relay_before_the_replacement_starts(agent, monkeypatch):
    """The kernel that replaces one handed out is forked only once the relay of the one handed out is open: its
    fork and start competed for the CPU with that opening (6-112 ms of the agent's answer on a busy machine)."""
    events: list[str] = []
    launch, open_relay = agent.launcher.launch, agent.settings["relays"].open

    async def launched(**options):
        events.append("replacement started")
        return await launch(**options)

    async def opened(*args):
        connection = await open_relay(*args)
        events.append("relay open")
        return connection

    monkeypatch.setattr(agent.launcher, "launch", launched)
    monkeypatch.setattr(agent.settings["relays"], "open", opened)
    assert (await agent.call("POST", "/kernels")).code == 201
    for _ in range(500):
        if len(events) == 2:
            break
        await asyncio.sleep(0.01)
    assert events == ["relay open", "replacement started"]


@pytest.mark.parametrize("bad", [
    "",
    "not-a-jwt",
    token(key=Ed25519PrivateKey.generate()),
    token(lifetime=-10),
    token(lifetime=3600),
    token(aud="someone-else"),
])
async def test_bad_tokens_refused(agent, bad):
    """Missing, garbled, foreign-key, expired, too long-lived and wrong-audience tokens get 401."""
    response = await agent.call("POST", "/kernels", bearer=bad)
    assert response.code == 401


async def test_public_key_as_hmac_secret_refused(agent):
    """An HS256 token keyed with the public key (algorithm confusion) is refused."""
    public_pem = SERVER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    parts = [base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
             for part in ({"alg": "HS256", "typ": "JWT"},
                          {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60})]
    signature = hmac.new(public_pem, b".".join(parts), hashlib.sha256).digest()
    forged = b".".join([*parts, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()
    assert (await agent.call("POST", "/kernels", bearer=forged)).code == 401


async def test_kernel_with_dataset_end_to_end(agent):
    """A kernel from the agent reads a dataset the agent placed, then is destroyed."""
    created = await agent.call("POST", "/kernels")
    assert created.code == 201
    kernel_id = json.loads(created.body)["kernel_id"]
    parquet = io.BytesIO()
    pd.DataFrame({"店舗": ["東京", "大阪"], "売上": [10, 20]}).to_parquet(parquet)
    placed = await agent.call("PUT", f"/kernels/{kernel_id}/datasets/%E5%A3%B2%E4%B8%8A", body=parquet.getvalue())
    assert placed.code == 204
    kernel = agent.launcher.kernels[kernel_id]
    client = agent.launcher.client(kernel)
    client.start_channels()
    outputs: list[dict] = []
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive('print(load_dataset("売上")["売上"].sum())', timeout=30,
                                                 output_hook=outputs.append)
    finally:
        client.stop_channels()
    assert reply["content"]["status"] == "ok"
    assert "30" in "".join(m["content"].get("text", "") for m in outputs)
    assert (await agent.call("DELETE", f"/kernels/{kernel_id}")).code == 204
    assert (await agent.call("DELETE", f"/kernels/{kernel_id}")).code == 404
    assert kernel_id not in agent.launcher.kernels


CONNECT = '''
socket = sys.modules["socket"]
attempt("connect", lambda: socket.socket(socket.AF_UNIX).connect(ARGS["path"]))
'''


async def test_agent_on_this_host_relays_on_unix_sockets_of_its_own(agent):
    """For a server on this host, POST /kernels hands out ipc info of a relay in a directory only the
    agent's uid enters, and code runs through it; another kernel cannot reach that relay (so neither
    its outputs); DELETE removes the relay's sockets."""
    created = json.loads((await agent.call("POST", "/kernels")).body)
    other = json.loads((await agent.call("POST", "/kernels")).body)
    info, directory = created["connection"], agent.launcher.run_dir / RELAY_DIRECTORY
    assert info["transport"] == "ipc" and Path(info["ip"]).parent == directory
    assert agent.launcher.kernels[created["kernel_id"]].connection["ip"] != info["ip"]
    owner = directory.stat()
    assert (owner.st_uid, stat.S_IMODE(owner.st_mode)) == (os.getuid(), 0o700)
    relayed = dataclasses.replace(agent.launcher.kernels[created["kernel_id"]], connection=info)
    status, outputs = await run(agent.launcher, relayed, "print(6 * 7)")
    assert status == "ok" and texts(outputs) == "42\n"
    iopub = f"{info['ip']}-{info['iopub_port']}"
    seen = await attack(agent.launcher, agent.launcher.kernels[other["kernel_id"]], CONNECT, path=iopub)
    assert seen == {"connect": ENOENT}
    assert (await agent.call("DELETE", f"/kernels/{created['kernel_id']}")).code == 204
    assert not [path for path in directory.iterdir() if path.name.startswith(Path(info["ip"]).name)]


async def test_kernel_ending_by_itself_is_an_event(agent):
    """A kernel whose card ends its process shows up in /events (long poll) and in its status."""
    created = json.loads((await agent.call("POST", "/kernels")).body)
    kernel_id = created["kernel_id"]
    assert created["limits"] == {"memory_mb": 2048}
    alive = json.loads((await agent.call("GET", f"/kernels/{kernel_id}")).body)
    assert alive == {"kernel_id": kernel_id, "alive": True, "exit": None}
    before = json.loads((await agent.call("GET", "/events?after=0&timeout=0")).body)
    assert created["agent_id"] == before["agent_id"]  # a server tells this agent's kernels from a successor's
    poll = asyncio.ensure_future(agent.call("GET", f"/events?after={before['last']}&timeout=30"))
    client = agent.launcher.client(agent.launcher.kernels[kernel_id])
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        client.execute("pd = __import__('pandas', None, None, (), 0)\npd.io.common.os._exit(3)")
        events = json.loads((await asyncio.wait_for(poll, 30)).body)
    finally:
        client.stop_channels()
    assert events["agent_id"] == before["agent_id"]
    assert [(e["kernel_id"], e["status"], e["oom"]) for e in events["events"]] == [(kernel_id, 3, False)]
    status = json.loads((await agent.call("GET", f"/kernels/{kernel_id}")).body)
    assert status["alive"] is False and status["exit"]["message"] == "the kernel exited with status 3"
    assert (await agent.call("GET", "/events?after=x")).code == 400


GAP_CELL = """
import time
print("before", flush=True)
time.sleep(1.5)
for i in range(LINES):
    print(f"after {i} " + "x" * 200, flush=True)
    time.sleep(0.002)
"""


async def test_output_while_no_server_is_attached_is_kept_for_the_next(pool):
    """A cell still running when its server's links drop goes on publishing: the agent keeps those signed
    messages (bounded in bytes, the oldest dropped and counted as lost) and hands them once to the server
    that reattaches, whose next execution sees the kernel's variables as they were."""
    async for agent in serve_agent(pool, gap_bytes=16 * 1024):
        created = json.loads((await agent.call("POST", "/kernels")).body)
        kernel_id, info = created["kernel_id"], created["connection"]
        relayed = dataclasses.replace(agent.launcher.kernels[kernel_id], connection=info)
        assert (await agent.call("POST", "/kernels/0123456789abcdef0123456789abcdef/gap")).code == 404
        first = agent.launcher.client(relayed)
        first.start_channels()
        await first.wait_for_ready(timeout=60)
        outputs: list[dict] = []
        reply = await first.execute_interactive("x = object(); print(id(x))", timeout=30, output_hook=outputs.append)
        assert reply["content"]["status"] == "ok"
        identity = texts(outputs)
        outputs.clear()
        for lines in (5, 200):  # within the bound, then past it
            running = first.execute(GAP_CELL.replace("LINES", str(lines)))
            while not outputs or outputs[-1]["content"].get("text") != "before\n":
                message = await first.get_iopub_msg(timeout=30)
                if message["parent_header"].get("msg_id") == running and message["msg_type"] == "stream":
                    outputs.append(message)
            first.stop_channels()  # the server holding it dies mid-cell
            await asyncio.sleep(1.5 + lines * 0.01 + 1)
            second = agent.launcher.client(relayed)
            second.start_channels()
            await second.wait_for_ready(timeout=60)
            gap = json.loads((await agent.call("POST", f"/kernels/{kernel_id}/gap")).body)
            verifier = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
            kept = [verifier.deserialize(verifier.feed_identities([base64.b64decode(frame) for frame in frames])[1])
                    for frames in gap["messages"]]  # each signed with the kernel's key
            streams = "".join(m["content"].get("text", "") for m in kept
                              if m["parent_header"].get("msg_id") == running and m["msg_type"] == "stream")
            if lines == 5:
                assert gap["lost"] == 0 and streams.count("after") == 5 and "after 4 " in streams
                assert any(m["msg_type"] == "execute_reply" or m["content"].get("execution_state") == "idle"
                           for m in kept if m["parent_header"].get("msg_id") == running)
            else:
                assert gap["lost"] > 0 and "after 199 " in streams and "after 0 " not in streams
                assert sum(len(base64.b64decode(f)) for frames in gap["messages"] for f in frames) <= 16 * 1024
            again = json.loads((await agent.call("POST", f"/kernels/{kernel_id}/gap")).body)
            assert again == {"messages": [], "lost": 0}  # taken once; nothing kept while attached
            outputs.clear()
            first = second
        # a quiet cell, started long before the links drop: its busy status leads what is handed over
        quiet = first.execute("import time\ntime.sleep(4)")
        while not ((message := await first.get_iopub_msg(timeout=30))["parent_header"].get("msg_id") == quiet
                   and message["content"].get("execution_state") == "busy"):
            pass
        await asyncio.sleep(1.5)  # past the margin
        first.stop_channels()
        gap = json.loads((await agent.call("POST", f"/kernels/{kernel_id}/gap")).body)
        kept = [verifier.deserialize(verifier.feed_identities([base64.b64decode(frame) for frame in frames])[1])
                for frames in gap["messages"]]
        assert [(m["msg_type"], m["content"].get("execution_state")) for m in kept
                if m["parent_header"].get("msg_id") == quiet] == [("status", "busy")]
        first = agent.launcher.client(relayed)
        first.start_channels()
        await first.wait_for_ready(timeout=60)
        reply = await first.execute_interactive("print(id(x))", timeout=30, output_hook=outputs.append)
        assert reply["content"]["status"] == "ok" and texts(outputs) == identity
        first.stop_channels()


async def test_a_kernel_no_server_reattaches_to_is_destroyed(pool):
    """Once no server has been attached to a kernel for ``orphan_seconds``, the agent destroys it; one a
    server is attached to stays."""
    async for agent in serve_agent(pool, gap_bytes=1024):
        relays, admission = agent.settings["relays"], agent.settings["admission"]
        kept, orphan = [json.loads((await agent.call("POST", "/kernels")).body) for _ in range(2)]
        clients = {}
        for created in (kept, orphan):
            clients[created["kernel_id"]] = agent.launcher.client(dataclasses.replace(
                agent.launcher.kernels[created["kernel_id"]], connection=created["connection"]))
            clients[created["kernel_id"]].start_channels()
            await clients[created["kernel_id"]].wait_for_ready(timeout=60)
        clients[orphan["kernel_id"]].stop_channels()  # its server died
        reaper = asyncio.create_task(reap_orphans(relays, agent.launcher, admission, 0.5))
        try:
            for _ in range(100):
                if orphan["kernel_id"] not in agent.launcher.kernels:
                    break
                await asyncio.sleep(0.1)
        finally:
            reaper.cancel()
        assert (await agent.call("GET", f"/kernels/{orphan['kernel_id']}")).code == 404
        assert (await agent.call("GET", f"/kernels/{kept['kernel_id']}")).code == 200
        clients[kept["kernel_id"]].stop_channels()


def place_dataset(folder, filename: str, data: bytes) -> None:
    """``data`` placed the way a dataset ``PUT`` places its body, in two chunks."""
    dataset = DatasetFile(folder, filename)
    dataset.write(data[:2])
    dataset.write(data[2:])
    dataset.place()


@pytest.mark.parametrize("swap", ["symlink", "foreign", "file"])
def test_dataset_placement_refuses_a_swapped_folder(tmp_path, swap):
    """Should a kernel replace its dataset folder (a weaker sandbox has no Landlock), the agent
    refuses to write instead of following it elsewhere."""
    require(os.geteuid() == 0, "needs root to own the folder the way the agent does")
    elsewhere, folder = tmp_path / "elsewhere", tmp_path / "datasets"
    elsewhere.mkdir()
    if swap == "symlink":
        folder.symlink_to(elsewhere)
    elif swap == "foreign":
        folder.mkdir()
        os.chown(folder, 65534, 65534)
    else:
        folder.write_bytes(b"")
    with pytest.raises(UnsafeDirectory, match="was replaced"):
        place_dataset(folder, "sales.parquet", b"PAR1")
    assert list(elsewhere.iterdir()) == []


def test_dataset_placement_replaces_atomically(tmp_path):
    """A new upload of a dataset replaces the file whole and read-only, leaving no partial file."""
    place_dataset(tmp_path, "sales.parquet", b"one")
    place_dataset(tmp_path, "sales.parquet", b"two")
    assert [p.name for p in tmp_path.iterdir()] == ["sales.parquet"]
    assert (tmp_path / "sales.parquet").read_bytes() == b"two"
    assert (tmp_path / "sales.parquet").stat().st_mode & 0o777 == 0o444


def descendants(pid: int) -> set[int]:
    """The processes under ``pid`` now."""
    parents = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(entry.parent.name)] = int(entry.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue  # ended meanwhile
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


async def test_a_destroyed_kernel_is_reaped_and_frees_its_place(agent):
    """When DELETE answers, every process of the kernel is gone (reaped, not a zombie) and its place is free."""
    created = json.loads((await agent.call("POST", "/kernels")).body)
    kernel = agent.launcher.kernels[created["kernel_id"]]
    processes = {kernel.pid} | descendants(kernel.pid)
    assert len(processes) >= 2  # the sandbox's reaper and the kernel under it
    assert json.loads((await agent.call("GET", "/health")).body)["in_use"] == 1
    assert (await agent.call("DELETE", f"/kernels/{created['kernel_id']}")).code == 204
    assert not [pid for pid in processes if Path(f"/proc/{pid}").exists()]
    assert json.loads((await agent.call("GET", "/health")).body)["in_use"] == 0


def test_a_discarded_dataset_leaves_no_partial_file(tmp_path):
    """A body cut short: the chunks written so far are removed and the placed file stays as it was."""
    place_dataset(tmp_path, "sales.parquet", b"one")
    dataset = DatasetFile(tmp_path, "sales.parquet")
    dataset.write(b"tw")
    dataset.discard()
    dataset.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["sales.parquet"]
    assert (tmp_path / "sales.parquet").read_bytes() == b"one"


def test_a_second_name_is_a_link_to_the_placed_file(tmp_path):
    """Another name of a placed dataset is the same file (no second copy), read-only, put in place whole; a name
    of nothing placed is refused."""
    place_dataset(tmp_path, "sales.parquet", b"one")
    link_dataset(tmp_path, "sales.parquet", "old.parquet")
    link_dataset(tmp_path, "sales.parquet", "old.parquet")  # again: replaced, not refused
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.parquet", "sales.parquet"]
    assert (tmp_path / "old.parquet").stat().st_ino == (tmp_path / "sales.parquet").stat().st_ino
    assert (tmp_path / "old.parquet").stat().st_mode & 0o777 == 0o444
    with pytest.raises(FileNotFoundError):
        link_dataset(tmp_path, "missing.parquet", "other.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.parquet", "sales.parquet"]


def test_a_link_never_follows_a_symlink(tmp_path):
    """A symlink where the placed file should be is not followed: its target is never linked in."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "sales.parquet").symlink_to(secret)
    link_dataset(folder, "sales.parquet", "old.parquet")
    assert (folder / "old.parquet").is_symlink()  # the link itself, pointing where it did: nothing new readable
