"""The Jupyter Server kernel API with real clients: jupyter_server in gateway mode, nbclient, and
websockets framed by jupyter_server's own serializers, against bi serve's agent and real kernels."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import nbformat
import pytest
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (deserialize_binary_message,
                                                             deserialize_msg_from_ws_v1,
                                                             serialize_binary_message, serialize_msg_to_ws_v1)
from tornado import httpclient, websocket

from server.jupyter.wire import V1
from server.models import KernelRecord, iso_time, utcnow

from .test_datasets import JAPANESE_CSV, upload
from .test_sessions import REAL_OS, root, start_cards  # noqa: F401 - fixtures

ECHO_TARGET = """
def echo(comm, opened):
    comm.send({"opened": opened["content"]["data"]}, buffers=opened["buffers"])
    comm.on_msg(lambda message: comm.send({"echo": message["content"]["data"]}, buffers=message["buffers"]))
get_ipython().kernel.comm_manager.register_target("echo", echo)
"""
BINARY = bytes(range(256)) + b"\xff\xfe\x80 not UTF-8"


class KernelSocket:
    """A Jupyter client's websocket, framed (v1 or legacy) by jupyter_server's serializers."""

    def __init__(self, connection: websocket.WebSocketClientConnection):
        self.connection = connection
        self.v1 = connection.selected_subprotocol == V1
        self.session = Session()

    def send(self, msg_type: str, content: dict, channel: str = "shell", buffers: tuple[bytes, ...] = ()) -> str:
        msg = self.session.msg(msg_type, content)
        if self.v1:
            pack = self.session.pack
            parts = [pack(msg["header"]), pack(msg["parent_header"]), pack(msg["metadata"]), pack(msg["content"])]
            frame = serialize_msg_to_ws_v1([*parts, *buffers], channel)
        elif buffers:
            frame = serialize_binary_message({**msg, "channel": channel, "buffers": list(buffers)})
        else:
            frame = json.dumps({**msg, "channel": channel}, default=json_default)
        self.connection.write_message(frame, binary=isinstance(frame, bytes))
        return msg["header"]["msg_id"]

    async def receive(self, timeout: float = 30) -> dict:
        frame = await asyncio.wait_for(self.connection.read_message(), timeout)
        assert frame is not None, f"the server closed the socket ({self.connection.close_reason})"
        if self.v1:
            channel, parts = deserialize_msg_from_ws_v1(frame)
            message = {"channel": channel, "header": json.loads(parts[0]), "parent_header": json.loads(parts[1]),
                       "content": json.loads(parts[3]), "buffers": parts[4:]}
        else:
            message = deserialize_binary_message(frame) if isinstance(frame, bytes) else json.loads(frame)
        message["msg_type"] = message["header"]["msg_type"]
        return message

    async def answers(self, msg_id: str, reply: bool = True) -> list[dict]:
        """The messages answering ``msg_id``, up to its iopub idle (and its shell reply when ``reply``)."""
        got, idle, replied = [], False, not reply
        while not (idle and replied):
            message = await self.receive()
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            got.append(message)
            idle = idle or (message["msg_type"] == "status" and message["content"]["execution_state"] == "idle")
            replied = replied or message["channel"] == "shell"
        return got

    async def execute(self, code: str) -> list[dict]:
        return await self.answers(self.send("execute_request", {"code": code, "silent": False}))

    def close(self) -> None:
        self.connection.close()


def text_of(messages: list[dict]) -> str:
    return "".join(m["content"].get("text", "") + m["content"].get("data", {}).get("text/plain", "")
                   + m["content"].get("evalue", "") for m in messages if m["channel"] == "iopub")


def reply_of(messages: list[dict]) -> dict:
    return next(m["content"] for m in messages if m["channel"] == "shell")


async def start_kernel(api, token: str) -> dict:
    response = await api.fetch("POST", "/api/kernels", json_body={"name": "python3"},
                               headers={"Authorization": f"token {token}"})
    assert response.code == 201, response.body
    return response.json()


async def connect(api, token: str | None, kernel_id: str, v1: bool = True, session_id: str = "",
                  via: str = "header") -> KernelSocket:
    url = f"{api.base_url.replace('http', 'ws')}/api/kernels/{kernel_id}/channels?session_id={session_id}"
    headers = {}
    if token and via == "header":
        headers["Authorization"] = f"token {token}"
    elif token:
        url += f"&token={token}"
    connection = await websocket.websocket_connect(httpclient.HTTPRequest(url, headers=headers),
                                                   subprotocols=[V1] if v1 else None)
    return KernelSocket(connection)


async def test_binary_buffers_round_trip_in_both_protocols(start_cards):
    """A comm message's binary buffer (not UTF-8) goes to the kernel and back intact, framed v1 or legacy;
    round trips take milliseconds (with Nagle's algorithm on, every one waits ~40 ms for a delayed ACK)."""
    api = await start_cards()
    token = await api.login()
    kernel = await start_kernel(api, token)
    for v1 in (True, False):
        socket = await connect(api, token, kernel["id"], v1=v1)
        assert socket.v1 is v1
        socket.connection.write_message(b"\x00\x00\x00\x09garbage", binary=True)
        socket.connection.write_message("{not json")  # both dropped; the socket stays
        assert reply_of(await socket.execute(ECHO_TARGET))["status"] == "ok"
        comm_id = uuid.uuid4().hex
        opened = await socket.answers(socket.send("comm_open", {"comm_id": comm_id, "target_name": "echo",
                                                                "data": {"n": 1}}, buffers=(BINARY,)), reply=False)
        echoed = await socket.answers(socket.send("comm_msg", {"comm_id": comm_id, "data": {"n": 2}},
                                                  buffers=(BINARY, b"second")), reply=False)
        first = next(m for m in opened if m["msg_type"] == "comm_msg")
        second = next(m for m in echoed if m["msg_type"] == "comm_msg")
        assert first["content"]["data"] == {"opened": {"n": 1}} and [bytes(b) for b in first["buffers"]] == [BINARY]
        assert second["content"]["data"] == {"echo": {"n": 2}}
        assert [bytes(b) for b in second["buffers"]] == [BINARY, b"second"]
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            await socket.execute("1 + 1")
            timings.append(time.perf_counter() - started)
        assert min(timings) < 0.025, f"TCP_NODELAY: {timings}"
        socket.close()


async def test_kernels_are_private_and_shaped_like_jupyter_servers(start_cards):
    """Kernel specs and kernel models as Jupyter Server has them; tokens three ways; nobody else's kernel exists."""
    api = await start_cards()
    token = await api.login()
    specs = (await api.fetch("GET", "/api/kernelspecs", token=token)).json()
    spec = specs["kernelspecs"]["python3"]
    assert specs["default"] == "python3" and spec["spec"]["language"] == "python"
    assert spec["spec"]["metadata"]["bi"]["wall_seconds"] == 600  # a notebook cell's, not a card's 10 s
    logo = await api.fetch("GET", spec["resources"]["logo-64x64"])
    assert logo.code == 200 and logo.headers["Content-Type"] == "image/png" and logo.body.startswith(b"\x89PNG")
    assert (await api.fetch("GET", "/api/kernelspecs/python3", token=token)).json() == spec
    assert (await api.fetch("GET", "/api/kernelspecs/ir", token=token)).code == 404
    assert (await api.fetch("POST", "/api/kernels", token=token, json_body={"name": "ir"})).code == 404
    assert (await api.fetch("GET", "/api/kernels")).code == 401

    kernel = await start_kernel(api, token)
    assert set(kernel) == {"id", "name", "last_activity", "execution_state", "connections"}
    assert uuid.UUID(kernel["id"]) and kernel["name"] == "python3" and kernel["execution_state"] == "idle"
    dt.datetime.strptime(kernel["last_activity"], "%Y-%m-%dT%H:%M:%S.%fZ")
    by_query = await api.fetch("GET", f"/api/kernels/{kernel['id']}?token={token}", token="")
    assert by_query.json()["id"] == kernel["id"]
    assert [k["id"] for k in (await api.fetch("GET", "/api/kernels", token=token)).json()] == [kernel["id"]]
    assert (await api.fetch("GET", "/api/card-sessions", token=token)).json() == {"sessions": [], "held": 1,
                                                                                  "limit": 4}, "a kernel counts"
    socket = await connect(api, token, kernel["id"], via="query")
    assert (await api.fetch("GET", f"/api/kernels/{kernel['id']}", token=token)).json()["connections"] == 1

    stranger = await api.add_user("stranger@example.com")
    assert (await api.fetch("GET", "/api/kernels", token=stranger)).json() == []
    for method, path in [("GET", ""), ("POST", "/interrupt"), ("POST", "/restart"), ("DELETE", "")]:
        assert (await api.fetch(method, f"/api/kernels/{kernel['id']}{path}", token=stranger)).code == 404
    with pytest.raises(httpclient.HTTPClientError) as hidden:
        await connect(api, stranger, kernel["id"])
    assert hidden.value.code == 404
    with pytest.raises(httpclient.HTTPClientError) as anonymous:
        await connect(api, None, kernel["id"])
    assert anonymous.value.code == 401

    await socket.execute("kept = 42")
    assert (await api.fetch("POST", f"/api/kernels/{kernel['id']}/interrupt", token=token)).code == 204
    assert text_of(await socket.execute("kept")) == "42"
    restarted = await api.fetch("POST", f"/api/kernels/{kernel['id']}/restart", token=token)
    assert restarted.code == 200 and restarted.json()["id"] == kernel["id"]
    await until_state(socket, "starting")  # a restart asked for, not a death: JupyterLab shows no "kernel died"
    assert reply_of(await socket.execute("kept"))["ename"] == "NameError"
    assert (await api.fetch("DELETE", f"/api/kernels/{kernel['id']}", token=token)).code == 204
    assert await socket.connection.read_message() is None, "the socket ends with its kernel"
    assert (await api.fetch("GET", f"/api/kernels/{kernel['id']}", token=token)).code == 404


async def test_sessions_bind_paths_to_kernels(start_cards):
    """/api/sessions as Jupyter Server has it: one session per path, renamed, moved to a new kernel, ended."""
    api = await start_cards()
    token = await api.login()
    # a notebook's session on a kernel whose agent ended (an embedded server's, killed with it) is not listed
    user_id = (await api.fetch("GET", "/api/me", token=token)).json()["id"]
    ghost = KernelRecord(uuid.uuid4().hex, "jupyter", user_id, "http://127.0.0.1:9", "gone", uuid.uuid4().hex, 2048,
                         "{}", "k1", "c2VhbGVk", "[]", json.dumps({"dataset_ids": [], "card_id": None}), utcnow(),
                         iso_time(time.time() + 60))
    await api.app.store_instance.put_kernel_record(ghost)
    assert await api.app.store_instance.set_kernel_notebooks(ghost.id, json.dumps(
        [{"id": "ghost", "path": "work/a.ipynb", "name": "a.ipynb", "type": "notebook"}]))
    assert (await api.fetch("GET", "/api/sessions", token=token)).json() == []
    assert (await api.fetch("GET", "/api/kernels", token=token)).json() == []
    body = {"path": "work/a.ipynb", "name": "a.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
    created = await api.fetch("POST", "/api/sessions", token=token, json_body=body)
    assert created.code == 201, created.body
    session = created.json()
    assert session["notebook"] == {"path": "work/a.ipynb", "name": "a.ipynb"}
    assert session["kernel"]["name"] == "python3"
    again = (await api.fetch("POST", "/api/sessions", token=token, json_body=body)).json()
    assert again["id"] == session["id"] and again["kernel"]["id"] == session["kernel"]["id"]
    stranger = await api.add_user("stranger@example.com")
    assert (await api.fetch("GET", "/api/sessions", token=stranger)).json() == []
    assert (await api.fetch("GET", f"/api/sessions/{session['id']}", token=stranger)).code == 404
    assert (await api.fetch("POST", "/api/sessions", token=stranger, json_body={
        "path": "x.ipynb", "kernel": {"id": session["kernel"]["id"]}})).code == 404

    moved = (await api.fetch("PATCH", f"/api/sessions/{session['id']}", token=token, json_body={
        "path": "work/b.ipynb", "name": "b.ipynb", "kernel": {"name": "python3"}})).json()
    assert moved["path"] == "work/b.ipynb" and moved["kernel"]["id"] != session["kernel"]["id"]
    assert (await api.fetch("GET", f"/api/kernels/{session['kernel']['id']}", token=token)).code == 404
    assert [s["id"] for s in (await api.fetch("GET", "/api/sessions", token=token)).json()] == [session["id"]]
    assert (await api.fetch("DELETE", f"/api/sessions/{session['id']}", token=token)).code == 204
    assert (await api.fetch("GET", "/api/kernels", token=token)).json() == []
    assert (await api.fetch("GET", f"/api/sessions/{session['id']}", token=token)).code == 404


async def until_state(socket: KernelSocket, state: str) -> None:
    while (message := await socket.receive())["msg_type"] != "status" or \
            message["content"]["execution_state"] != state:
        pass


async def until_restarting(socket: KernelSocket) -> None:
    await until_state(socket, "restarting")


async def test_limits_hold_for_code_sent_over_the_socket(start_cards):
    """Wall clock (interrupt, then kill and replace), output cap and a dying kernel, on raw execute_requests."""
    api = await start_cards(KernelPool__jupyter_execution_timeout=1.5, KernelPool__interrupt_grace=1.0,
                            KernelPool__output_limit_bytes=20_000, ServeApp__metrics_token="scrape-token")
    token = await api.login()
    socket = await connect(api, token, (await start_kernel(api, token))["id"], v1=False)
    await socket.execute("kept = 42")
    looped = await socket.execute("print('started', flush=True)\nwhile True: pass")
    assert text_of(looped).startswith("started\n\n[The code ran longer than the 1.5 s limit and was stopped.]")
    assert reply_of(looped)["ename"] == "KeyboardInterrupt"
    assert text_of(await socket.execute("kept")) == "42"

    flood = await socket.execute("while True: print('x' * 1000)")
    assert "[output truncated: this run produced more than 20000 bytes" in text_of(flood)
    assert len(text_of(flood)) < 25_000 and reply_of(flood)["status"] == "error"
    assert text_of(await socket.execute("kept")) == "42"

    stubborn = await socket.execute(REAL_OS + (
        "signal = os.sys.modules['signal']\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "os.sys.modules['numpy'].ctypeslib.ctypes.CDLL(None).sleep(20)\n"))
    reply = reply_of(stubborn)
    assert reply["ename"] == "ExecutionTimeout" and "restarted: variables are lost" in reply["evalue"]
    await until_restarting(socket)
    assert text_of(await socket.execute("'kept' in dir()")) == "False"

    died = await socket.execute(REAL_OS + "os._exit(9)")
    assert reply_of(died)["ename"] == "KernelDied" and "exited with status 9" in reply_of(died)["evalue"]
    await until_restarting(socket)
    assert text_of(await socket.execute("6 * 7")) == "42"
    metrics = await api.fetch("GET", "/metrics", headers={"Authorization": "Bearer scrape-token"})
    assert "bi_execution_timeouts_total 2.0" in metrics.body.decode()


async def test_back_to_back_requests_all_get_their_replies(start_cards):
    """A request sent while the kernel answers the one before is not lost (ipykernel 7 loses about
    one in 350 when both meet in the kernel); a request the kernel ignores holds up nothing."""
    api = await start_cards()
    token = await api.login()
    kernel_id = (await api.fetch("POST", "/api/kernels", token=token, json_body={})).json()["id"]
    socket = await connect(api, token, kernel_id)
    for _ in range(1000):
        first = socket.send("kernel_info_request", {})
        second = socket.send("kernel_info_request", {})
        replies = {first, second}
        while replies:
            message = await socket.receive(timeout=5)
            if message["channel"] == "shell":
                replies.discard(message["parent_header"]["msg_id"])
    socket.send("no_such_request", {})
    answered = await socket.answers(socket.send("kernel_info_request", {}))
    assert reply_of(answered)["language_info"]["name"] == "python"


async def test_replay_culling_and_the_per_user_limit(start_cards):
    """Starts in flight count against the limit; a returning client gets what it missed; idle kernels are culled."""
    api = await start_cards(KernelPool__idle_timeout=6.0, KernelPool__jupyter_connected_idle_timeout=6.0,
                            KernelPool__sessions_per_user=2,
                            JupyterKernels__replay_buffer_bytes=20_000)
    token = await api.login()
    racing = await asyncio.gather(*(api.fetch("POST", "/api/kernels", token=token, json_body={}) for _ in range(3)))
    assert sorted(r.code for r in racing) == [201, 201, 429]
    busy, quiet = (r.json()["id"] for r in racing if r.code == 201)
    watcher = await connect(api, token, quiet)  # connected, silent: not use

    socket = await connect(api, token, busy, session_id="tab-1")
    msg_id = socket.send("execute_request", {"code": "import time\nfor i in range(4):\n"
                                                     "    print(i, flush=True)\n    time.sleep(0.3)"})
    while (await socket.receive())["msg_type"] != "stream":
        pass
    socket.close()
    await asyncio.sleep(1.5)  # the run goes on and finishes while nobody listens
    again = await connect(api, token, busy, session_id="tab-1")
    assert text_of(await again.answers(msg_id)) == "1\n2\n3\n"
    msg_id = again.send("execute_request", {"code": "import time\ntime.sleep(0.5)\n"
                                                    "for i in range(100):\n    print(f'{i:03d}' + 'x' * 500, flush=True)"})
    again.close()
    await asyncio.sleep(1.0)
    again = await connect(api, token, busy, session_id="tab-1")
    kept = text_of(await again.answers(msg_id))
    assert len(kept) < 20_000 and kept.endswith("099" + "x" * 500 + "\n") and "000x" not in kept, "bounded"
    again.close()
    await asyncio.sleep(0.2)
    other = await connect(api, token, busy, session_id="tab-2")
    msg_id = other.send("kernel_info_request", {})
    assert (await other.receive())["parent_header"]["msg_id"] == msg_id, "nothing is replayed to another client"

    for _ in range(16):  # eight seconds of use, past the idle timeout (with room for a loaded machine)
        await other.answers(other.send("kernel_info_request", {}))
        await asyncio.sleep(0.5)
    assert (await api.fetch("GET", f"/api/kernels/{busy}", token=token)).code == 200
    assert (await api.fetch("GET", f"/api/kernels/{quiet}", token=token)).code == 404
    for client in (watcher, other):  # the kernel's status or its "shut down (idle)" may come first; then it closes
        while await asyncio.wait_for(client.connection.read_message(), 8) is not None:
            pass
    assert (await api.fetch("GET", "/api/kernels", token=token)).json() == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def jupyter_server(tmp_path):
    """Start ``jupyter server --gateway-url=<our server>`` with our token; a client of it comes back."""
    processes: list[subprocess.Popen] = []
    clients = []

    async def start(api, bi_token: str):
        port, own_token = free_port(), uuid.uuid4().hex
        home = tmp_path / f"jupyter{len(processes)}"
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
               "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
        (home / "notebooks").mkdir(parents=True)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={home / 'notebooks'}",
             f"--IdentityProvider.token={own_token}", f"--gateway-url={api.base_url}",
             f"--GatewayClient.auth_token={bi_token}"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(home / "server.log", "wb")))
        client = type(api)(f"http://127.0.0.1:{port}", None)
        client.token = own_token
        clients.append(client)
        for _ in range(300):
            await asyncio.sleep(0.1)
            assert processes[-1].poll() is None, (home / "server.log").read_text()
            try:
                if (await client.fetch("GET", "/api/status")).code == 200:
                    return client
            except OSError:
                continue
        raise AssertionError("jupyter server did not start: " + (home / "server.log").read_text())

    yield start
    for client in clients:
        client.close()
    for process in processes:  # it shuts its kernels down through our server: keep the loop running
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


async def test_jupyter_server_in_gateway_mode_runs_code_here(start_cards, jupyter_server, tmp_path):
    """A real `jupyter server --gateway-url` lists our spec and starts, drives, restarts and ends a kernel here."""
    api = await start_cards()
    token = await api.login()
    jupyter = await jupyter_server(api, await personal_token(api, token))
    specs = (await jupyter.fetch("GET", "/api/kernelspecs")).json()
    assert specs["kernelspecs"]["python3"]["spec"]["display_name"] == "Python 3 (BI sandbox)"
    created = await jupyter.fetch("POST", "/api/sessions", json_body={
        "path": "demo.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}})
    assert created.code == 201, created.body
    kernel_id = created.json()["kernel"]["id"]
    assert [k["id"] for k in (await api.fetch("GET", "/api/kernels", token=token)).json()] == [kernel_id]

    url = f"{jupyter.base_url.replace('http', 'ws')}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4()}"
    socket = KernelSocket(await websocket.websocket_connect(httpclient.HTTPRequest(
        url, headers={"Authorization": f"token {jupyter.token}"}), subprotocols=[V1]))
    assert not socket.v1, "jupyter_server in gateway mode speaks the legacy protocol"
    ran = await socket.execute("import pandas as pd\nprint('hello from the pool')\nint(pd.Series([1, 2]).sum())")
    assert text_of(ran) == "hello from the pool\n3" and reply_of(ran)["status"] == "ok"
    await socket.execute("kept = 1")
    assert (await jupyter.fetch("POST", f"/api/kernels/{kernel_id}/interrupt", json_body={})).code == 204
    assert (await jupyter.fetch("POST", f"/api/kernels/{kernel_id}/restart", json_body={})).code == 200
    await until_state(socket, "starting")
    assert reply_of(await socket.execute("kept"))["ename"] == "NameError"
    socket.close()
    session_id = created.json()["id"]
    assert (await jupyter.fetch("DELETE", f"/api/sessions/{session_id}")).code == 204
    assert (await api.fetch("GET", f"/api/kernels/{kernel_id}", token=token)).code == 404

    for _ in range(4):  # the per-user limit: jupyter_server reads our top-level message and reason
        await start_kernel(api, token)
    refused = await jupyter.fetch("POST", "/api/kernels", json_body={"name": "python3"})
    assert refused.code == 429
    # jupyter_server 2.21 answers with its message's format string ("[%s] %s"), and logs it formatted
    assert "Error from Gateway: [%s] %s." in refused.json()["message"]
    logged = (tmp_path / "jupyter0" / "server.log").read_text()
    assert "Error from Gateway: [You already have 4 open sessions; close one" in logged
    assert "] Too Many Requests. Ensure gateway url is valid" in logged


async def personal_token(api, token: str) -> str:
    """A personal access token of the caller's, what the README tells Jupyter clients to use."""
    created = await api.fetch("POST", "/api/me/tokens", token=token, json_body={"name": "lab", "expires_in_days": 1})
    assert created.code == 201, created.body
    return created.json()["token"]


def run_notebook(base_url: str, token: str, notebook: nbformat.NotebookNode) -> None:
    """Execute ``notebook`` with nbclient on a kernel started by jupyter_server's GatewayKernelManager."""
    import websocket as websocket_client  # websocket-client, as GatewayKernelClient uses it
    from jupyter_core.utils import run_sync
    from jupyter_server.gateway.gateway_client import GatewayClient
    from jupyter_server.gateway.managers import GatewayKernelManager
    from nbclient import NotebookClient

    GatewayClient.clear_instance()
    gateway = GatewayClient.instance(url=base_url, auth_token=token)
    # GatewayKernelClient opens its websocket without the Authorization header its REST calls carry
    # (jupyter_server 2.21); Airflow's papermill provider ships the same fix as a subclass.
    headers = gateway.load_connection_args()["headers"]
    connect = websocket_client.create_connection
    websocket_client.create_connection = functools.partial(connect, header=headers)
    manager = GatewayKernelManager()
    try:
        NotebookClient(notebook, km=manager, timeout=60, startup_timeout=60).execute()
    finally:
        run_sync(manager.shutdown_kernel)()  # nbclient leaves a kernel it did not create the manager of
        websocket_client.create_connection = connect
        GatewayClient.clear_instance()


async def test_nbclient_runs_a_notebook_through_gateway_kernel_manager(start_cards, monkeypatch):
    """nbclient executes a notebook here; load_dataset reads the user's datasets; the kernel ends with the run."""
    monkeypatch.setenv("KERNEL_LAUNCH_TIMEOUT", "40")  # GatewayClient writes it into os.environ
    api = await start_cards()
    token = await api.login()
    assert (await upload(api, "売上", JAPANESE_CSV.encode(), token)).code == 201
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("df = load_dataset('売上')\nprint(len(df))"),
        nbformat.v4.new_code_cell("df['店舗'].iloc[0]"),
        nbformat.v4.new_code_cell("import pandas as pd\npd.DataFrame({'a': [1, 2]})"),
    ])
    await asyncio.to_thread(run_notebook, api.base_url, await personal_token(api, token), notebook)
    outputs = [cell.outputs for cell in notebook.cells]
    assert outputs[0][0]["text"] == "3\n"
    assert outputs[1][0]["data"]["text/plain"] == "'東京'" and outputs[1][0]["execution_count"] == 2
    assert "<table" in outputs[2][0]["data"]["text/html"]  # what nbconvert and JupyterLab render
    assert (await api.fetch("GET", "/api/kernels", token=token)).json() == []
