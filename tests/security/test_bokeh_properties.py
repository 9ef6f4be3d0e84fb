"""Bokeh items keep only classified properties: no kernel-made CSS, HTML, DOM or URL reaches a viewer's page."""

from __future__ import annotations

import json

import pytest
from bokeh.embed import json_item
from bokeh.layouts import column
from bokeh.model import Model
from bokeh.models import (BooleanFormatter, ColumnDataSource, DataTable, Div, ImageURL, ImportedStyleSheet,
                          Paragraph, PanTool, TableColumn, TeX)
from bokeh.plotting import figure

from kernels.wire import BOKEH_ITEM
from server.execution import bokeh_properties
from server.execution.sanitize import ALLOWED_MODELS, sanitize_output

OVERLAY = {"position": "fixed", "inset": "0", "z-index": "2147483647", "background": "white"}


def chart(**kwargs) -> figure:
    plot = figure(title="売上", **kwargs)
    plot.line([1, 2, 3], [3, 1, 2])
    return plot


def item_output(model) -> dict:
    data = {BOKEH_ITEM: json_item(model), "text/plain": repr(model)}
    return {"output_type": "display_data", "data": json.loads(json.dumps(data)), "metadata": {}}


def forged(attributes: dict) -> dict:
    """A chart whose plot carries ``attributes`` as card code can write them into the JSON by hand."""
    output = item_output(chart())
    output["data"][BOKEH_ITEM]["doc"]["roots"][0]["attributes"].update(attributes)
    return output


def reason(output: dict) -> str:
    assert output["output_type"] == "error" and output["ename"] == "UnsafeOutput", output
    return output["evalue"].removeprefix("this chart ").split(",")[0]


def test_every_property_of_every_allowed_model_is_classified():
    """A Bokeh upgrade that adds a property fails here until someone classifies it."""
    unclassified = sorted(f"{name}.{attr}" for name in ALLOWED_MODELS
                          for attr in Model.model_class_reverse_map[name].properties()
                          if bokeh_properties.rule(attr, name) is None)
    assert not unclassified, f"classify these in server/execution/bokeh_properties.py: {unclassified}"


ATTACKS = {
    "styles overlay covering the page": (lambda: item_output(chart(styles=OVERLAY)), "uses styles"),
    "css_classes": (lambda: item_output(chart(css_classes=["bk-hidden"])), "uses css_classes"),
    "css_variables": (lambda: item_output(chart(css_variables={"--bk-font": "x"})), "uses css_variables"),
    "stylesheets with @import": (
        lambda: item_output(chart(stylesheets=["@import url(https://evil.example/x.css);"])), "uses stylesheets"),
    "ImportedStyleSheet": (lambda: item_output(chart(stylesheets=[ImportedStyleSheet(url="https://evil.example/x.css")])),
                           "uses stylesheets"),
    "html_id": (lambda: item_output(chart(html_id="login-form")), "uses html_id"),
    "Div text": (lambda: item_output(column(Div(text="<img src=x onerror=alert(1)>"), chart())), "uses Div"),
    "Paragraph text": (lambda: item_output(column(Paragraph(text="Your session expired: sign in at evil.example"),
                                                  chart())), "uses Paragraph"),
    "TeX axis label": (lambda: item_output(chart(x_axis_label=TeX(text=r"\href{javascript:alert(1)}{x}"))),
                       "uses TeX"),
    "ImageURL": (lambda: item_output(_with_image_url()), "uses ImageURL"),
    "forged attribute": (lambda: forged({"onclick": "alert(1)"}), "uses Figure.onclick"),
    "forged styles": (lambda: forged({"styles": {"type": "map", "entries": [["position", "fixed"]]}}), "uses styles"),
    "forged attribution": (lambda: forged({"attribution": ["<b>official notice</b>"]}), "uses attribution"),
    "tags carrying objects": (lambda: forged({"tags": [{"type": "map", "entries": [["html", "<b>x</b>"]]}]}),
                              "uses tags holding objects"),
    "BooleanFormatter icon": (lambda: item_output(DataTable(source=ColumnDataSource({"b": [True]}), columns=[
        TableColumn(field="b", formatter=BooleanFormatter(icon="check-square"))])), "uses icon"),
    "HTML table index header": (lambda: item_output(DataTable(source=ColumnDataSource({"b": [1]}),
                                                              index_header="<img src=x onerror=alert(1)>")),
                                "uses HTML in DataTable.index_header"),
}


def _with_image_url() -> figure:
    plot = chart()
    plot.add_glyph(ColumnDataSource({"url": ["https://evil.example/pixel.png"]}), ImageURL(url="url", x=0, y=0))
    return plot


def test_tool_icons_cannot_load_urls():
    plot = chart()
    plot.add_tools(PanTool())
    output = item_output(plot)
    tools = output["data"][BOKEH_ITEM]["doc"]["roots"][0]["attributes"]["toolbar"]["attributes"]["tools"]
    tools[-1]["attributes"] = {"icon": "https://evil.example/track.png"}
    assert reason(sanitize_output(output)) == "uses icon"


@pytest.mark.parametrize(("make", "expected"), ATTACKS.values(), ids=ATTACKS.keys())
def test_unsafe_properties_turn_the_output_into_an_error(make, expected):
    assert reason(sanitize_output(make())) == expected


@pytest.mark.parametrize(("attr", "new", "expected"), [
    ("styles", {"type": "map", "entries": [["position", "fixed"]]}, "uses styles"),
    ("css_classes", ["bk-hidden"], "uses css_classes"),
    ("index_header", "<img src=x onerror=alert(1)>", "uses HTML in DataCube/DataTable.index_header"),
    ("onclick", "alert(1)", "uses a model.onclick"),
])
def test_patches_cannot_set_them_either(attr, new, expected):
    patch = {"events": [{"kind": "ModelChanged", "model": {"id": "p1"}, "attr": attr, "new": new}]}
    assert reason(sanitize_output({"output_type": "bokeh_patch", "root_id": "p1", "seq": 1, "patch": patch})) == expected
