"""Failover that keeps kernels: two ``bi serve`` processes on one SQLite store, one ``bi executor`` and a real
``redis-server``. A user's card session and Jupyter kernel are opened through A, which is killed (``kill -9``)
while a cell runs in each; the clients reconnect through B, which reattaches to the same kernels (their
records in the store): the output of the running cells, published while no server was attached, is replayed,
and the next execution sees the variables set before, in the same kernel process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado import httpclient, websocket

from tests.kernels.sandbox.helpers import require
from tests.kernels.test_agent import descendants
from tests.redis_server import RedisServer

from ..serve_process import ROOT, Server, clean_env, executor_agent, free_port, request, stop_all
from ..switch_proxy import SwitchingProxy
from .test_card_socket import Socket
from .conftest import Client
from .test_jupyter_api import KernelSocket, V1, jupyter_server, personal_token, text_of  # noqa: F401 - a fixture

ADMIN = {"email": "admin@example.com", "password": "failover password"}
RUNNING = "import time\nprint('started', flush=True)\ntime.sleep(1)\nprint('{}', flush=True)"
TICKING = "import time\nfor i in range(24):\n    print('tick', i, flush=True)\n    time.sleep(0.25)\nprint('finished')"
QUIET = "import time\nprint('started', flush=True)\ntime.sleep(6)\nprint('late', flush=True)"
GAP_SECONDS = 2.5  # A is dead, B not reached yet: the cells' output comes meanwhile
NOTEBOOK = {"path": "work/failover.ipynb", "name": "failover.ipynb", "type": "notebook", "kernel": {"name": "python3"}}


class Cluster:
    """One ``bi executor``, one ``redis-server`` and the ``bi serve`` processes started on one SQLite store."""

    def __init__(self, root: Path, agent: subprocess.Popen, env: dict[str, str], ca_file: Path):
        self.root = root
        self.agent = agent
        self.env = env
        self.ca_file = ca_file
        self.servers: list[Server] = []

    def serve(self, *args: str) -> Server:
        port = free_port()
        with open(self.log_of(len(self.servers)), "w") as log:
            server = Server(self.root, ["--port", str(port), "--data-dir", str(self.root / "data"),
                                        f"--RedisBus.ca_file={self.ca_file}", *args], self.env, port, log,
                            start_seconds=120)
        self.servers.append(server)
        return server

    def log_of(self, number: int) -> Path:
        return self.root / f"serve{number}.log"

    def kernel_of(self, session_id: str) -> str:
        """The kernel the store records for the session."""
        return self._recorded(session_id, "kernel_id")

    def holder_of(self, session_id: str) -> str:
        """The task that the store records as holding the session."""
        return self._recorded(session_id, "holder")

    def _recorded(self, session_id: str, column: str) -> str:
        with sqlite3.connect(self.root / "data" / "bi.sqlite3") as db:
            return db.execute(f"SELECT {column} FROM kernel_records WHERE id = ?", (session_id,)).fetchone()[0]

    def kernel_pid(self, kernel_id: str) -> int:
        """The process of the kernel ``kernel_id``: the first of the agent's descendants in its cgroup."""
        inside = set()
        for pid in descendants(self.agent.pid):
            try:
                if f"/{kernel_id}\n" in Path(f"/proc/{pid}/cgroup").read_text():
                    inside.add(pid)
            except OSError:
                continue
        first = [pid for pid in inside if _parent(pid) not in inside]
        assert len(first) == 1, f"kernel {kernel_id}: processes {inside}"
        return first[0]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@contextlib.contextmanager
def running_cluster(root: Path, servers: int = 2) -> Iterator[Cluster]:
    """A cluster of ``servers`` processes under ``root`` (the first alone: it makes the store, the sign-in key
    and the kernel keys); everything stopped on leaving."""
    redis_server = RedisServer(root / "redis")
    try:
        with executor_agent(root, "failover", pool_size=1) as (agent, executor_env):
            env = clean_env(PYTHONPATH=str(ROOT), BI_ADMIN_EMAIL=ADMIN["email"], BI_ADMIN_PASSWORD=ADMIN["password"],
                            BI_REDIS_URL=redis_server.url, **executor_env)
            cluster = Cluster(root, agent, env, redis_server.ca_file)
            try:
                for _ in range(servers):
                    cluster.serve()
                yield cluster
            finally:
                for server in cluster.servers:
                    if server.proc.poll() is None:
                        server.proc.send_signal(signal.SIGINT)  # their sessions end, so the agent stops at once
                for server in cluster.servers:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        server.proc.wait(20)
                stop_all(cluster.servers)
    finally:
        redis_server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    require(os.geteuid() == 0, "the executor agent needs root to sandbox kernels")
    with running_cluster(tmp_path_factory.mktemp("failover")) as started:
        yield started


async def card_socket(server: Server, token: str, query: str = "") -> Socket:
    url = f"ws://127.0.0.1:{server.port}/api/cards/scratch/ws" + (f"?{query}" if query else "")
    request_ = httpclient.HTTPRequest(url, headers={"Authorization": f"Bearer {token}"})
    return Socket(await websocket.websocket_connect(request_))


async def kernel_socket(server: Server, token: str, kernel_id: str, session_id: str) -> KernelSocket:
    url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels?session_id={session_id}"
    request_ = httpclient.HTTPRequest(url, headers={"Authorization": f"token {token}"})
    return KernelSocket(await websocket.websocket_connect(request_, subprotocols=[V1]))


async def test_a_killed_server_s_sessions_go_on_through_the_other_with_their_kernels(cluster):
    a, b = cluster.servers
    status, body = request(a.port, "/api/auth/login", ADMIN)
    assert status == 200, body
    token = body["access_token"]

    # a card editor and a Jupyter notebook through A, each with a variable
    card = await card_socket(a, token)
    hello = await card.receive()
    assert hello["type"] == "session"
    card.send(type="execute", run_id="r1", code="x = object()\nprint(id(x))")
    first_run = await card.until("done")
    card_identity = next(m["output"]["text"] for m in first_run if m["type"] == "output")
    status, session = request(a.port, "/api/sessions", NOTEBOOK, token=token)  # as JupyterLab opens a notebook
    assert status == 201, session
    kernel = session["kernel"]
    client_session = uuid.uuid4().hex
    notebook = await kernel_socket(a, token, kernel["id"], client_session)
    jupyter_identity = text_of(await notebook.execute("x = object()\nprint(id(x))"))
    card_kernel, jupyter_kernel = cluster.kernel_of(hello["session_id"]), cluster.kernel_of(kernel["id"])
    pids = cluster.kernel_pid(card_kernel), cluster.kernel_pid(jupyter_kernel)

    # a cell running in each when A dies: their output comes while no server is attached
    running = notebook.send("execute_request", {"code": RUNNING.format("during the notebook gap"),
                                                "silent": False})
    card.send(type="execute", run_id="r2", code=RUNNING.format("during the card gap"))
    while card.seen[-1].get("output", {}).get("text") != "started\n":
        await card.receive()
    last_seen = card.seen[-1]["seq"]
    while not ((m := await notebook.receive())["parent_header"].get("msg_id") == running
               and m["content"].get("text") == "started\n"):
        pass
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    time.sleep(GAP_SECONDS)

    # someone else naming those sessions through B finds nothing there, and takes nothing of them
    other = {"email": "other@example.com", "password": "another failover password"}
    status, _ = request(b.port, "/api/users", {**other, "name": "Other"}, token=token)
    assert status == 201
    intruder = request(b.port, "/api/auth/login", other)[1]["access_token"]
    assert request(b.port, f"/api/kernels/{kernel['id']}", token=intruder)[0] == 404
    assert request(b.port, "/api/sessions", token=intruder) == (200, [])
    assert request(b.port, f"/api/sessions/{session['id']}", token=intruder)[0] == 404

    # JupyterLab's polling through B still lists the notebook's session and its kernel; listing reattaches nothing
    holder = cluster.holder_of(kernel["id"])
    status, listed = request(b.port, "/api/sessions", token=token)
    assert status == 200 and [(s["id"], s["path"], s["kernel"]["id"]) for s in listed] \
        == [(session["id"], NOTEBOOK["path"], kernel["id"])], listed
    assert request(b.port, f"/api/sessions/{session['id']}", token=token)[1]["notebook"]["path"] == NOTEBOOK["path"]
    assert kernel["id"] in [k["id"] for k in request(b.port, "/api/kernels", token=token)[1]]
    assert cluster.holder_of(kernel["id"]) == holder
    with pytest.raises(httpclient.HTTPClientError) as refused:
        await card_socket(b, intruder, f"session={hello['session_id']}&after={last_seen}")
    assert refused.value.code == 404

    # the clients reconnect through B (JupyterLab reads its kernel's model first): what they missed first,
    # then the same kernels
    status, model = request(b.port, f"/api/kernels/{kernel['id']}", token=token)
    assert status == 200 and model["id"] == kernel["id"], model
    notebook = await kernel_socket(b, token, kernel["id"], client_session)
    replayed = []
    while not any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                  and m["parent_header"].get("msg_id") == running for m in replayed):
        replayed.append(await notebook.receive())
    assert "during the notebook gap" in text_of([m for m in replayed if m["parent_header"].get("msg_id") == running])
    assert text_of(await notebook.execute("print(id(x))")) == jupyter_identity

    card = await card_socket(b, token, f"session={hello['session_id']}&after={last_seen}")
    replayed_card = [await card.receive()]
    while (replayed_card[-1]["type"], replayed_card[-1].get("run_id")) != ("done", "r2"):
        replayed_card.append(await card.receive())
    assert [m["seq"] for m in replayed_card] == list(range(last_seen + 1, last_seen + 1 + len(replayed_card)))
    assert ("r2", "during the card gap\n") in [(m["run_id"], m["output"].get("text")) for m in replayed_card
                                               if m["type"] == "output"]
    assert replayed_card[-1]["status"] == "ok"  # the editor's run ends, though its server died
    card.send(type="execute", run_id="r3", code="print(id(x))")
    after = await card.until("done")
    assert next(m["output"]["text"] for m in after if m["type"] == "output") == card_identity
    assert after[-1]["status"] == "ok"

    assert (cluster.kernel_of(hello["session_id"]), cluster.kernel_of(kernel["id"])) == (card_kernel, jupyter_kernel)
    assert (cluster.kernel_pid(card_kernel), cluster.kernel_pid(jupyter_kernel)) == pids
    notebook.close()
    card.close()

    # the notebook renamed, then closed, through B
    status, renamed = request(b.port, f"/api/sessions/{session['id']}", {"path": "work/renamed.ipynb"}, token=token,
                              method="PATCH")
    assert status == 200 and renamed["kernel"]["id"] == kernel["id"], renamed
    assert [s["path"] for s in request(b.port, "/api/sessions", token=token)[1]] == ["work/renamed.ipynb"]
    assert request(b.port, f"/api/sessions/{session['id']}", token=token, method="DELETE")[0] == 204
    assert request(b.port, "/api/sessions", token=token) == (200, [])
    assert request(b.port, f"/api/kernels/{kernel['id']}", token=token)[0] == 404


async def test_a_stopped_server_leaves_its_sessions_kernels_to_the_other(cluster):
    """A rolling deploy: the task stopped with SIGTERM lets go of its sessions, not their kernels; the task the
    editor reaches next follows the run still going to its end."""
    b = next(server for server in cluster.servers if server.proc.poll() is None)
    c = cluster.serve()
    token = request(c.port, "/api/auth/login", ADMIN)[1]["access_token"]
    card = await card_socket(c, token)
    hello = await card.receive()
    card.send(type="execute", run_id="r1", code="y = object()\nprint(id(y))")
    card_identity = next(m["output"]["text"] for m in await card.until("done") if m["type"] == "output")
    status, kernel = request(c.port, "/api/kernels", {"name": "python3"}, token=token)
    assert status == 201, kernel
    status, rest = request(c.port, "/api/card-sessions", {}, token=token)
    assert status == 201, rest
    rest_run = f"/api/card-sessions/{rest['id']}/execute"
    rest_identity = request(c.port, rest_run, {"code": "z = object()\nprint(id(z))"}, token=token)[1]["outputs"]
    client_session = uuid.uuid4().hex
    notebook = await kernel_socket(c, token, kernel["id"], client_session)
    jupyter_identity = text_of(await notebook.execute("y = object()\nprint(id(y))"))
    # a session on that kernel made through C is seen and renamed through B, while C holds its kernel
    status, session = request(c.port, "/api/sessions", {**NOTEBOOK, "kernel": {"id": kernel["id"]}}, token=token)
    assert status == 201, session
    holder = cluster.holder_of(kernel["id"])
    assert [s["id"] for s in request(b.port, "/api/sessions", token=token)[1]] == [session["id"]]
    status, renamed = request(b.port, f"/api/sessions/{session['id']}", {"path": "work/moved.ipynb"}, token=token,
                              method="PATCH")
    assert status == 200 and renamed["kernel"]["id"] == kernel["id"], renamed
    assert [s["path"] for s in request(c.port, "/api/sessions", token=token)[1]] == ["work/moved.ipynb"]
    assert cluster.holder_of(kernel["id"]) == holder
    kernels = cluster.kernel_of(hello["session_id"]), cluster.kernel_of(kernel["id"])
    pids = [cluster.kernel_pid(kernel_id) for kernel_id in kernels]
    card.send(type="execute", run_id="ticking", code=TICKING)  # still going when b reattaches
    while card.seen[-1].get("output", {}).get("text") != "tick 0\n":
        await card.receive()
    last_seen = card.seen[-1]["seq"]

    c.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    with contextlib.suppress(OSError):  # till it refuses connections: the load balancer sends all to b then
        while request(c.port, "/api/health", timeout=1):
            assert time.monotonic() < deadline, "c did not stop"
            await asyncio.sleep(0.1)

    card = await card_socket(b, token, f"session={hello['session_id']}&after={last_seen}")
    ticking = [await card.receive()]
    while (ticking[-1]["type"], ticking[-1].get("run_id")) != ("done", "ticking"):
        ticking.append(await card.receive())
    # b follows the run to its end, though c sent it: the rest of its outputs, and its run time
    assert [m["output"]["text"] for m in ticking if m.get("run_id") == "ticking" and m["type"] == "output"][-1] \
        == "finished\n", ticking
    assert ticking[-1]["status"] == "ok" and ticking[-1]["execution_time_ms"] is not None, ticking[-1]
    notebook = await kernel_socket(b, token, kernel["id"], client_session)
    assert text_of(await notebook.execute("print(id(y))")) == jupyter_identity
    card.send(type="execute", run_id="r2", code="print(id(y))")
    after = await card.until("done")
    assert next(m["output"]["text"] for m in after if m["type"] == "output") == card_identity
    assert (cluster.kernel_of(hello["session_id"]), cluster.kernel_of(kernel["id"])) == kernels
    assert [cluster.kernel_pid(kernel_id) for kernel_id in kernels] == pids
    # a session opened over HTTP goes on through b too, and b closes it
    assert request(b.port, rest_run, {"code": "print(id(z))"}, token=token)[1]["outputs"] == rest_identity
    assert request(b.port, f"/api/card-sessions/{rest['id']}", token=token, method="DELETE")[0] == 204
    assert request(b.port, f"/api/card-sessions/{rest['id']}", token=token)[0] == 404
    assert c.proc.wait(30) == 0
    notebook.close()
    card.close()


async def test_only_the_server_holding_a_session_culls_it(cluster):
    """The client reaches another task while the first still lives (its socket there dropped): the first's idle
    cull lets go of the session without destroying the kernel the other holds now."""
    b = next(server for server in cluster.servers if server.proc.poll() is None)
    d = cluster.serve("--KernelPool.idle_timeout=4")
    token = request(d.port, "/api/auth/login", ADMIN)[1]["access_token"]
    card = await card_socket(d, token)
    hello = await card.receive()
    card.send(type="execute", run_id="r1", code="z = object()\nprint(id(z))")
    identity = next(m["output"]["text"] for m in await card.until("done") if m["type"] == "output")
    kernel_id = cluster.kernel_of(hello["session_id"])
    pid = cluster.kernel_pid(kernel_id)

    moved = await card_socket(b, token, f"session={hello['session_id']}&after={card.seen[-1]['seq']}")
    log = cluster.log_of(cluster.servers.index(d))
    deadline = time.monotonic() + 30
    while '"reason": "idle"' not in log.read_text():  # d's cull came
        assert time.monotonic() < deadline, "d did not cull its session"
        await asyncio.sleep(0.5)
    time.sleep(1)  # a kernel d destroyed would be gone by now
    moved.send(type="execute", run_id="r2", code="print(id(z))")
    after = await moved.until("done")
    assert next(m["output"]["text"] for m in after if m["type"] == "output") == identity
    assert (cluster.kernel_of(hello["session_id"]), cluster.kernel_pid(kernel_id)) == (kernel_id, pid)
    moved.close()
    card.close()


@pytest.fixture
def proxy() -> Iterator[SwitchingProxy]:
    """A load balancer with no targets yet; it stops after a jupyter_server requested later (its kernels are
    shut down through it)."""
    started = SwitchingProxy([])
    yield started
    started.close()


async def test_a_quiet_run_and_a_jupyter_server_s_kernel_go_on_through_the_other(cluster, proxy, jupyter_server):
    """Behind a load balancer (a proxy sending new connections to E, or to B once E is dead), E is killed while a
    card run is quiet (it published nothing while no server held its kernel) and JupyterLab's server (``jupyter
    server --gateway-url``) has a notebook's kernel there: the task that reattaches follows the run, whose later
    output and end reach the editor; jupyter_server keeps listing the kernel and its session, reconnects its
    gateway websocket, and its client's next cell sees the variable set before, in the same kernel process."""
    b = next(server for server in cluster.servers if server.proc.poll() is None)
    e = cluster.serve()
    proxy.ports = [e.port, b.port]
    token = request(e.port, "/api/auth/login", ADMIN)[1]["access_token"]
    lab = await jupyter_server(Client(proxy.url, None), await personal_token(Client(e.url, None), token))
    created = await lab.fetch("POST", "/api/sessions", json_body=NOTEBOOK)
    assert created.code == 201, created.body
    kernel_id = created.json()["kernel"]["id"]
    url = f"{lab.base_url.replace('http', 'ws')}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4()}"
    notebook = KernelSocket(await websocket.websocket_connect(httpclient.HTTPRequest(
        url, headers={"Authorization": f"token {lab.token}"})))
    identity = text_of(await notebook.execute("x = object()\nprint(id(x))"))
    pid = cluster.kernel_pid(cluster.kernel_of(kernel_id))

    card = await card_socket(e, token)
    hello = await card.receive()
    card.send(type="execute", run_id="quiet", code=QUIET)
    while card.seen[-1].get("output", {}).get("text") != "started\n":
        await card.receive()
    last_seen = card.seen[-1]["seq"]
    time.sleep(1.5)  # past the agent's margin: nothing of the run is kept for the gap
    e.proc.send_signal(signal.SIGKILL)
    e.proc.wait(10)

    card = await card_socket(b, token, f"session={hello['session_id']}&after={last_seen}")
    rest = [await card.receive()]
    while (rest[-1]["type"], rest[-1].get("run_id")) != ("done", "quiet"):
        rest.append(await card.receive())
    assert [(m["run_id"], m["output"]["text"]) for m in rest if m["type"] == "output"] == [("quiet", "late\n")]
    assert rest[-1]["status"] == "ok", rest[-1]
    card.close()

    # what JupyterLab polls, through jupyter_server and the proxy to B
    assert kernel_id in [k["id"] for k in (await lab.fetch("GET", "/api/kernels")).json()]
    assert [s["kernel"]["id"] for s in (await lab.fetch("GET", "/api/sessions")).json()] == [kernel_id]
    assert text_of(await until_answered(notebook, "print(id(x))")) == identity
    assert cluster.kernel_pid(cluster.kernel_of(kernel_id)) == pid
    notebook.close()


async def until_answered(socket: KernelSocket, code: str, seconds: float = 60) -> list[dict]:
    """``code`` executed, sent again every few seconds until it is answered: a request sent while jupyter_server's
    gateway websocket reconnects is dropped."""
    deadline = time.monotonic() + seconds
    while True:
        msg_id = socket.send("execute_request", {"code": code, "silent": False})
        try:
            return await asyncio.wait_for(socket.answers(msg_id), 5)
        except TimeoutError:
            assert time.monotonic() < deadline, "no answer through the reconnected gateway"
