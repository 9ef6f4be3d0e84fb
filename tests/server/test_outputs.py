"""Kernel messages into outputs, and the collector that keeps them."""

from __future__ import annotations

import pytest

from server.execution.outputs import output_of

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
