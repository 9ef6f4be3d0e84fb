"""Names of card outputs on the wire (DESIGN.md §7), shared by the kernels and the server.

Dependency-free, so that the server can know them without importing kernel code.
"""

BOKEH_ITEM = "application/vnd.bi.bokeh-item.v1+json"  # bokeh.embed.json_item of a shown model
DATAFRAME = "application/vnd.bi.dataframe.v1+json"  # schema, row count and first page of a table
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # an ipywidgets view (its model lives in comms)
ARROW_STREAM = "application/vnd.apache.arrow.stream"  # no longer sent: a bundle carrying it has it removed
TABLE_FILE = "application/vnd.bi.table-file.v1+json"  # {"name"}: the whole table, an Arrow file the agent serves
TABLE_FILE_NAME = r"[0-9a-f]{32}"  # a table file's name in the kernel's tables folder, before ``.arrow``
BOKEH_COMM_TARGET = "bi.bokeh"  # the comm of live Bokeh document patches
NOTEBOOK_REQUEST = "bi_notebook_request"  # the server switches a Jupyter API kernel's outputs (notebook_output)

CONTROL_REQUESTS = frozenset({"interrupt_request", "shutdown_request", "kernel_info_request"})
"""The only messages the control channel serves (it answers while the shell runs code, so anything
else there would run outside the run's limits)."""


def control_refusal(msg_type: str) -> tuple[str, dict[str, object]]:
    """The reply type and error content that refuse ``msg_type`` on the control channel."""
    reply_type = msg_type.removesuffix("_request") + "_reply"
    allowed = ", ".join(sorted(CONTROL_REQUESTS))
    return reply_type, {"status": "error", "ename": "NotAllowedOnControl", "traceback": [],
                        "evalue": f"{msg_type} is not served on the control channel (only {allowed}); "
                                  "send requests that run code on the shell channel"}
