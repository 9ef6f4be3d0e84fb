"""docker-compose.yml in real containers (with tests/containers/compose.override.yml and the failover profile: two
api replicas behind the proxy): a card runs through the api, a live dashboard shows it, the executor answers only
inside its network, a restarted api finds everything (it keeps no state of its own), a card editor goes on through
the other replica when the one holding it is killed, and ``down -v`` resets the data."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from tornado import httpclient, websocket

from kernels.sandbox.inside import EXPECTED
from tests.serve_process import request

from tests.server.test_card_socket import Socket

from .engine import CONTAINER_TEST_SECONDS, ADMIN_EMAIL, ADMIN_PASSWORD, Stack

pytestmark = pytest.mark.timeout(CONTAINER_TEST_SECONDS)
EXECUTOR_UID = 10002  # kernel_image/Dockerfile's executor user
CSV = "店舗,売上\n東京,1200.5\n大阪,800\n名古屋,2500\n".encode("cp932")
DASHBOARD = {"schemaVersion": 1, "title": "売上", "parameters": [],
             "cards": [{"key": "total", "title": "合計", "datasets": ["売上"], "parameters": [],
                        "code": "df = load_dataset('売上')\nprint(df['売上'].sum())"}],
             "layout": [{"card": "total", "x": 0, "y": 0, "w": 6, "h": 4}], "refresh": None}


@pytest.fixture(scope="module")
def stack(compose, tmp_path_factory):
    stack = Stack(compose, tmp_path_factory.mktemp("stack"))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def sign_in(stack: Stack) -> str:
    status, body = request(stack.api_port(), "/api/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert status == 200, body
    return body["access_token"]


def upload(stack: Stack, token: str) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{stack.api_port()}/api/datasets?name=%E5%A3%B2%E4%B8%8A"
                                 "&encoding=cp932", data=CSV,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"})
    with urllib.request.urlopen(req, timeout=60) as response:
        return response.status, json.loads(response.read())


async def first_output(port: int, token: str, dashboard_id: str) -> tuple[dict, dict]:
    """The snapshot of the live dashboard and the first output of its card that it pushes."""
    url = f"ws://127.0.0.1:{port}/api/dashboards/{dashboard_id}/ws"
    socket = await websocket.websocket_connect(httpclient.HTTPRequest(url, headers={"Authorization": f"Bearer {token}"}))
    try:
        snapshot = json.loads(await asyncio.wait_for(socket.read_message(), 60))
        if snapshot["cards"]["total"]["result"] is not None:
            return snapshot, {"type": "output", "card": "total", "result": snapshot["cards"]["total"]["result"]}
        while True:
            message = json.loads(await asyncio.wait_for(socket.read_message(), 90))
            if message["type"] == "output":
                return snapshot, message
    finally:
        socket.close()


def printed(result: dict) -> str:
    return "".join(output.get("text", "") for output in result["outputs"])


@pytest.fixture(scope="module")
def seeded(stack):
    """A CP932 dataset and a dashboard with one card, made through the api container."""
    token = sign_in(stack)
    status, dataset = upload(stack, token)
    assert status == 201 and dataset["row_count"] == 3, dataset
    status, dashboard = request(stack.api_port(), "/api/dashboards", DASHBOARD, token, timeout=60)
    assert status == 201, dashboard
    return {"dataset": dataset, "dashboard": dashboard}


def test_a_card_runs_and_a_live_dashboard_shows_it(stack, seeded):
    """The card runs on a kernel of the executor container, and the open dashboard gets its output."""
    token = sign_in(stack)
    port, dashboard = stack.api_port(), seeded["dashboard"]
    snapshot, output = asyncio.run(first_output(port, token, dashboard["id"]))
    assert snapshot["type"] == "snapshot" and snapshot["dashboard"]["access"] == "owner"
    assert printed(output["result"]) == "4500.5\n", output
    card_id = dashboard["document"]["cards"][0]["card"]
    status, run = request(port, f"/api/cards/{card_id}/run", {"force": True}, token, timeout=90)
    assert status == 200 and run["cached"] is False and printed(run) == "4500.5\n", run
    status, session = request(port, "/api/card-sessions", {"datasets": []}, token, timeout=90)
    assert status == 201, session
    status, blocked = request(port, f"/api/card-sessions/{session['id']}/execute", {"code": "import socket"}, token,
                              timeout=90)
    assert status == 200 and blocked["status"] == "error", blocked


def test_the_executor_answers_inside_its_network_only(stack):
    """/health from the api container: under compose's seccomp profile (ops/seccomp/executor.json) a kernel it spawned
    showed every layer but cgroups, so it is multi-tenant. The executor publishes no port and reaches nothing
    outside."""
    probe = "import json, urllib.request; print(urllib.request.urlopen('http://executor:8080/health', timeout=5).read().decode())"
    answered = stack.exec("api", "python", "-c", probe)
    assert answered.returncode == 0, answered.stderr
    health = json.loads(answered.stdout)
    assert (health["status"], health["tenancy"], health["weaker_sandbox"]) == ("ok", "multi", ["cgroup"]), health
    layers = health["kernel_layers"]
    assert {key: layers.get(key) for key in EXPECTED} == EXPECTED, layers
    assert layers["proc"] == "none" and layers["uid"] == EXECUTOR_UID, layers  # Docker masks /proc: none is mounted
    assert stack.compose("port", "executor", "8080", check=False).stdout.strip() in ("", ":0")
    outside = stack.exec("executor", "python", "-c",
                         "import socket; socket.create_connection(('minio', 9000), timeout=3)")
    assert outside.returncode != 0, "the executor reached a service outside its internal network"


def test_a_restarted_api_finds_everything(stack, seeded):
    """The api keeps no state of its own: after a restart the dataset, dashboard and output are all there."""
    stack.compose("restart", "-t", "10", "api")
    stack.wait_healthy("api")
    token = sign_in(stack)
    port = stack.api_port()
    status, dataset = request(port, f"/api/datasets/{seeded['dataset']['id']}", token=token)
    assert status == 200 and dataset["row_count"] == 3, dataset
    _, output = asyncio.run(first_output(port, token, seeded["dashboard"]["id"]))
    assert printed(output["result"]) == "4500.5\n" and output["result"]["cached"] is True, "from the store's cache"


async def card_editor(port: int, token: str, query: str = "") -> Socket:
    url = f"ws://127.0.0.1:{port}/api/cards/scratch/ws" + (f"?{query}" if query else "")
    request_ = httpclient.HTTPRequest(url, headers={"Authorization": f"Bearer {token}"})
    return Socket(await websocket.websocket_connect(request_))


async def printed_by(editor: Socket, run_id: str, code: str) -> str:
    editor.send(type="execute", run_id=run_id, code=code)
    messages = await editor.until("done", timeout=90)
    assert messages[-1]["status"] == "ok", messages
    return "".join(m["output"].get("text", "") for m in messages if m["type"] == "output" and m["run_id"] == run_id)


def holder(stack: Stack, session_id: str) -> str:
    """The api replica that opened the card session (its log names it)."""
    [replica] = [name for name in ("api", "api-2") if session_id in stack.compose("logs", "--no-color", name).stdout]
    return replica


def test_a_killed_api_replica_s_card_editor_goes_on_through_the_other(stack):
    """Through the proxy, ``kill -9`` of the replica that holds a user's card editor: the editor reconnects through the
    proxy to the other replica, which reattaches to the same kernel (its record in the store), where the variable set
    before is the same object."""
    token = sign_in(stack)
    port = stack.api_port()

    async def scenario() -> str:
        editor = await card_editor(port, token)
        hello = await editor.receive()
        assert hello["type"] == "session", hello
        identity = await printed_by(editor, "r1", "x = object()\nprint(id(x))")
        last_seen = editor.seen[-1]["seq"]
        replica = holder(stack, hello["session_id"])
        stack.compose("kill", "-s", "SIGKILL", replica)
        editor.close()
        editor = await card_editor(port, token, f"session={hello['session_id']}&after={last_seen}")
        assert await printed_by(editor, "r2", "print(id(x))") == identity
        editor.close()
        return replica

    replica = asyncio.run(scenario())
    stack.compose("start", replica)
    stack.wait_healthy(replica)
    stack.wait_answering()


def test_down_v_resets_the_data(stack, seeded):
    """After ``down -v`` and ``up`` only the admin is there again (this test runs last in the module)."""
    stack.down()
    stack.up()
    token = sign_in(stack)
    status, datasets = request(stack.api_port(), "/api/datasets", token=token)
    assert status == 200 and datasets["datasets"] == [], datasets
    status, _ = request(stack.api_port(), f"/api/dashboards/{seeded['dashboard']['id']}", token=token)
    assert status == 404
