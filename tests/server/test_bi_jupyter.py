"""The ``bi`` kernel spec (``clients/jupyter``): papermill's command line and nbclient run notebooks here with
a personal access token and nothing else, as the README tells users to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from .test_jupyter_api import personal_token
from .test_sessions import root, start_cards  # noqa: F401 - fixtures

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "jupyter"
NOTEBOOK = [
    "import pandas as pd\ndf = pd.DataFrame({'店舗': ['東京', '大阪'], '売上': [120, 80]})\nprint(df['売上'].sum())",
    "df",
]


def client_env(tmp_path: Path, url: str, pat: str) -> dict[str, str]:
    """A user's shell after ``pip install clients/jupyter`` and ``bi-jupyter install``, with
    ``BI_JUPYTER_TOKEN`` set."""
    env = {**os.environ, "PYTHONPATH": str(CLIENT), "JUPYTER_PATH": str(tmp_path / "share" / "jupyter"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "BI_JUPYTER_TOKEN": pat}
    subprocess.run([sys.executable, "-m", "bi_jupyter", "install", "--url", url, "--prefix", str(tmp_path)],
                   env=env, check=True, capture_output=True, timeout=60)
    return env


def bound(connection: dict, seconds: float = 180) -> None:
    """Returns once the bridge serves the heartbeat (it binds its ports once the server's kernel runs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if connection["transport"] == "ipc":
            if os.path.exists(f"{connection['ip']}-{connection['hb_port']}"):
                return
        else:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", connection["hb_port"]), 1).close()
                return
        time.sleep(0.2)
    raise TimeoutError("the bridge never bound its ports")


def start_bridge(url: str, pat: str, connection_file: str) -> subprocess.Popen:
    """``bi-jupyter bridge`` on ``connection_file`` (stderr piped), once it has bound its ports."""
    env = {**os.environ, "BI_JUPYTER_TOKEN": pat, "PYTHONPATH": str(CLIENT)}
    bridge = subprocess.Popen([sys.executable, "-m", "bi_jupyter", "bridge", "--url", url, "-f", connection_file],
                              env=env, stderr=subprocess.PIPE, text=True)
    bound(json.load(open(connection_file)))
    return bridge


async def test_papermill_and_nbclient_run_notebooks_with_the_bi_kernel_spec(start_cards, tmp_path, monkeypatch):
    api = await start_cards()
    token = await api.login()
    env = client_env(tmp_path, api.base_url, await personal_token(api, token))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK[0]),
                                               nbformat.v4.new_code_cell(NOTEBOOK[1])])
    nbformat.write(notebook, tmp_path / "in.ipynb")
    papermill = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "papermill", str(tmp_path / "in.ipynb"),
                                 str(tmp_path / "out.ipynb"), "-k", "bi", "--log-output"],
                                env=env, capture_output=True, text=True, timeout=240)
    assert papermill.returncode == 0, papermill.stderr[:3000]
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "200\n"
    assert "<table" in executed.cells[1].outputs[0]["data"]["text/html"]  # what nbconvert and JupyterLab render

    from nbclient import NotebookClient
    for name in ("PYTHONPATH", "JUPYTER_PATH", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "BI_JUPYTER_TOKEN"):
        monkeypatch.setenv(name, env[name])
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in NOTEBOOK])
    await asyncio.to_thread(NotebookClient(notebook, kernel_name="bi", timeout=60, startup_timeout=60).execute)
    assert notebook.cells[0].outputs[0]["text"] == "200\n" and notebook.cells[1].execution_count == 2
    assert (await api.fetch("GET", "/api/kernels", token=token)).json() == []  # each run's kernel ended with it


async def test_jupyter_console_runs_code_with_the_bi_kernel_spec(start_cards, tmp_path):
    """``jupyter console --kernel bi``, the README's command, with lines typed on its standard input."""
    api = await start_cards()
    token = await api.login()
    env = client_env(tmp_path, api.base_url, await personal_token(api, token))
    typed = "x = 6 * 7\nprint('答え', x)\nx * 2\n"
    console = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "jupyter_console", "--kernel", "bi", "--simple-prompt"],
        input=typed, env=env, capture_output=True, text=True, timeout=120)
    assert console.returncode == 0, console.stderr[:3000]
    assert "答え 42" in console.stdout, console.stdout[-3000:]
    assert "Out[3]: 84" in console.stdout, console.stdout[-3000:]
    assert "Traceback" not in console.stderr, console.stderr[-3000:]
    assert (await api.fetch("GET", "/api/kernels", token=token)).json() == []  # the kernel ended with the console


def _execute_before_subscribing(url: str, pat: str, connection_file: str) -> tuple[list[str], list[str]]:
    """A cell sent on shell before the client subscribed to iopub: what reached shell meanwhile, then the cell's
    iopub messages (up to its idle status) once it subscribed."""
    bridge = start_bridge(url, pat, connection_file)
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels(iopub=False, stdin=False, hb=False, control=False)
    try:
        msg_id = client.execute("print(6 * 7)")
        early = []
        with contextlib.suppress(Empty):
            early.append(client.get_shell_msg(timeout=3)["msg_type"])
        client.iopub_channel.start()  # subscribes
        seen = []
        while not seen or seen[-1] != "status:idle":
            message = client.get_iopub_msg(timeout=60)
            if message["parent_header"].get("msg_id") == msg_id:
                content = message["content"]
                seen.append(f"{message['msg_type']}:{content.get('execution_state') or content.get('text', '')}")
        return early, seen
    finally:
        client.stop_channels()
        bridge.terminate()
        bridge.communicate(timeout=30)


async def test_a_cell_waits_for_the_clients_iopub_subscription(start_cards, tmp_path):
    """The client's sockets join the bridge's ports each on its own reconnect timer: the bridge relays shell
    messages once iopub has a subscriber, so a first cell's outputs and idle status are not published to no one
    (``jupyter console`` waited for that status forever: it sat at ``In [1]:`` in a loaded CI run)."""
    api = await start_cards()
    pat = await personal_token(api, await api.login())
    connection_file, _ = write_connection_file(str(tmp_path / "kernel.json"), ip="127.0.0.1")
    early, seen = await asyncio.to_thread(_execute_before_subscribing, api.base_url, pat, connection_file)
    assert early == []
    assert seen == ["status:busy", "execute_input:", "stream:42\n", "status:idle"]
