"""Kernel sessions end to end: an executor agent (one shared by the tests, or bi serve's own), real
sandboxed kernels, the limits.

Card code that needs the real ``os`` recovers it as a determined author would
(``pd.io.common.os``): the policy layer is a convenience, the limits here are enforced from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from server.errors import ServiceUnavailableError
from server.execution.agent_client import AgentError
from server.execution.local_agent import AGENT_ENVIRONMENT, PUBLIC_KEY_FILE, LocalAgent
from tests.kernels.sandbox.helpers import require

from .test_datasets import JAPANESE_CSV, upload

REAL_OS = "import pandas as pd\nos = pd.io.common.os\n"


@pytest.fixture
def root() -> None:
    require(os.geteuid() == 0, "the local executor agent needs root to sandbox kernels")


OWN_AGENT_TRAITS = ("KernelPool__kernel_message_bytes",)  # the local agent's relay takes this bound too


@pytest.fixture
def start_cards(start_server, root, shared_agent):
    """Start a server that runs cards on the shared agent, with extra traits; ``own_agent=True`` (or a trait
    the agent takes too) starts its own local agent with one warm kernel instead."""
    def start(own_agent: bool = False, **traits):
        if own_agent or any(name in traits for name in OWN_AGENT_TRAITS):
            return start_server(ServeApp__local_executor=True, ServeApp__local_executor_pool_size=1, **traits)
        url, pem = shared_agent
        return start_server(ServeApp__executor_urls=[url], ServeApp__executor_private_key=pem, **traits)
    return start


async def open_session(api, token: str, datasets: list[str] | None = None) -> str:
    response = await api.fetch("POST", "/api/card-sessions", token=token, json_body={"datasets": datasets or []})
    assert response.code == 201, response.body
    return response.json()["id"]


async def run(api, token: str, session_id: str, code: str):
    return await api.fetch("POST", f"/api/card-sessions/{session_id}/execute", token=token, json_body={"code": code})


def text(outputs: list[dict]) -> str:
    return "".join(o.get("text", "") + o.get("evalue", "") + str(o.get("data", {}).get("text/plain", ""))
                   for o in outputs)


async def test_session_runs_cards_on_datasets_and_is_private(start_cards):
    """A session loads the datasets it opened with, keeps variables, and is nobody else's."""
    api = await start_cards()
    token = await api.login()
    dataset = (await upload(api, "売上", JAPANESE_CSV.encode("cp932"), token)).json()
    session_id = await open_session(api, token, [dataset["id"]])
    first = await run(api, token, session_id, 'df = load_dataset("売上")\nprint(df["店舗"].tolist())\ndf["売上"].sum()')
    assert first.code == 200, first.body
    result = first.json()
    assert result["status"] == "ok" and "['東京', '大阪', '名古屋']" in text(result["outputs"])
    assert result["outputs"][-1]["output_type"] == "execute_result" and "4500.5" in text(result["outputs"])
    assert (await run(api, token, session_id, "len(df)")).json()["outputs"][-1]["data"]["text/plain"] == "3"

    stranger = await api.add_user("stranger@example.com")
    assert (await run(api, stranger, session_id, "len(df)")).code == 404
    assert (await api.fetch("GET", "/api/card-sessions", token=stranger)).json() == {"sessions": [], "held": 0,
                                                                                      "limit": 4}
    assert [s["id"] for s in (await api.fetch("GET", "/api/card-sessions", token=token)).json()["sessions"]] == [session_id]
    assert (await api.fetch("POST", "/api/card-sessions", token=stranger, json_body={"datasets": [dataset["id"]]})).code == 404

    kernel = api.app.kernel_pool.sessions[session_id].kernel
    assert (await api.fetch("DELETE", f"/api/card-sessions/{session_id}", token=token)).code == 204
    with pytest.raises(AgentError) as gone:
        await kernel.agent.kernel_status(kernel.kernel_id)
    assert gone.value.status == 404
    assert (await run(api, token, session_id, "1")).code == 404


async def test_local_agent_holds_no_server_secret(start_cards, monkeypatch):
    """The agent bi serve starts gets a bare environment, and only the public half of the signing key."""
    monkeypatch.setenv("JWT_SECRET_KEY", "s" * 40)
    api = await start_cards(own_agent=True)
    agent = api.app.local_agent
    environ = Path(f"/proc/{agent.process.pid}/environ").read_bytes().split(b"\0")
    assert sorted(v.split(b"=")[0].decode() for v in environ if v) == sorted(AGENT_ENVIRONMENT)
    command = Path(f"/proc/{agent.process.pid}/cmdline").read_bytes().decode()
    assert PUBLIC_KEY_FILE in command and "PRIVATE" not in Path(api.app.data_dir, PUBLIC_KEY_FILE).read_text()


async def test_errors_and_bad_requests(start_cards):
    """Card errors come back with their traceback; bad bodies are 400 with the reason."""
    api = await start_cards()
    token = await api.login()
    session_id = await open_session(api, token)
    result = (await run(api, token, session_id, "1 / 0")).json()
    assert result["status"] == "error"
    assert result["outputs"][0]["ename"] == "ZeroDivisionError"
    assert not any("\x1b[" in line for line in result["outputs"][0]["traceback"])
    assert (await run(api, token, session_id, "import os")).json()["outputs"][0]["ename"] == "ImportError"
    bad = await api.fetch("POST", f"/api/card-sessions/{session_id}/execute", token=token, json_body={"cmd": "1"})
    assert bad.code == 400
    assert (await api.fetch("POST", "/api/card-sessions", token=token, json_body={"datasets": ["nope"]})).code == 404


async def test_wall_clock_interrupts_then_kills(start_cards):
    """Past the limit a loop is interrupted (408, variables kept); code ignoring SIGINT is killed (408, fresh kernel)."""
    api = await start_cards(KernelPool__execution_timeout=1.5, KernelPool__interrupt_grace=1.0,
                            ServeApp__metrics_token="scrape-token")
    token = await api.login()
    session_id = await open_session(api, token)
    await run(api, token, session_id, "kept = 42")
    looped = await run(api, token, session_id, "print('started')\nwhile True: pass")
    assert looped.code == 408 and looped.error_code == "timeout"
    error = looped.json()["error"]
    assert "1.5 s limit" in error["message"] and error["details"]["kernel_restarted"] is False
    assert "started" in text(error["details"]["outputs"])
    assert (await run(api, token, session_id, "kept")).json()["outputs"][-1]["data"]["text/plain"] == "42"

    stubborn = await run(api, token, session_id, REAL_OS + (
        "signal = pd.io.common.os.sys.modules['signal']\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "np = pd.io.common.os.sys.modules['numpy']\n"
        "np.ctypeslib.ctypes.CDLL(None).sleep(20)\n"))
    assert stubborn.code == 408 and stubborn.json()["error"]["details"]["kernel_restarted"] is True
    assert "variables are lost" in stubborn.json()["error"]["message"]
    after = (await run(api, token, session_id, "'kept' in dir()")).json()
    assert after["status"] == "ok" and after["outputs"][-1]["data"]["text/plain"] == "False"
    metrics = (await api.fetch("GET", "/metrics", headers={"Authorization": "Bearer scrape-token"})).body.decode()
    assert "bi_execution_timeouts_total 2.0" in metrics


async def test_output_is_capped(start_cards):
    """Output past the cap is dropped after one notice, and the flood is stopped."""
    api = await start_cards(KernelPool__output_limit_bytes=20_000)
    token = await api.login()
    session_id = await open_session(api, token)
    result = (await run(api, token, session_id, "while True: print('x' * 1000)")).json()
    assert result["truncated"] is True and result["status"] == "error"
    assert "output truncated" in result["outputs"][0]["text"], "the notice comes first"
    assert sum(len(o.get("text", "")) for o in result["outputs"]) < 25_000


async def test_memory_limit_is_named(start_cards):
    """Allocating past the memory limit gives an error naming the limit, not a hang."""
    api = await start_cards()
    token = await api.login()
    session_id = await open_session(api, token)
    result = (await run(api, token, session_id, "hog = []\nwhile True: hog.append(bytearray(2**26))")).json()
    assert result["status"] == "error"
    assert result["outputs"][-1]["evalue"] == "the card exceeded the 2048 MB memory limit"


async def test_dead_kernel_is_replaced_and_reported(start_cards):
    """A kernel that dies mid-run, or while idle, is replaced; the session says so and goes on."""
    api = await start_cards()
    token = await api.login()
    session_id = await open_session(api, token)
    died = (await run(api, token, session_id, REAL_OS + "os._exit(9)")).json()
    assert died["kernel_restarted"] is True and died["outputs"][-1]["ename"] == "KernelDied"
    assert "exited with status 9" in died["outputs"][-1]["evalue"]
    assert (await run(api, token, session_id, "1 + 1")).json()["outputs"][-1]["data"]["text/plain"] == "2"

    session = api.app.kernel_pool.sessions[session_id]
    events: list[dict] = []
    session.listeners.add(events.append)
    before = session.kernel.kernel_id
    with capture_logs() as logs:
        await run(api, token, session_id, REAL_OS + (
            "threading = os.sys.modules['threading']\n"
            "threading.Timer(0.3, lambda: os._exit(7)).start()\n"))
        for _ in range(100):
            if session.kernel.kernel_id != before:
                break
            await asyncio.sleep(0.1)
    assert session.kernel.kernel_id != before
    assert events == [{"event": "kernel_restarted", "reason": "the kernel exited with status 7"}]
    assert any(e["event"] == "kernel_replaced" for e in logs)
    assert (await run(api, token, session_id, "2 + 2")).json()["outputs"][-1]["data"]["text/plain"] == "4"


async def test_a_run_that_waited_for_a_failed_replacement_is_told_the_kernel_is_lost(start_cards, monkeypatch):
    """A run sent while the session replaces its lost kernel waits for the replacement; when no new kernel can be
    started (no executor answers: injected here), it is answered 409 ``kernel_lost``, not 500 from a closed channel
    (a clean run's ``test_agent_loss`` met it once)."""
    api = await start_cards()
    token = await api.login()
    session_id = await open_session(api, token)
    session = api.app.kernel_pool.sessions[session_id]
    replacing = asyncio.Event()

    async def no_executor(datasets):
        replacing.set()
        await asyncio.sleep(0.3)
        raise ServiceUnavailableError("No executor answers now; try again in a moment.")

    monkeypatch.setattr(session, "start_kernel", no_executor)
    restart = asyncio.ensure_future(session.restart("the executor was lost"))
    await replacing.wait()
    answer = await run(api, token, session_id, "1 + 1")
    await restart
    assert answer.code == 409 and answer.json()["error"]["code"] == "kernel_lost", answer.body


async def test_idle_sessions_close_and_users_are_capped(start_cards):
    """A user holds at most sessions_per_user sessions; an idle one is closed with its kernel."""
    api = await start_cards(KernelPool__idle_timeout=1.0, KernelPool__sessions_per_user=1)
    token = await api.login()
    session_id = await open_session(api, token)
    refused = await api.fetch("POST", "/api/card-sessions", token=token, json_body={})
    assert refused.code == 429 and "open sessions" in refused.json()["error"]["message"]
    assert (await api.fetch("DELETE", f"/api/card-sessions/{session_id}", token=token)).code == 204
    racing = await asyncio.gather(*(api.fetch("POST", "/api/card-sessions", token=token, json_body={})
                                    for _ in range(3)))
    assert sorted(r.code for r in racing) == [201, 429, 429], "starts in flight count against the limit"
    session_id = next(r.json()["id"] for r in racing if r.code == 201)
    for _ in range(50):
        if (await api.fetch("GET", f"/api/card-sessions/{session_id}", token=token)).code == 404:
            break
        await asyncio.sleep(0.1)
    assert (await api.fetch("GET", f"/api/card-sessions/{session_id}", token=token)).code == 404
    assert (await api.fetch("POST", "/api/card-sessions", token=token, json_body={})).code == 201


async def test_without_an_agent_execution_is_unavailable(api):
    """A server with no executor agent says so with a 503, and serves everything else."""
    token = await api.login()
    response = await api.fetch("POST", "/api/card-sessions", token=token, json_body={})
    assert response.code == 503 and "no executor agent" in response.json()["error"]["message"]


async def test_remote_agent_by_configuration(start_server, root, tmp_path):
    """With executor_urls and a signing key, the server uses that agent, over its TCP relay, and starts none."""
    key = Ed25519PrivateKey.generate()
    agent = LocalAgent(tmp_path / "agent", pool_size=1, allow_weaker_sandbox=False, advertise_host="127.0.0.1")
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / PUBLIC_KEY_FILE).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    client = await agent.start(key)
    try:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        api = await start_server(ServeApp__executor_urls=[client.base_url], ServeApp__executor_private_key=pem)
        assert api.app.local_agent is None
        token = await api.login()
        session_id = await open_session(api, token)
        result = (await run(api, token, session_id, "6 * 7")).json()
        assert result["outputs"][-1]["data"]["text/plain"] == "42"
        assert api.app.kernel_pool.sessions[session_id].kernel.client.transport == "tcp"
        for _ in range(200):  # the session's, the spare the server asked for next (kept connected), and a warm one
            health = await client.health()
            if (health["kernels"], health["spares"]) == (3, 1):
                break
            await asyncio.sleep(0.05)
        assert (health["kernels"], health["spares"], health["in_use"]) == (3, 1, 1)
    finally:
        client.close()
        await agent.stop()


async def test_sessions_past_capacity_in_a_row_never_wait_for_room(start_cards):
    """A kernel's place is free once its session's close returns: one user opening and closing more
    sessions in a row than the agent may hold kernels never waits for room (with no time to wait: 503)."""
    api = await start_cards(KernelPool__placement_timeout=0.0, KernelPool__discovery_interval=3600.0)
    token = await api.login()
    pool = api.app.kernel_pool
    (url,) = pool.loads
    for _ in range(pool.loads[url].capacity + 1):
        session_id = await open_session(api, token)
        assert (await api.fetch("DELETE", f"/api/card-sessions/{session_id}", token=token)).code == 204
    assert pool.loads[url].in_use == 0 == (await pool.agents[url].health())["in_use"]



@contextlib.contextmanager
def cpu_load(processes: int = 2):
    """A loaded machine: busy processes (started by this test, stopped by it) for the duration."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


async def test_outputs_that_trail_the_reply_are_kept(start_cards):
    """A run ends at its kernel's ``idle`` after the reply, not at a fixed trail: on a loaded machine iopub falls
    behind the shell reply, and what the card printed and showed right before its end still belongs to the run
    (before, whatever came more than 0.5 s after the reply was lost). Here the kernel's iopub thread is also held
    1.5 s, as load holds it."""
    api = await start_cards()
    token = await api.login()
    session_id = await open_session(api, token)
    code = ("import time\nfor i in range(300):\n    print(f'行{i}', flush=True)\n"
            "get_ipython().kernel.iopub_thread.schedule(lambda: time.sleep(1.5))\ndisplay('last words')\n")
    with cpu_load():
        ran = await run(api, token, session_id, code)
    assert ran.code == 200, ran.body
    shown = text(ran.json()["outputs"])
    assert all(f"行{i}\n" in shown for i in range(300)) and "last words" in shown, ran.json()["outputs"][-3:]
    after = await run(api, token, session_id, "print('next')")
    assert text(after.json()["outputs"]) == "next\n", "nothing of the run before spills into the next"


async def test_outputs_that_come_long_after_the_reply_are_kept(start_cards):
    """The kernel waits for its iopub thread to send a cell's output before its ``execute_reply``, but gives up
    after the streams' ``flush_timeout`` (10 s) and replies anyway, as a loaded machine makes it: a ``display``
    and the ``idle`` then come after the reply. Before, a run ended 0.5 s after its reply when nothing came in that
    time, and lost them; now it ends at its ``idle``. Here the flush gives up after 0.05 s and iopub is held 1.5 s
    (the test above cannot tell: its flush waits the whole hold, so the reply comes after the outputs)."""
    api = await start_cards()
    token = await api.login()
    session_id = await open_session(api, token)
    code = ("import time\nkernel = get_ipython().kernel\nsys = kernel.execute_request.__func__.__globals__['sys']\n"
            "for stream in (sys.stdout, sys.stderr):\n    stream.flush_timeout = 0.05\n"
            "kernel.iopub_thread.schedule(lambda: time.sleep(1.5))\ndisplay('last words')\n")
    ran = await run(api, token, session_id, code)
    assert ran.code == 200, ran.body
    assert text(ran.json()["outputs"]) == "'last words'", ran.json()
    after = await run(api, token, session_id, "print('next')")
    assert text(after.json()["outputs"]) == "next\n", "nothing of the run before spills into the next"
