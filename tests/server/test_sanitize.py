"""Outputs made safe for a page: real Bokeh items and patches, and MIME bundles."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from bokeh.embed import json_item
from bokeh.layouts import column, gridplot, row
from bokeh.models import (ColorBar, ColumnDataSource, CustomJS, CustomJSHover, DataTable, DateFormatter, Div,
                          HelpTool, HoverTool, HTMLTemplateFormatter, ImageURL, Label, Legend, LinearColorMapper,
                          NumberFormatter, OpenURL, Slider, Span, TabPanel, TableColumn, Tabs, TapTool)
from bokeh.plotting import figure

from kernels import table_output
from kernels.bokeh_output import LivePatches
from kernels.wire import BOKEH_ITEM, DATAFRAME, WIDGET_VIEW
from server.execution.sanitize import WIDGET_NOTE, sanitize_output

SVG_MIME = "image/svg+xml"
SVG = ('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
       ' viewBox="0 0 10 10" onload="alert(1)"><script>alert(2)</script><defs><path id="m" d="M0 0L1 1"/></defs>'
       '<use xlink:href="#m" fill="url(#g)"/><use href="https://evil.example/x.svg#a"/>'
       '<rect width="5" height="5" style="fill: red; stroke: url(https://evil.example/t)"/>'
       '<a href="javascript:alert(3)"><text x="1">売上</text></a><foreignObject><div>x</div></foreignObject></svg>')


def source() -> ColumnDataSource:
    return ColumnDataSource({"x": [1, 2, 3], "y": [3, 1, 2], "店舗": ["東京", "大阪", "名古屋"]})


def chart(**kwargs) -> figure:
    plot = figure(title="売上", x_axis_type="datetime", **kwargs)
    line = plot.line("x", "y", source=source(), legend_label="売上高")
    plot.scatter("x", "y", source=source(), color={"field": "y", "transform": LinearColorMapper(palette="Viridis256")})
    plot.add_tools(HoverTool(renderers=[line], tooltips=[("店舗", "@店舗"), ("y", "@y{0.0}")]))
    plot.add_layout(Span(location=2, dimension="width"))
    plot.add_layout(Label(x=1, y=1, text="$$not math$$ <b>text</b>"))
    plot.add_layout(ColorBar(color_mapper=LinearColorMapper(palette="Viridis256")), "right")
    return plot


def bars() -> figure:
    tools = "tap,box_select,lasso_select,crosshair,wheel_zoom,save,reset,help"
    plot = figure(x_range=["東京", "大阪"], tools=tools)
    plot.vbar(x=["東京", "大阪"], top=[1, 2], width=0.5)
    plot.add_layout(Legend(), "below")
    return plot


def table(**formatter) -> DataTable:
    columns = [TableColumn(field="店舗", title="店舗"),
               TableColumn(field="y", formatter=NumberFormatter(format="0.0")),
               TableColumn(field="x", formatter=formatter.get("formatter", DateFormatter()))]
    return DataTable(source=source(), columns=columns)


def item_output(model) -> dict:
    """The output of a shown model, as the server gets it (JSON)."""
    data = {BOKEH_ITEM: json_item(model), "text/plain": repr(model)}
    return {"output_type": "display_data", "data": json.loads(json.dumps(data)), "metadata": {}}


def unsafe(output: dict) -> str:
    assert output["output_type"] == "error" and output["ename"] == "UnsafeOutput", output
    assert output["evalue"].endswith(", which cards may not use (no custom JavaScript or HTML in outputs)")
    return output["evalue"].removeprefix("this chart ").split(",")[0]


SAFE = {
    "figure": chart,
    "categorical bars and tools": bars,
    "layouts": lambda: column(row(chart(), bars()), gridplot([[chart(), bars()]]),
                              Tabs(tabs=[TabPanel(child=table(), title="表"), TabPanel(child=chart(), title="図")])),
    "data table": table,
    "string tooltips": lambda: chart(tooltips="@店舗: @y"),
}


@pytest.mark.parametrize("make", SAFE.values(), ids=SAFE.keys())
def test_safe_bokeh_items_pass_unchanged(make):
    output = item_output(make())
    assert sanitize_output(copy.deepcopy(output)) == output


def with_slider_callback():
    slider = Slider(start=0, end=1, value=0)
    slider.js_on_change("value", CustomJS(code="fetch('/api/token')"))
    return column(slider, chart())


def with_figure_callback():
    plot = chart()
    plot.js_on_event("tap", CustomJS(code="alert(document.cookie)"))
    return plot


def with_hover(tooltips, **formatters):
    plot = chart()
    plot.add_tools(HoverTool(tooltips=tooltips, formatters=formatters))
    return plot


def with_tool(tool):
    plot = chart()
    plot.add_tools(tool)
    return plot


def with_image_url():
    plot = chart()
    plot.add_glyph(ColumnDataSource({"url": ["https://evil.example/pixel.png"]}), ImageURL(url="url", x=0, y=0))
    return plot


UNSAFE = {
    "CustomJS on a widget": (with_slider_callback, ("uses Slider", "uses CustomJS")),
    "CustomJS on a figure": (with_figure_callback, ("uses CustomJS", "uses js_event_callbacks")),
    "CustomJSHover": (lambda: with_hover([("y", "@y{custom}")], **{"@y": CustomJSHover(code="return 1")}),
                      ("uses CustomJSHover",)),
    "Div": (lambda: column(Div(text="<img src=x onerror=alert(1)>"), chart()), ("uses Div",)),
    "HTML tooltips": (lambda: with_hover("<div>@店舗</div>"), ("uses HTML in HoverTool.tooltips",)),
    "HTML in tabular tooltips": (lambda: with_hover([("店舗", "<img src=x onerror=alert(1)>")]),
                                 ("uses HTML in HoverTool.tooltips",)),
    "unescaped tooltip values": (lambda: with_hover([("店舗", "@店舗{safe}")]),
                                 ("uses HTML in HoverTool.tooltips",)),
    "HTMLTemplateFormatter": (lambda: table(formatter=HTMLTemplateFormatter(template="<b><%= value %></b>")),
                              ("uses HTMLTemplateFormatter",)),
    "HTML column title": (lambda: DataTable(source=source(), columns=[TableColumn(field="y", title="<b>y</b>")]),
                          ("uses HTML in TableColumn.title",)),
    "OpenURL": (lambda: with_tool(TapTool(callback=OpenURL(url="javascript:alert(1)"))), ("uses OpenURL",)),
    "javascript: redirect": (lambda: with_tool(HelpTool(redirect=" JaVa\tScript:alert(1)")),
                             ("uses a script URL", "uses redirect")),
    "ImageURL": (with_image_url, ("uses ImageURL",)),
    "html_attributes": (lambda: chart(html_attributes={"onmouseover": "alert(1)"}), ("uses html_attributes",)),
    "stylesheets": (lambda: chart(stylesheets=[":host { background: url(https://evil.example/t) }"]),
                    ("uses stylesheets",)),
}


@pytest.mark.parametrize(("make", "reasons"), UNSAFE.values(), ids=UNSAFE.keys())
def test_unsafe_bokeh_items_become_an_error_naming_the_cause(make, reasons):
    assert unsafe(sanitize_output(item_output(make()))) in reasons


def test_models_bokeh_does_not_know_are_unsafe():
    output = item_output(chart())
    output["data"][BOKEH_ITEM]["doc"]["roots"][0]["attributes"]["toolbar"]["name"] = "MyExtension"
    assert unsafe(sanitize_output(output)) == "uses MyExtension"


def live_patches() -> tuple[LivePatches, list[dict], ColumnDataSource, figure]:
    sent: list[dict] = []
    live = LivePatches()
    live.send = sent.append
    data = source()
    plot = figure()
    plot.line("x", "y", source=data)
    live.bundle(plot)
    return live, sent, data, plot


def patch_output(data: dict) -> dict:
    return {"output_type": "bokeh_patch", "root_id": data["root_id"], "seq": data["seq"],
            "patch": json.loads(json.dumps(data["patch"]))}


def test_safe_patches_pass_unchanged():
    live, sent, data, plot = live_patches()
    data.stream({"x": [4], "y": [0], "店舗": ["京都"]})
    plot.title.text = "売上"
    plot.scatter("x", "y", source=data)
    live.flush()
    output = patch_output(sent[0])
    assert sanitize_output(copy.deepcopy(output)) == output


@pytest.mark.parametrize(("change", "reason"), [
    (lambda plot: plot.js_on_event("tap", CustomJS(code="alert(1)")), "uses js_event_callbacks"),
    (lambda plot: setattr(plot, "html_attributes", {"onclick": "alert(1)"}), "uses html_attributes"),
    (lambda plot: plot.add_tools(HoverTool(tooltips="<img src=x onerror=alert(1)>")),
     "uses HTML in HoverTool.tooltips"),
])
def test_unsafe_patches_become_an_error(change, reason):
    live, sent, _, plot = live_patches()
    change(plot)
    live.flush()
    assert unsafe(sanitize_output(patch_output(sent[0]))) == reason


@pytest.mark.parametrize(("patch", "reason"), [
    ({"events": [{"kind": "ModelChanged", "model": {"id": "p1"}, "attr": "tooltips", "new": "<b>@x</b>"}]},
     "uses HTML in HoverTool.tooltips"),
    ({"events": [{"kind": "MessageSent", "msg_type": "x", "msg_data": {}}]}, "uses a MessageSent patch"),
    ({"events": [{"kind": "RootAdded", "model": {"type": "object", "name": "Div", "id": "p2"}}]},
     "uses a RootAdded patch"),
    ({"evil": []}, "uses a malformed patch"),
])
def test_forged_patches_are_unsafe(patch, reason):
    assert unsafe(sanitize_output({"output_type": "bokeh_patch", "root_id": "p1", "seq": 1, "patch": patch})) == reason


PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")


def bundle_output(data: dict) -> dict:
    return {"output_type": "execute_result", "data": data, "metadata": {}, "execution_count": 3}


def test_html_and_scripts_leave_the_bundle():
    data = {"text/html": "<script>alert(1)</script>", "application/javascript": "alert(1)", "text/plain": "x",
            "text/markdown": "**x**", "image/png": PNG_1X1, "application/vnd.jupyter.widget-state+json": {}}
    assert sanitize_output(bundle_output(data)) == bundle_output(
        {"text/plain": "x", "text/markdown": "**x**", "image/png": PNG_1X1})


def test_a_widget_becomes_a_note_that_widgets_work_in_jupyter_clients():
    """Nothing of a widget's view reaches a page (its model id, what its text says): an empty marker the
    page shows as a note in its reader's language, and the note in English for API callers."""
    output = sanitize_output(bundle_output({WIDGET_VIEW: {"model_id": "<img src=x onerror=alert(1)>", "version_major": 2},
                                            "text/plain": "IntSlider(value=3)", "text/html": "<script>x</script>"}))
    assert output["data"] == {WIDGET_VIEW: {}, "text/plain": WIDGET_NOTE}


def test_a_bundle_left_empty_says_what_was_dropped():
    output = sanitize_output(bundle_output({"text/html": "<b>x</b>", "text/javascript": "alert(1)"}))
    assert output["data"] == {"text/plain": "[output not shown: text/html, text/javascript "
                                            "(cards show text, images, charts and tables; HTML only as a table)]"}


def test_svg_keeps_only_the_static_drawing():
    svg = sanitize_output(bundle_output({SVG_MIME: SVG}))["data"][SVG_MIME]
    assert svg == ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><defs><path id="m" d="M0 0L1 1">'
                   '</path></defs><use href="#m" fill="url(#g)"></use><use></use>'
                   '<rect width="5" height="5"></rect><text x="1">売上</text></svg>')


def test_svg_without_a_drawing_is_dropped():
    output = sanitize_output(bundle_output({SVG_MIME: "<script>alert(1)</script>", "text/plain": "<Figure>"}))
    assert output["data"] == {"text/plain": "<Figure>"}


def test_dataframes_and_other_outputs_pass():
    frame = bundle_output({key: value for key, value in table_output.bundle(pd.DataFrame({"x": [1]})).items()
                           if key in (DATAFRAME, "text/plain")})
    for output in [frame, {"output_type": "stream", "name": "stdout", "text": "<b>"},
                   {"output_type": "error", "ename": "E", "evalue": "<b>", "traceback": []}]:
        assert sanitize_output(copy.deepcopy(output)) == output

