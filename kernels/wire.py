"""Names of card outputs on the wire (DESIGN.md §7), shared by the kernels and the server.

Dependency-free, so that the server can know them without importing kernel code.
"""

BOKEH_ITEM = "application/vnd.bi.bokeh-item.v1+json"  # bokeh.embed.json_item of a shown model
DATAFRAME = "application/vnd.bi.dataframe.v1+json"  # schema, row count and first page of a table
ARROW_STREAM = "application/vnd.apache.arrow.stream"  # the whole table, base64 Arrow IPC stream
BOKEH_COMM_TARGET = "bi.bokeh"  # the comm of live Bokeh document patches
