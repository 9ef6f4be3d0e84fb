"""HTML tables from kernels (``DataFrame.style``, ``df.to_html()``, a table in ``IPython.display.HTML``) made
safe for a page: table markup with inline styles, each declaration checked against an allowlist.

Card kernels write the CSS of a table's ``<style>`` elements into the ``style`` attributes of the
elements it selects before they publish it (``kernels/html_output.py``: pandas' Styler scopes its CSS
by id and class), so matching selectors costs the kernel, never the server. Card code controls the
HTML, so here nothing is trusted: nh3 (Ammonia) cuts it down to ``TAGS`` (the table and its parts, a
caption, text formatting, links to absolute http(s) and mailto URLs only (no relative or protocol-relative
ones, which ammonia passes whatever its schemes: no link to this site's own API, none to a host the page's
scheme chooses), opened in a new tab with
``rel="noopener noreferrer"``), without ids and classes (the page's own CSS and ids are never reached)
and without scripts, ``<style>`` and ``<link>`` elements, event handlers, forms, images, frames or SVG;
each ``style`` attribute is filtered declaration by declaration (parsed with tinycss2, which resolves CSS
escapes and comments, and written back from the parsed tokens).

A declaration stays when its property is in ``PROPERTIES`` (colours, backgrounds, font weight and
style, text alignment and decoration, borders, padding, cell sizes) and its value holds only keywords,
numbers, lengths, percentages, hex colours, commas and slashes, and the functions of ``FUNCTIONS``
(colour functions and the gradients ``Styler.bar`` draws), whose arguments are checked the same way, nested
at most ``STYLE_FUNCTION_DEPTH`` deep (deeper, the checks and tinycss2's serializer would recurse past Python's
limit inside nh3's callback, which prints each such error, value and all, to the server's stderr).
Anything else drops the declaration: ``url()``, ``expression()``, ``var()``, ``attr()``, ``image-set()``,
strings, ``position``, ``z-index``, ``transform``, ``display``, ``float``, ``margin``...

Work is bounded: HTML of more than ``HTML_ELEMENTS`` tags (``<`` counted, before parsing) or more than
``STYLE_CHARS`` characters of distinct ``style`` attributes (counted as they are parsed) is
``OutputTooComplexError``, and so is HTML the parser would work on far past its size (formatting elements
left open, deep nesting: ``markup_work``). HTML that holds no table once cleaned is not shown (``clean`` answers None).
"""

from __future__ import annotations

import re

import nh3
import tinycss2
from tinycss2 import ast

from ..errors import OutputTooComplexError
from ..limits import HTML_ELEMENTS, STYLE_CHARS, STYLE_FUNCTION_DEPTH
from . import markup_work

TABLE_TAGS = {"table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "th", "td"}
TAGS = TABLE_TAGS | {"div", "span", "p", "br", "b", "strong", "i", "em", "u", "s", "small", "sub", "sup", "code",
                     "pre", "a", "abbr"}
CELL_ATTRIBUTES = {"colspan", "rowspan", "scope", "headers"}
ATTRIBUTES = {"*": {"style", "title"}, "th": CELL_ATTRIBUTES, "td": CELL_ATTRIBUTES, "col": {"span"},
              "colgroup": {"span"}, "a": {"href"}}
URL_SCHEMES = {"http", "https", "mailto"}
ABSOLUTE_URL = re.compile(r"[\x00-\x20]*(?:https?|mailto):", re.IGNORECASE)
URL_IGNORED = re.compile(r"[\t\n\r]")
"""What browsers take out of a URL anywhere before reading it."""

PROPERTIES = frozenset({
    "color", "background", "background-color", "background-image", "background-size", "background-repeat",
    "background-position", "opacity",
    "font-weight", "font-style", "font-size", "font-variant-numeric",
    "text-align", "vertical-align", "text-decoration", "text-transform", "white-space", "word-break",
    "border", "border-collapse", "border-spacing", "border-color", "border-style", "border-width",
    *(f"border-{side}{part}" for side in ("top", "right", "bottom", "left")
      for part in ("", "-color", "-style", "-width")),
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "width", "min-width", "max-width", "height",
})
FUNCTIONS = frozenset({"rgb", "rgba", "hsl", "hsla", "linear-gradient", "repeating-linear-gradient"})
VALUE_TOKENS = (ast.WhitespaceToken, ast.IdentToken, ast.NumberToken, ast.PercentageToken, ast.DimensionToken,
                ast.HashToken, ast.Comment)
SEPARATORS = frozenset({",", "/"})

def _safe_value(tokens: list[ast.Node], depth: int = 0) -> bool:
    for token in tokens:
        if isinstance(token, ast.FunctionBlock):
            if (depth == STYLE_FUNCTION_DEPTH or token.lower_name not in FUNCTIONS
                    or not _safe_value(token.arguments, depth + 1)):
                return False
        elif isinstance(token, ast.LiteralToken):
            if token.value not in SEPARATORS:
                return False
        elif not isinstance(token, VALUE_TOKENS):
            return False
    return True


def _declarations(tokens: list[ast.Node]) -> str:
    kept = []
    for declaration in tinycss2.parse_blocks_contents(tokens, skip_comments=True, skip_whitespace=True):
        if (isinstance(declaration, ast.Declaration) and declaration.lower_name in PROPERTIES
                and _safe_value(declaration.value)):
            value = tinycss2.serialize(declaration.value).strip()
            if value:
                kept.append(f"{declaration.lower_name}: {value}")
    return "; ".join(kept)


def clean_style(style: str) -> str:
    """The allowed declarations of a ``style`` attribute (empty if none)."""
    return _declarations(tinycss2.parse_component_value_list(style))


class _AttributeFilter:
    """nh3's attribute filter: links only to absolute URLs; ``style`` values cleaned, each distinct one parsed
    once, within ``max_chars``."""

    def __init__(self, max_chars: int):
        self.left = max_chars
        self.cleaned: dict[str, str] = {}

    def __call__(self, tag: str, attribute: str, value: str) -> str | None:
        if attribute == "href":
            return value if ABSOLUTE_URL.match(URL_IGNORED.sub("", value)) else None
        if attribute != "style":
            return value
        if (cleaned := self.cleaned.get(value)) is None:
            self.left -= len(value)
            cleaned = self.cleaned[value] = clean_style(value) if self.left >= 0 else ""
        return cleaned or None


def clean(html: str, max_elements: int = HTML_ELEMENTS, max_style_chars: int = STYLE_CHARS) -> str | None:
    """The table in ``html`` with its allowed inline styles, or None if it holds no table;
    ``OutputTooComplexError`` past ``max_elements`` tags or ``max_style_chars`` of distinct styles."""
    if html.count("<") > max_elements:
        raise OutputTooComplexError(f"This HTML table has more than {max_elements:,} elements, more than an output "
                                    "may show. Show fewer rows (df.head(), or style a slice), or the DataFrame "
                                    "itself: it pages.", {"bound": "html_elements", "max": max_elements})
    if "<table" not in html.lower():
        return None
    markup_work.check(html)
    styles = _AttributeFilter(max_style_chars)
    cleaned = nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=URL_SCHEMES, link_rel="noopener noreferrer",
                        attribute_filter=styles, set_tag_attribute_values={"a": {"target": "_blank"}})
    if styles.left < 0:
        raise OutputTooComplexError(f"This HTML table has more than {max_style_chars:,} characters of distinct "
                                    "styles, more than an output may show. Style fewer cells.",
                                    {"bound": "style_chars", "max": max_style_chars})
    return cleaned.strip() if "<table" in cleaned else None
