"""Markup that makes the HTML parser work far past its size: the HTML-table and SVG cleaners (nh3 over
html5ever) refuse it before parsing.

The attacks (red team 4, F1): N distinct unclosed formatting elements (``<b title=i>``, ``<font face=i>``,
``<a href=...>``) that every later ``<div>x</div>`` rebuilds ("reconstruct the active formatting
elements": 4,004 tags took 16 s and 572 MB, 8,004 tags 81 s and 2.2 GB), and deep nesting (39,000
``<div>`` took 17 s). The spellings that hide an open element from a naive count: its end tag inside a
comment, an attribute value or raw text, or where the parser ignores it (past a ``<table>``, in a
``<select>``). Before the fix every payload here was parsed, each for about a second.

Red team 5: one tag with many distinct attributes (html5ever looks for a duplicate among the tag's attributes
so far at each one: 64,000 in one ``<td>`` took 9.3 s, an output's 5 MB about 20 minutes), and a ``style``
of deeply nested CSS functions (the style filter recursed past Python's limit inside nh3's callback; each
``RecursionError`` was printed with its value to the server's stderr: a 211 KB table cost 33 s and wrote
7.2 MB of traceback).
"""

from __future__ import annotations

import pytest

from server.errors import OutputTooComplexError
from server.execution import html_tables
from server.execution.sanitize import clean_svg, sanitize_output
from server.limits import HTML_ATTRIBUTES, HTML_DEPTH, HTML_FORMATTING


def reconstruct(opening: str, n: int = 1000, m: int = 500) -> str:
    return "<div>" + "".join(opening.format(i=i) for i in range(n)) + "</div>" + "<div>x</div>" * m


FORMATTING_BOMBS = {
    "b": reconstruct("<b title={i}>"),
    "font": reconstruct("<font face={i}>"),
    "a": reconstruct("<a href=https://x.example/{i}>"),
    "end tag in a comment": reconstruct("<b title={i}><!--</b>-->"),
    "end tag in an attribute": reconstruct("<b title={i}><i title='</b>'></i>"),
    "end tag in raw text": reconstruct("<b title={i}><style></b></style>"),
    "end tag in a textarea": reconstruct("<b title={i}><textarea></b></textarea>"),
    "end tag past a table": reconstruct("<b title={i}><table></b></table>"),
    "end tag in a select": reconstruct("<b title={i}><select></b></select>"),
    "upper case": reconstruct("<B TITLE={i}>"),
    "in a cell outside a table": reconstruct("<td><b title={i}></td>"),
    "in a cell past an object": reconstruct("<table><tr><td><object><b title={i}></td></tr></table>"),
}
DEEP = {
    "div": "<div>" * 5000,
    "cells": "<table><tr><td>" * 2000,
    "span": "<span title=a>" * 5000,
    "p in button": "<p><button></p>" * 2500,
    "self-closing": "<div/>" * 5000,
}


@pytest.mark.parametrize("kind", FORMATTING_BOMBS)
def test_rebuilt_formatting_elements_are_refused_unparsed(kind):
    with pytest.raises(OutputTooComplexError) as refused:
        html_tables.clean("<table></table>" + FORMATTING_BOMBS[kind])
    assert refused.value.details["bound"] == "html_formatting" and refused.value.details["max"] == HTML_FORMATTING


@pytest.mark.parametrize("kind", ["b", "font", "end tag in a comment"])
def test_the_svg_cleaner_refuses_them_too(kind):
    with pytest.raises(OutputTooComplexError) as refused:
        clean_svg("<svg></svg>" + FORMATTING_BOMBS[kind])
    assert refused.value.details["bound"] == "html_formatting"


@pytest.mark.parametrize("kind", DEEP)
def test_deep_nesting_is_refused_unparsed(kind):
    with pytest.raises(OutputTooComplexError) as refused:
        html_tables.clean("<table></table>" + DEEP[kind])
    assert refused.value.details == {"bound": "html_depth", "max": HTML_DEPTH}


@pytest.mark.parametrize("svg", ["<svg>" + "<g>" * 5000, "<svg></svg>" + "<path/>" * 5000,
                                 "<svg><g></svg>" + "<path/>" * 5000, "<div><svg><g></div>" + "<path/>" * 5000])
def test_deep_svg_is_refused_unparsed(svg):
    with pytest.raises(OutputTooComplexError) as refused:
        clean_svg(svg)
    assert refused.value.details["bound"] == "html_depth"


def test_formatting_left_open_in_cells_closes_with_them():
    """The parser forgets the formatting elements a table cell leaves open when the cell closes."""
    rows = "".join(f"<tr><td><b>{i}<td><i title={i}>x</td><th><a href=https://x.example/{i}>y</th></tr>" for i in range(500))
    cleaned = html_tables.clean(f"<table>{rows}</table><div>z</div>")
    assert cleaned and cleaned.count("<b>") == 500


def test_a_refused_output_becomes_an_error_output():
    for mime in ("text/html", "image/svg+xml"):
        output = sanitize_output({"output_type": "display_data", "metadata": {},
                                  "data": {mime: "<table></table><svg></svg>" + FORMATTING_BOMBS["b"], "text/plain": "x"}})
        assert output["ename"] == "output_too_complex", output


def many_attributes(tag: str, n: int = 5000) -> str:
    return f"<{tag} " + " ".join(f"a{i}=x" for i in range(n)) + ">"


MANY_ATTRIBUTES = {
    "cell": "<table><tr>" + many_attributes("td") + "x</td></tr></table>",
    "end tag": "<table><tr><td>x" + many_attributes("/td") + "</tr></table>",
    "in a select": "<table></table><select>" + many_attributes("option") + "</select>",
    "unquoted and quoted": "<table></table>" + many_attributes("span").replace("=x", "='x'", 2500),
}


@pytest.mark.parametrize("kind", MANY_ATTRIBUTES)
def test_a_tag_with_many_attributes_is_refused_unparsed(kind):
    with pytest.raises(OutputTooComplexError) as refused:
        html_tables.clean(MANY_ATTRIBUTES[kind])
    assert refused.value.details == {"bound": "html_attributes", "max": HTML_ATTRIBUTES}


@pytest.mark.parametrize("svg", ["<svg>" + many_attributes("path /"), "<svg><g>" + many_attributes("/g") + "</svg>"])
def test_an_svg_tag_with_many_attributes_is_refused_unparsed(svg):
    with pytest.raises(OutputTooComplexError) as refused:
        clean_svg(svg)
    assert refused.value.details["bound"] == "html_attributes"


def test_tags_at_the_bound_are_cleaned():
    cells = "".join("<td " + " ".join(f"a{i}=x" for i in range(HTML_ATTRIBUTES)) + ">x</td>" for _ in range(10))
    assert html_tables.clean(f"<table><tr>{cells}</tr></table>").count("<td>") == 10


NESTED_STYLES = {
    "colour functions": "rgb(" * 1000 + "1" + ")" * 1000,
    "with arguments": "rgb(a," * 700 + "1" + ")" * 700,
    "gradients": "linear-gradient(red," * 400 + "blue" + ")" * 400,
    "unclosed": "rgb(a," * 700 + "1",
}


@pytest.mark.parametrize("kind", NESTED_STYLES)
def test_deeply_nested_css_is_dropped_quietly(kind, capfd):
    """No exception escapes the style filter into nh3 (which prints it, value and all, to stderr)."""
    cells = "".join(f'<td style="font-weight: bold; color: {NESTED_STYLES[kind]} {i}">x</td>' for i in range(3))
    cleaned = html_tables.clean(f"<table><tr>{cells}</tr></table>")
    assert cleaned is not None and cleaned.count('<td style="font-weight: bold">') == 3
    assert capfd.readouterr().err == ""
