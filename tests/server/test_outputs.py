"""Kernel messages into outputs, and the collector that keeps them."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from kernels import table_output
from kernels.wire import DATAFRAME
from server.execution.outputs import OutputCollector, output_of
from server.execution.tables import read_rows, table_name

PATCH = {"events": [{"kind": "ModelChanged", "model": {"id": "p1012"}, "attr": "text", "new": "after"}]}


def message(msg_type: str, content: dict) -> dict:
    return {"msg_type": msg_type, "content": content}


def test_bokeh_comm_message_is_a_patch_output():
    data = {"target": "bi.bokeh", "root_id": "p1009", "seq": 3, "patch": PATCH}
    assert output_of(message("comm_msg", {"comm_id": "c", "data": data})) == {
        "output_type": "bokeh_patch", "root_id": "p1009", "seq": 3, "patch": PATCH}


@pytest.mark.parametrize("msg", [
    message("comm_open", {"comm_id": "c", "target_name": "bi.bokeh", "data": {}}),
    message("comm_msg", {"comm_id": "c", "data": {"target": "jupyter.widget", "patch": PATCH}}),
    message("comm_msg", {"comm_id": "c", "data": ["bi.bokeh"]}),
    message("comm_close", {"comm_id": "c", "data": {}}),
])
def test_other_comm_messages_are_not_outputs(msg):
    assert output_of(msg) is None


def shown(frame: pd.DataFrame, folder) -> tuple[dict, object]:
    """The output of showing ``frame`` with tables written to ``folder``, and its table file."""
    output = {"output_type": "execute_result", "data": table_output.bundle(frame, tables_dir=str(folder)),
              "metadata": {}, "execution_count": 1}
    return output, folder / f"{table_name({'msg_type': 'execute_result', 'content': output})}.arrow"


def test_collector_sanitises_and_keeps_table_files_apart(tmp_path):
    collected: list[dict] = []
    kept: list = []
    collector = OutputCollector(limit_bytes=20_000, memory_mb=512, listener=collected.append,
                                keep_table=lambda stream: kept.append(stream) or f"table-{len(kept)}")
    collector.add({"output_type": "stream", "name": "stdout", "text": "start\n"})
    collector.add(*shown(pd.DataFrame({"x": range(20_000)}), tmp_path))
    collector.add({"output_type": "display_data", "data": {"text/html": "<script>x</script>", "text/plain": "x"},
                   "metadata": {}})
    assert not collector.truncated  # the 80 kB stream is not counted as output
    assert collected == collector.outputs
    assert set(collector.outputs[1]["data"]) == {DATAFRAME, "text/plain"}
    assert collector.outputs[2]["data"] == {"text/plain": "x"}
    [stream] = kept
    assert collector.outputs[1]["output_id"] == "table-1" and read_rows(stream, 19_999, 10)[0] == [[19_999]]


def test_collector_keeps_no_table_of_a_truncated_output_and_removes_its_file(tmp_path):
    kept: list = []
    collector = OutputCollector(limit_bytes=100, memory_mb=512, keep_table=lambda stream: kept.append(stream) or "t")
    output, table = shown(pd.DataFrame({"x": range(100)}), tmp_path)
    collector.add(output, table)
    assert collector.truncated and kept == [] and not table.exists()


def test_truncation_notice_comes_first_in_the_result():
    """Past the cap the notice is the result's first output (read before what it cut), and the listener hears it."""
    heard: list[dict] = []
    collector = OutputCollector(limit_bytes=2_000, memory_mb=512, listener=heard.append)
    for line in range(100):
        collector.add({"output_type": "stream", "name": "stdout", "text": f"line {line} " + "x" * 50 + "\n"})
    assert collector.truncated
    assert "output truncated" in collector.outputs[0]["text"] and collector.outputs[0]["name"] == "stderr"
    assert all("output truncated" not in output["text"] for output in collector.outputs[1:])
    assert "output truncated" in heard[-1]["text"]


def test_tracebacks_leave_out_the_platforms_frames():
    """Frames of ``kernels/`` (load_dataset, the import hook) are not the card author's: they are left out."""
    frames = ["-----\nDatasetNotFound    Traceback (most recent call last)",
              "Cell In[1], line 1\n----> 1 df = load_dataset('x')\n",
              "File /opt/bi/kernels/helpers.py:88, in load_dataset(name)\n     86 raise DatasetNotFound(...)\n",
              "File /usr/lib/python3/dist-packages/pandas/io/parquet.py:12, in read()\n",
              "DatasetNotFound: no dataset named 'x'; available: none"]
    output = output_of(message("error", {"ename": "DatasetNotFound", "evalue": "no dataset named 'x'; available: none",
                                         "traceback": ["\x1b[0;31m" + frame for frame in frames]}))
    assert output["traceback"] == [frames[0], frames[1], frames[3], frames[4]]


def test_a_keyboard_interrupt_past_the_wall_clock_reads_as_the_timeout():
    """The KeyboardInterrupt the wall clock's interrupt raises becomes the ``timeout`` error, with the frames
    of where the code was; an interrupt the user asked for stays a KeyboardInterrupt."""
    interrupt = message("error", {"ename": "KeyboardInterrupt", "evalue": "", "traceback": [
        "-" * 75, "KeyboardInterrupt    Traceback (most recent call last)", "Cell In[2], line 1\n----> 1 while True: pass\n",
        "KeyboardInterrupt: "]})
    collector = OutputCollector(limit_bytes=20_000, memory_mb=512)
    collector.timed_out = 10
    asyncio.run(collector.add_message(interrupt))
    [output] = collector.outputs
    assert output["ename"] == "timeout" and output["details"] == {"seconds": 10}
    assert output["evalue"] == "The code ran longer than the 10 s limit and was stopped."
    assert output["traceback"] == ["Cell In[2], line 1\n----> 1 while True: pass\n"]
    assert output_of(interrupt)["ename"] == "KeyboardInterrupt"
