"""Outputs made safe for a page: no kernel-made HTML reaches it, no kernel-made script runs in it.

``sanitize_output(output)`` is the one entry point, applied to every output the server passes on
(``OutputCollector.add``). Card code controls everything a kernel sends, so nothing is trusted.

Bundles (``display_data``, ``execute_result``, ``update_display_data``) keep only the MIME types a
page shows as data: ``text/plain``, ``text/markdown`` (as text: the page renders it with raw HTML
off and only safe link targets, ``static/src/outputs/markdown.ts``), ``image/png``, ``image/jpeg``, ``application/json`` and our Bokeh item and DataFrame
summary (the table's name is taken out before, ``tables.strip_table``); a PNG or JPEG only if its header
says it is one, of at most ``IMAGE_PIXELS`` (``images``). ``text/html`` that holds a
table is rebuilt as table markup with inline styles from an allowlist (``html_tables``: ``DataFrame.style``,
``df.to_html()``, a table in ``IPython.display.HTML``), other HTML dropped. ``image/svg+xml``
is cut by ``nh3`` down to static drawing (shapes, paths, text, gradients, clip paths; no scripts,
event handlers, links, images, ``foreignObject``, animation or references outside the image).
A widget view becomes an empty marker of the same type with a ``text/plain`` note that widgets work
in Jupyter clients (a page says so in its reader's language; widgets need comms that cards do not
keep). Everything else (HTML without a table, JavaScript, LaTeX, unknown types) is dropped; a bundle left
empty gets a ``text/plain`` note naming what was dropped.

Bokeh items and patches are checked whole; one unsafe part turns the output into an
``UnsafeOutput`` error naming it. BokehJS runs whatever JavaScript a document carries and builds
DOM from some strings, so:

- models are allowed by name, deny by default: ``ALLOWED_MODELS`` is every registered model that
  derives from a ``SAFE_BASES`` class (plots, renderers, glyphs, ranges, scales, axes, tickers,
  formatters, grids, legends and canvas annotations, mappers, transforms, filters, column data
  sources, tools, layouts, tables), except ``UNSAFE_BASES`` and every ``Custom*`` model
  (``CustomJS``, ``CustomJSHover``, ``CustomJSTickFormatter``... hold JavaScript). Unsafe bases:
  models that load URLs (``ImageURL``, tile sources and renderers, Ajax and server-sent data
  sources, Google maps), render HTML or DOM (``Div`` and other widgets are not safe bases,
  ``HTMLLabel``/``HTMLTitle``, ``HTMLTemplateFormatter``, ``bokeh.models.dom``, ``Tooltip``),
  run math typesetting (``TeX``, ``MathML``: MathJax), and the debugging ``ExamineTool``. Models
  Python's bokeh does not know (extensions) are denied;
- each model keeps only the properties Bokeh gives it, each checked by its class in
  ``bokeh_properties.py``: what sets CSS, HTML attributes, DOM, callbacks or URLs (``styles``,
  ``stylesheets``, ``css_classes``, ``html_attributes``, tool icons...) must be empty; strings that
  BokehJS parses as HTML (hover tooltips, table headers) may hold no ``<`` and no ``{safe}``
  (unescaped values); ``tags`` hold no objects; a property in no class is unsafe;
- no string anywhere may be a ``javascript:``/``vbscript:``/``data:text/html`` URL (``HelpTool``
  redirects, model names, data: a false alarm costs less than a script);
- a patch holds only the events the kernel sends (``PATCH_EVENTS``); a ``ModelChanged`` event
  names no model, so its attribute must be a property of some allowed model and the strictest
  rule for its name applies.

Cleaning is bounded in work before it starts: an SVG of more than ``SVG_ELEMENTS`` tags (``<`` counted)
or that the parser would work on far past its size (``markup_work``) is not parsed (HTML tables have their
own bounds, ``html_tables``), and a Bokeh item or patch stops being checked at its ``BOKEH_MODELS + 1``-th model,
at a layout's size or border of more than ``BOKEH_LENGTH`` pixels or at figures of more than ``BOKEH_PIXELS``
together in all the items and patches of one run (``PixelBudget``: BokehJS allocates canvases of their size in
every viewer's page, which shows every chart of the run);
either output becomes the error ``output_too_complex`` (``OutputTooComplexError``). The collector runs
the cleaning of HTML, SVG and Bokeh outputs in a thread (``needs_thread``), in order.

The page must still render items with the BokehJS we serve, without its MathJax bundle (so that
``$$...$$`` in titles stays text), into its own target element.
"""

from __future__ import annotations

import re
from typing import Any
from collections.abc import Iterator

import bokeh.plotting  # noqa: F401  (registers Figure)
import nh3
from bokeh.document.config import DocumentConfig
from bokeh.model import Model
from bokeh.models import (CDSView, Column, ColumnarDataSource, Comparison, CoordinateMapping, ExamineTool, Expression, Filter,
                          GraphHitTestPolicy, GridBox, GridPlot, GroupBox, HBox, ImageURL, LabelingPolicy, LayoutDOM, LayoutProvider,
                          MapPlot, Mapper, PlainText, Plot, Range, Row, Scale, ScrollBox, Selection, SelectionPolicy, Spacer,
                          TabPanel, Tabs, TickFormatter, Ticker, Tool, Toolbar, ToolProxy, Transform, VBox, WebDataSource)
from bokeh.models.annotations.legends import LegendItem
from bokeh.models.renderers.renderer import Renderer, RendererGroup
from bokeh.models.renderers.tile_renderer import TileRenderer
from bokeh.models.widgets.tables import CellEditor, CellFormatter, DataTable, GroupingInfo, HTMLTemplateFormatter, TableColumn
from bokeh.models.annotations.dimensional import Dimensional
from bokeh.models.annotations.geometry import AreaVisuals, BoxInteractionHandles
from bokeh.models.annotations.html.html_annotation import HTMLAnnotation
from bokeh.models.expressions import ScalarExpression
from bokeh.models.glyph import Glyph
from bokeh.models.glyphs import MathTextGlyph
from bokeh.models.graphics import Decoration, Marking
from bokeh.models.misc.group_by import GroupBy
from bokeh.models.nodes import Coordinate
from bokeh.models.ui.notifications import Notifications
from bokeh.models.widgets.tables import RowAggregator

from kernels.wire import BOKEH_ITEM, DATAFRAME, WIDGET_VIEW

from ..errors import OutputTooComplexError
from ..limits import BOKEH_LENGTH, BOKEH_MODELS, BOKEH_PIXELS, SVG_ELEMENTS
from . import bokeh_properties, html_tables, images, markup_work

SVG = "image/svg+xml"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg"})
HTML = "text/html"
WIDGET_NOTE = ("[a widget: widgets are not shown in cards and dashboards; use them from a Jupyter client "
               "(JupyterLab, Notebook 7, VS Code) connected to this server]")
KEPT_TYPES = frozenset({"text/plain", "text/markdown", "image/png", "image/jpeg", "application/json",
                        BOKEH_ITEM, DATAFRAME})

SAFE_BASES = (
    Plot, Renderer, RendererGroup, Glyph, Range, Scale, Ticker, TickFormatter, Mapper, Transform, Expression,
    ScalarExpression, Filter, Comparison, ColumnarDataSource, CDSView, Selection, SelectionPolicy,
    LayoutProvider, GraphHitTestPolicy, LabelingPolicy, LegendItem, AreaVisuals, BoxInteractionHandles,
    Marking, Decoration, Dimensional, Coordinate, CoordinateMapping, Tool, Toolbar, ToolProxy, GroupBy,
    PlainText, DocumentConfig, Notifications,
    Row, Column, HBox, VBox, GridBox, GridPlot, ScrollBox, GroupBox, Spacer, Tabs, TabPanel,
    DataTable, TableColumn, CellFormatter, CellEditor, RowAggregator, GroupingInfo,
)
UNSAFE_BASES = (ImageURL, TileRenderer, WebDataSource, MapPlot, HTMLAnnotation, HTMLTemplateFormatter,
                MathTextGlyph, ExamineTool)


def _allowed_models() -> frozenset[str]:
    return frozenset(name for name, cls in Model.model_class_reverse_map.items()
                     if issubclass(cls, SAFE_BASES) and not issubclass(cls, UNSAFE_BASES)
                     and not name.startswith("Custom"))


ALLOWED_MODELS = _allowed_models()
MODEL_RULES = {name: {attr: bokeh_properties.rule(attr, name, issubclass(Model.model_class_reverse_map[name], LayoutDOM))
                      for attr in Model.model_class_reverse_map[name].properties()}
               for name in ALLOWED_MODELS}
"""Each allowed model's properties and how each is checked (None: not classified, so unsafe)."""
PROPERTIES = frozenset(attr for rules in MODEL_RULES.values() for attr in rules)
PLOTS = frozenset(name for name in ALLOWED_MODELS if issubclass(Model.model_class_reverse_map[name], Plot))
PLOT_SIDE = 600
"""A figure's width or height where it sets none (Bokeh's default), or stretches to its container."""
UNESCAPED = re.compile(r"\{\s*safe\s*\}")
SCRIPT_URL = re.compile(r"(javascript|vbscript|data:text/html)", re.IGNORECASE)
NOT_URL_CHARACTERS = re.compile(r"[\x00-\x20]+")
PATCH_EVENTS = frozenset({"ModelChanged", "ColumnDataChanged", "ColumnsStreamed", "ColumnsPatched"})

SVG_TAGS = {"svg", "g", "defs", "symbol", "use", "title", "desc", "path", "rect", "circle", "ellipse",
            "line", "polyline", "polygon", "text", "tspan", "clipPath", "mask", "pattern", "marker",
            "linearGradient", "radialGradient", "stop"}
SVG_ATTRIBUTES = {
    "xmlns", "version", "id", "class", "style", "transform", "viewBox", "preserveAspectRatio", "href",
    "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "dx", "dy", "width", "height", "d", "points",
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-linecap",
    "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset", "stroke-miterlimit", "opacity",
    "clip-path", "clip-rule", "clipPathUnits", "mask", "font-family", "font-size", "font-weight",
    "font-style", "text-anchor", "dominant-baseline", "offset", "stop-color", "stop-opacity",
    "gradientUnits", "gradientTransform", "patternUnits", "patternTransform", "markerWidth",
    "markerHeight", "markerUnits", "refX", "refY", "orient", "marker-start", "marker-mid", "marker-end",
}
SVG_STYLE_PROPERTIES = {"fill", "stroke", "opacity", "mask"} | {name for name in SVG_ATTRIBUTES if "-" in name}
OUTSIDE_REFERENCE = re.compile(r"url\(\s*(?![\"']?\s*#)", re.IGNORECASE)


class Unsafe(Exception):
    """What an output uses that cards may not (``uses CustomJS``)."""


def unsafe_output(reason: Unsafe) -> dict[str, Any]:
    return {"output_type": "error", "ename": "UnsafeOutput", "traceback": [],
            "evalue": f"this chart {reason}, which cards may not use (no custom JavaScript or HTML in outputs)"}


def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _is_empty(value: Any) -> bool:
    if isinstance(value, dict) and value.get("type") in ("map", "set"):
        return not value.get("entries")
    return value in (None, [], {})


def check_attribute(attr: str, value: Any, model: str | None) -> None:
    """Unsafe if ``attr`` of ``model`` (None: some allowed model) is not a classified property, or if its
    value sets CSS, HTML, DOM, callbacks or URLs, holds HTML where BokehJS parses it, or tags an object."""
    rules = MODEL_RULES[model] if model is not None else None
    if (attr not in rules) if rules is not None else (attr not in PROPERTIES):
        raise Unsafe(f"uses {model or 'a model'}.{attr}")
    rule = rules[attr] if rules is not None else bokeh_properties.rule(attr, None)
    if rule is None:
        raise Unsafe(f"uses {attr}")
    if rule == "empty" and not _is_empty(value):
        raise Unsafe(f"uses {attr}")
    if rule == "tags" and any(isinstance(tag, (dict, list)) for tag in (value if isinstance(value, list) else [value])):
        raise Unsafe("uses tags holding objects")
    if rule == "template" and any("<" in text or UNESCAPED.search(text) for text in _strings(value)):
        raise Unsafe(f"uses HTML in {model or '/'.join(sorted(bokeh_properties.TEMPLATE_OWNERS[attr]))}.{attr}")
    if rule == "size" and _pixels(value, 0) > BOKEH_LENGTH:
        raise OutputTooComplexError(f"This chart has a {attr} of more than {BOKEH_LENGTH:,} pixels, more than a page "
                                    "may draw. Make it smaller.", {"bound": "bokeh_length", "max": BOKEH_LENGTH})


def _pixels(value: Any, default: int) -> float:
    """A size property's pixels (``default`` where it sets none)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


class PixelBudget:
    """The figure pixels a run's Bokeh items and patches may still add, ``BOKEH_PIXELS`` in all: a page shows
    every chart of a run, so many items or patches each under the bound would draw as much as one over it."""

    def __init__(self, pixels: float = BOKEH_PIXELS):
        self.left = pixels

    def add_plot(self, attributes: dict[str, Any]) -> None:
        """Charge one figure (``OutputTooComplexError`` past the budget)."""
        self.left -= _pixels(attributes.get("width"), PLOT_SIDE) * _pixels(attributes.get("height"), PLOT_SIDE)
        if self.left < 0:
            raise OutputTooComplexError(f"This run's charts have more than {BOKEH_PIXELS:,} pixels of figures "
                                        "together, more than a page may draw. Plot fewer or smaller figures.",
                                        {"bound": "bokeh_pixels", "max": BOKEH_PIXELS})


def check_bokeh(value: Any, max_models: int = BOKEH_MODELS, budget: PixelBudget | None = None) -> None:
    """Unsafe if a Bokeh document, item or patch holds a model, attribute or URL we do not allow;
    ``OutputTooComplexError`` at its ``max_models + 1``-th model, or past ``BOKEH_LENGTH`` pixels of a layout's
    size or the ``budget`` of figure pixels (its run's; by default ``BOKEH_PIXELS`` for this value alone)."""
    stack, models, budget = [value], 0, budget or PixelBudget()
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "object":
                models += 1
                if models > max_models:
                    raise OutputTooComplexError(f"This chart has more than {max_models:,} Bokeh models, more than "
                                                "an output may show. Plot fewer figures or aggregate the data.",
                                                {"bound": "bokeh_models", "max": max_models})
                name = item.get("name")
                attributes = item.get("attributes", {})
                if name not in ALLOWED_MODELS or not isinstance(attributes, dict):
                    raise Unsafe(f"uses {name}")
                for attr, attr_value in attributes.items():
                    check_attribute(attr, attr_value, name)
                if name in PLOTS:
                    budget.add_plot(attributes)
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, str) and ":" in item and SCRIPT_URL.match(NOT_URL_CHARACTERS.sub("", item)):
            raise Unsafe("uses a script URL")


def check_patch(patch: Any, budget: PixelBudget | None = None) -> None:
    events = patch.get("events") if isinstance(patch, dict) else None
    if not isinstance(events, list):
        raise Unsafe("uses a malformed patch")
    for event in events:
        kind = event.get("kind") if isinstance(event, dict) else None
        if kind not in PATCH_EVENTS:
            raise Unsafe(f"uses a {kind} patch")
        if kind == "ModelChanged":
            check_attribute(str(event.get("attr")), event.get("new"), None)
    check_bokeh(patch, budget=budget)


def clean_svg(svg: str, max_elements: int = SVG_ELEMENTS) -> str | None:
    """The static drawing in ``svg``, or None if there is none; ``OutputTooComplexError`` past ``max_elements`` tags."""
    if svg.count("<") > max_elements:
        raise OutputTooComplexError(f"This SVG image has more than {max_elements:,} elements, more than an output may "
                                    "show. Draw fewer shapes, or show it as a PNG image.",
                                    {"bound": "svg_elements", "max": max_elements})
    markup_work.check(svg)
    svg = svg.replace("xlink:href=", "href=")  # SVG 2 spelling, without a namespace to declare
    cleaned = nh3.clean(svg, tags=SVG_TAGS, attributes={"*": SVG_ATTRIBUTES}, url_schemes=set(),
                        clean_content_tags={"script", "style", "foreignObject", "metadata"},
                        filter_style_properties=SVG_STYLE_PROPERTIES, link_rel=None,
                        attribute_filter=lambda tag, attr, value: None if OUTSIDE_REFERENCE.search(value) else value)
    return cleaned.strip() if "<svg" in cleaned else None


def sanitize_bundle(data: dict[str, Any], budget: PixelBudget | None = None) -> dict[str, Any]:
    """The parts of a MIME bundle a page may show; Bokeh items are checked (``Unsafe``), their figures charged
    to ``budget``."""
    kept = {mime: value for mime, value in data.items() if mime in KEPT_TYPES
            and (mime not in IMAGE_TYPES or images.readable(mime, value))}
    if BOKEH_ITEM in kept:
        check_bokeh(kept[BOKEH_ITEM], budget=budget)
    svg = data.get(SVG)
    if isinstance(svg, str) and (cleaned := clean_svg(svg)) is not None:
        kept[SVG] = cleaned
    html = data.get(HTML)
    if isinstance(html, str) and (table := html_tables.clean(html)) is not None:
        kept[HTML] = table
    if WIDGET_VIEW in data:
        kept.update({WIDGET_VIEW: {}, "text/plain": WIDGET_NOTE})
    if not kept:
        dropped = ", ".join(sorted(data)) or "nothing"
        kept["text/plain"] = f"[output not shown: {dropped} (cards show text, images, charts and tables; HTML only as a table)]"
    return kept


def sanitize_output(output: dict[str, Any], budget: PixelBudget | None = None) -> dict[str, Any]:
    """``output`` as it may reach a page: bundles cut down, unsafe Bokeh content an error, and so is
    content too costly to clean (``budget``: its run's figure pixels)."""
    try:
        if output["output_type"] == "bokeh_patch":
            check_patch(output.get("patch"), budget)
        elif isinstance(output.get("data"), dict):
            return {**output, "data": sanitize_bundle(output["data"], budget)}
    except Unsafe as reason:
        return unsafe_output(reason)
    except OutputTooComplexError as exc:
        return {"output_type": "error", "ename": exc.code, "evalue": exc.message, "traceback": []}
    return output


def needs_thread(output: dict[str, Any]) -> bool:
    """Whether cleaning ``output`` may take long enough to run off the event loop (HTML, SVG, Bokeh)."""
    data = output.get("data")
    return output["output_type"] == "bokeh_patch" or (isinstance(data, dict) and not data.keys().isdisjoint((HTML, SVG, BOKEH_ITEM)))
