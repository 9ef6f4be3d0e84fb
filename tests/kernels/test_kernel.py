"""The locked-down kernel over tcp and ipc: datasets, Bokeh output, and serving from a fork."""

from __future__ import annotations

import os
import signal
import sys
import traceback

import pandas as pd
import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from kernels import kernel as bi_kernel
from kernels.bokeh_output import MIME_TYPE
from kernels.helpers import dataset_filename, dataset_names
from tests.kernels.kernel_fixtures import START_TIMEOUT, execute, started_kernel, write_dataset

SALES = pd.DataFrame({"店舗": ["東京", "大阪", "東京"], "売上高": [100, 250, 50]})
FIGURE = "from bokeh.plotting import figure, show\np = figure(title='t')\np.line([1, 2, 3], [3, 1, 2])\n"
# Audit events of starting a process: none may happen in a kernel, even for `!ls` or `%%bash`.
PROCESS_EVENTS = ("os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system",
                  "subprocess.Popen")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("workdir")
    write_dataset(root / "datasets", "売上", SALES)
    write_dataset(root / "datasets", "sales", SALES.set_axis(["store", "amount"], axis=1))
    SALES.to_parquet(root / "secret.parquet")
    return root / "datasets"


@pytest.fixture(scope="module", params=["tcp", "ipc"])
def kernel(request, tmp_path_factory, dataset_dir):
    with started_kernel(tmp_path_factory.mktemp(request.param), request.param, dataset_dir) as client:
        yield client


@pytest.mark.parametrize("name", ["売上", "sales", "../secret", "..", ".hidden", "a/b\\c%d", "x\x00y"])
def test_dataset_filename_stays_in_the_directory(name):
    filename = dataset_filename(name)
    assert "/" not in filename and "\\" not in filename and "\x00" not in filename
    assert not filename.startswith(".") and filename.endswith(".parquet")


def test_dataset_names_round_trip(tmp_path):
    for name in ["売上", "../secret", ".hidden", "100%"]:
        (tmp_path / dataset_filename(name)).touch()
    assert dataset_names(str(tmp_path)) == sorted(["売上", "../secret", ".hidden", "100%"])


def test_kernel_info(kernel):
    content = kernel.kernel_info(reply=True, timeout=START_TIMEOUT)["content"]
    assert content["implementation"] == "bi-cards"
    assert "debugger" not in content["supported_features"]


def test_namespace_offers_load_dataset_only(kernel):
    result = execute(kernel, "print(sorted(n for n in dir() if not n.startswith('_')))")
    assert result.stdout == "['In', 'Out', 'exit', 'get_ipython', 'load_dataset', 'quit']\n"


def test_load_dataset_japanese(kernel):
    result = execute(kernel, "df = load_dataset('売上')\n"
                             "totals = df.groupby('店舗')['売上高'].sum().to_dict()\n"
                             "print(list(df.columns), df.shape, totals)")
    assert result.error is None
    assert result.stdout == "['店舗', '売上高'] (3, 2) {'大阪': 250, '東京': 150}\n"


def test_missing_dataset_lists_available(kernel):
    assert execute(kernel, "load_dataset('nope')").error == (
        "DatasetNotFound", "no dataset named 'nope'; available: 'sales', '売上'")


def test_dataset_name_cannot_escape(kernel, dataset_dir):
    assert (dataset_dir.parent / "secret.parquet").exists()
    ename, evalue = execute(kernel, "load_dataset('../secret')").error
    assert (ename, evalue.split(";")[0]) == ("DatasetNotFound", "no dataset named '../secret'")


def assert_bokeh_item(bundle):
    assert set(bundle) == {MIME_TYPE, "text/plain"}
    assert {"doc", "target_id", "root_id"} <= set(bundle[MIME_TYPE])
    assert bundle[MIME_TYPE]["doc"]["roots"][0]["name"] == "Figure"


def test_bokeh_figure_as_last_expression(kernel):
    result = execute(kernel, FIGURE + "p")
    assert result.error is None
    [bundle] = result.bundles("execute_result")
    assert_bokeh_item(bundle)


@pytest.mark.parametrize("prelude", ["", "from bokeh.io import output_notebook\noutput_notebook()\n"])
def test_bokeh_show(kernel, prelude):
    result = execute(kernel, FIGURE + prelude + "show(p)")
    assert result.error is None
    assert [kind for kind, _ in result.outputs] == ["display_data"]
    assert_bokeh_item(result.bundles("display_data")[0])


def test_bokeh_non_ui_model_is_text_only(kernel):
    result = execute(kernel, "from bokeh.models import ColumnDataSource\nColumnDataSource({'x': [1]})")
    [bundle] = result.bundles("execute_result")
    assert list(bundle) == ["text/plain"]


def test_serve_in_a_forked_child(tmp_path):
    """As the template does: fork, then ``serve`` in the child; the parent is the client."""
    connection_file = str(tmp_path / "kernel.json")
    write_connection_file(connection_file, transport="ipc", ip=str(tmp_path / "k"), shell_port=1,
                          iopub_port=2, stdin_port=3, hb_port=4, control_port=5)
    write_dataset(tmp_path / "datasets", "売上", SALES)
    events = tmp_path / "events.log"
    pid = os.fork()
    if pid == 0:
        serve_and_exit(connection_file, str(tmp_path / "datasets"), str(events))
    status = None
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=START_TIMEOUT)
        assert execute(client, "print(load_dataset('売上').shape)").stdout == "(3, 2)\n"
        assert execute(client, FIGURE + "show(p)").bundles("display_data")[0][MIME_TYPE]["doc"]
        for code in ["!ls", "%%bash\nls", "import os"]:
            assert execute(client, code).status == "error"
        client.shutdown()
        _, status = os.waitpid(pid, 0)
    finally:
        client.stop_channels()
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert events.read_text() == ""


def writes_a_file(event: str, args: tuple) -> bool:
    if event == "os.mkdir":
        return True
    if event != "open" or isinstance(args[0], int):
        return False
    _, mode, flags = args
    return any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def serve_and_exit(connection_file: str, dataset_dir: str, events: str) -> None:
    """The forked child: log process starts and file writes, serve the kernel, never return."""
    status = 1
    try:
        log = os.open(events, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

        def audit(event: str, args: tuple) -> None:
            if event.startswith(PROCESS_EVENTS) or writes_a_file(event, args):
                os.write(log, f"{event} {args!r}\n".encode())

        sys.addaudithook(audit)
        bi_kernel.serve(connection_file, dataset_dir)
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(status)
