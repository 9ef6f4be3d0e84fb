"""The ``bi`` kernel spec (``clients/jupyter``): papermill's command line and nbclient run notebooks here with
a personal access token and nothing else, as the README tells users to."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import nbformat

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
