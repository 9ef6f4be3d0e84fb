"""The locked-down kernel over tcp and ipc: datasets, Bokeh and DataFrame output, and serving from a fork."""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from jupyter_client import BlockingKernelClient
from bokeh.document import Document
from jupyter_client.connect import write_connection_file

from kernels import kernel as bi_kernel
from kernels import plots, table_output
from kernels.arrow_rows import rows_of
from kernels.limits import STREAM_MESSAGE_CHARS
from kernels.wire import BOKEH_ITEM, DATAFRAME, TABLE_FILE
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
    assert content["supported_features"] == []  # no debugger, no subshells: the control channel refuses both


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
    assert set(bundle) == {BOKEH_ITEM, "text/plain"}
    assert {"doc", "target_id", "root_id"} <= set(bundle[BOKEH_ITEM])
    assert bundle[BOKEH_ITEM]["doc"]["roots"][0]["name"] == "Figure"


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


def test_a_shown_figure_fits_its_pane_and_writes_plain_numbers(kernel):
    """A figure of its own stretches to the pane's width; default number axes are not in scientific
    notation; a figure inside a layout, and a sizing mode the card chose, are left as they are."""
    result = execute(kernel, "from bokeh.layouts import row\nfrom bokeh.plotting import figure\n"
                             "p = figure(width=600)\np.line([1, 2], [1e6, 3e8])\n"
                             "q = figure(width=300, sizing_mode='fixed')\nq.line([1], [1])\n"
                             "display(p, q, row(figure(width=200)))")
    items = [bundle[BOKEH_ITEM]["doc"] for bundle in result.bundles("display_data")]
    plots = [next(model for model in item["roots"] if model["name"] == "Figure") for item in items[:2]]
    assert [plot["attributes"].get("sizing_mode") for plot in plots] == ["stretch_width", "fixed"]
    formatters = [reference for reference in str(items[0]).split("BasicTickFormatter")[1:]]
    assert formatters and all("'use_scientific': False" in text[:300] for text in formatters)
    layout = items[2]["roots"][0]
    assert layout["name"] == "Row" and "stretch_width" not in str(layout["attributes"].get("children"))
    assert result.comm_data == []  # fitting sends no patch of its own: the items have it


def test_bokeh_non_ui_model_is_text_only(kernel):
    result = execute(kernel, "from bokeh.models import ColumnDataSource\nColumnDataSource({'x': [1]})")
    [bundle] = result.bundles("execute_result")
    assert list(bundle) == ["text/plain"]


LIVE_FIGURE = ("from bokeh.models import ColumnDataSource\nfrom bokeh.plotting import figure, show\n"
               "source = ColumnDataSource({'x': [1, 2], 'y': [3, 4]})\n"
               "live = figure(title='before')\nlive.line('x', 'y', source=source)\n")


def test_bokeh_changes_after_show_are_live_patches(kernel):
    shown = execute(kernel, LIVE_FIGURE + "show(live)")
    [bundle] = shown.bundles("display_data")
    item = bundle[BOKEH_ITEM]
    assert shown.comm_data == []
    changes = ["source.stream({'x': [3], 'y': [5]})", "source.patch({'y': [(0, 10)]})",
               "live.title.text = 'after'\nlive.title.text = 'after all'"]
    patches = [execute(kernel, code).comm_data for code in changes]
    assert [[(p["target"], p["root_id"], p["seq"]) for p in sent] for sent in patches] == [
        [("bi.bokeh", item["root_id"], seq)] for seq in (1, 2, 3)]
    events = [sent[0]["patch"]["events"] for sent in patches]
    assert [[event["kind"] for event in patch] for patch in events] == [
        ["ColumnsStreamed"], ["ColumnsPatched"], ["ModelChanged"]]
    assert events[2][0]["new"] == "after all"
    assert execute(kernel, "live.title.text").comm_data == []

    document = Document.from_json(item["doc"])
    for sent in patches:
        document.apply_json_patch(sent[0]["patch"])
    [root] = document.roots
    [renderer] = root.renderers
    assert renderer.data_source.data == {"x": [1, 2, 3], "y": [10, 4, 5]}
    assert root.title.text == "after all"


def test_bokeh_patches_follow_every_display_of_a_root(kernel):
    execute(kernel, LIVE_FIGURE + "show(live)")
    again = execute(kernel, "source.stream({'x': [3], 'y': [5]})\nlive")
    assert [p["seq"] for p in again.comm_data] == [1]  # sent before the new item, which has the row
    assert again.bundles("execute_result")[0][BOKEH_ITEM]["doc"]["roots"][0]["id"] == again.comm_data[0]["root_id"]
    added = execute(kernel, "from bokeh.layouts import column\nshow(column(live))\n"
                            "live.scatter('x', 'y', source=source)")
    figure_patch, column_patch = added.comm_data
    assert (figure_patch["seq"], column_patch["seq"]) == (2, 1)
    [event] = figure_patch["patch"]["events"]
    assert (event["kind"], event["attr"]) == ("ModelChanged", "renderers")
    assert event["new"][-1]["name"] == "GlyphRenderer"  # a model the page has not seen, in full


TABLE = ("import numpy as np\nimport pandas as pd\n"
         "df = pd.DataFrame({'店舗': ['東京', '大阪', None], '売上高': [100, 250, 50],\n"
         "                   '率': [0.5, np.nan, np.inf], '日': pd.to_datetime(['2024-01-02', None, '2024-03-01']),\n"
         "                   'b': [b'\\x00', b'a', None], 'mixed': [1, 'a', None]})\n")


def table_of(client, bundle) -> pa.Table:
    """The Arrow table a DataFrame bundle names, written to the kernel's tables folder, after checking the
    bundle's shape."""
    assert set(bundle) == {DATAFRAME, TABLE_FILE, "text/plain"}
    folder = Path(client.connection_file).parent / "tables"
    return pa.ipc.open_stream((folder / f"{bundle[TABLE_FILE]['name']}.arrow").read_bytes()).read_all()


def test_dataframe_is_data_not_html(kernel):
    result = execute(kernel, TABLE + "df")
    assert result.error is None
    [bundle] = result.bundles("execute_result")
    table = table_of(kernel, bundle)
    summary = bundle[DATAFRAME]
    assert summary["columns"] == [{"name": "店舗", "dtype": "str"}, {"name": "売上高", "dtype": "int64"},
                                  {"name": "率", "dtype": "float64"}, {"name": "日", "dtype": "datetime64[us]"},
                                  {"name": "b", "dtype": "object"}, {"name": "mixed", "dtype": "object"}]
    assert summary["rows"] == [["東京", 100, 0.5, "2024-01-02T00:00:00", "b'\\x00'", "1"],
                               ["大阪", 250, None, None, "b'a'", "a"],
                               [None, 50, None, "2024-03-01T00:00:00", None, None]]
    assert (summary["index"], summary["row_count"], summary["rows_available"], summary["complete"]) == ([], 3, 3, True)
    assert table.column_names == [column["name"] for column in summary["columns"]]
    assert rows_of(table) == summary["rows"]
    assert "東京" in bundle["text/plain"]


def test_numpy_scalars_show_as_values(kernel):
    result = execute(kernel, TABLE + "df['売上高'].sum(), df['率'].max(), df['売上高'].sum()")
    [bundle] = result.bundles("execute_result")
    assert bundle["text/plain"] == "(400, inf, 400)"
    for code, shown in (("df['売上高'].sum()", "400"), ("df['率'].max()", "inf"), ("df['売上高'].gt(60).all()", "False"),
                        ("df['日'].min().to_numpy()", "2024-01-02T00:00:00.000000")):
        [bundle] = execute(kernel, TABLE + code).bundles("execute_result")
        assert bundle["text/plain"] == shown, code


def test_dataframe_index_and_multiindex_columns(kernel):
    result = execute(kernel, TABLE + "df.pivot_table(index='店舗', columns='日', values=['売上高', '率'], "
                                     "aggfunc='sum')")
    [bundle] = result.bundles("execute_result")
    summary = bundle[DATAFRAME]
    assert [column["name"] for column in summary["columns"]] == [
        "店舗", "売上高 / 2024-01-02 00:00:00", "率 / 2024-01-02 00:00:00"]
    assert summary["index"] == ["店舗"]
    assert summary["rows"] == [["東京", 100.0, 0.5]]
    assert rows_of(table_of(kernel, bundle)) == summary["rows"]


def test_large_dataframe_pages_from_arrow(kernel):
    result = execute(kernel, "import pandas as pd\n"
                             "pd.DataFrame({'i': range(100_000), 's': ['あ'] * 100_000}).set_index('i')")
    [bundle] = result.bundles("execute_result")
    summary = bundle[DATAFRAME]
    assert (summary["row_count"], summary["rows_available"], summary["index"]) == (100_000, 100_000, ["i"])
    assert summary["rows"] == [[i, "あ"] for i in range(table_output.FIRST_ROWS)]
    table = table_of(kernel, bundle)
    assert table.num_rows == 100_000 and table.column("i")[-1].as_py() == 99_999
    assert "[100000 rows x 1 columns]" in bundle["text/plain"]


def test_displayed_series_is_a_one_column_frame(kernel):
    result = execute(kernel, "import pandas as pd\ndisplay(pd.Series([1.5, None], name='率'), pd.Series(['a']))")
    named, unnamed = result.bundles("display_data")
    assert named[DATAFRAME]["columns"] == [{"name": "率", "dtype": "float64"}]
    assert named[DATAFRAME]["rows"] == [[1.5], [None]]
    assert unnamed[DATAFRAME]["columns"] == [{"name": "value", "dtype": "str"}]
    assert rows_of(table_of(kernel, unnamed)) == [["a"]]


def test_arrow_stream_over_the_limit_is_left_out(tmp_path, dataset_dir):
    with started_kernel(tmp_path, "ipc", dataset_dir, ("--LockedDownKernel.arrow_limit_bytes=5000",)) as client:
        result = execute(client, "import pandas as pd\ndisplay(pd.DataFrame({'i': range(1000)}), "
                                 "pd.DataFrame({'i': range(1000)}).astype('int8'))")
    over, under = result.bundles("display_data")
    assert set(over) == {DATAFRAME, "text/plain"}
    summary = over[DATAFRAME]
    assert (summary["row_count"], summary["rows_available"], summary["complete"]) == (1000, 50, False)
    assert summary["rows"] == [[i] for i in range(50)]
    assert table_of(client, under).num_rows == under[DATAFRAME]["rows_available"] == 1000


def test_repeated_and_unnamed_names_are_unique():
    frame = pd.DataFrame([[1, 2]], columns=["index", "index"], index=pd.Index(["r"]))
    columns = table_output.bundle(frame)[DATAFRAME]["columns"]
    assert [column["name"] for column in columns] == ["index", "index (2)", "index (3)"]


def test_serve_in_a_forked_child(tmp_path):
    """As the template does: set matplotlib up, fork, then ``serve`` in the child; the parent is the client."""
    plots.prepare()
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
        assert execute(client, FIGURE + "show(p)").bundles("display_data")[0][BOKEH_ITEM]["doc"]
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


def test_one_huge_write_goes_out_in_bounded_stream_messages(kernel):
    """A single write longer than a stream message may carry is split, so it never becomes one message past
    the relay's bound (which would cost the kernel its link); the text arrives whole and in order."""
    result = execute(kernel, f"print('0123456789' * {STREAM_MESSAGE_CHARS // 4})")
    texts = [c["text"] for kind, c in result.outputs if kind == "stream"]
    assert len(texts) >= 3 and max(map(len, texts)) <= STREAM_MESSAGE_CHARS
    assert result.stdout == "0123456789" * (STREAM_MESSAGE_CHARS // 4) + "\n"


def test_an_interrupt_before_a_cells_code_runs_interrupts_it_as_it_starts(kernel):
    """A SIGINT (``interrupt_request``) that lands while the kernel prepares a cell, after its busy status and before
    its code runs, interrupts that code as it starts: the cell is answered with a KeyboardInterrupt error at once.
    ipykernel dropped such a cell unanswered, so its run waited out its wall clock and the kernel was killed (a
    clean run's ``test_auto_run`` met it). A SIGINT when no code is left to run is dropped."""
    assert execute(kernel, "import time\n"
                           "get_ipython().input_transformers_post.append(lambda lines: time.sleep(1.5) or lines)"
                           ).status == "ok"
    msg_id = kernel.execute("import time\ntime.sleep(5)\n'finished'")
    time.sleep(0.5)  # the cell is being prepared: the transformer sleeps
    kernel.control_channel.send(kernel.session.msg("interrupt_request", {}))
    started = time.monotonic()
    reply = kernel.get_shell_msg(timeout=10)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.get_shell_msg(timeout=10)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - started < 3, "interrupted as it started, not run to its end"
    assert execute(kernel, "get_ipython().input_transformers_post.clear()\n1 + 1").status == "ok"
    assert execute(kernel, "'next'").status == "ok"
