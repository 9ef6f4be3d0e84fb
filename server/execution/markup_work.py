"""The parser's work on an HTML table or SVG output, bounded by a linear scan before nh3 parses it.

html5ever's work is not linear in the tags: every formatting element (``FORMATTING``) left open is rebuilt
for each later block of text ("reconstruct the active formatting elements": N open ones and M
``<div>x</div>`` make N*M elements), and each tag costs a walk of the open elements (39,000 nested
``<div>`` cost 17 s). ``check`` refuses markup that leaves more than ``HTML_FORMATTING`` formatting
elements open or nests deeper than ``HTML_DEPTH`` (``OutputTooComplexError``). The tokenizer looks for a
duplicate among a tag's attributes so far at each attribute: ``check`` refuses a tag (start or end, closed or
not) with more than ``HTML_ATTRIBUTES``.

The scan tokenizes as HTML does (comments, ``<!...>`` and ``<?...>``, quoted attribute values, the raw
text of ``<style>``, ``<textarea>``, ``<title>``...) and keeps a stack of open elements that errs on the
side of more: an element closes only on its own end tag within scope (``SCOPE``), a formatting element
only when it is the innermost open one (the parser ignores ``</b>`` past a ``<table>`` or in a
``<select>``); one closed by another's end tag stays counted (the parser keeps it to rebuild), so does one
never closed, until the table cell it is in closes (the parser forgets them then). Where the parser's state cannot be followed this way (``<svg>``, ``<math>``, ``<select>``,
``<template>``, ``<script>``, ``<noscript>``, ``<plaintext>``, CDATA: each changes how later tags are
read or which are ignored), every formatting start tag counts, closed or not. Inside ``<svg>`` and
``<math>``, ``<x/>`` closes itself. pandas' tables (``to_html``, ``DataFrame.style`` inlined) and
matplotlib's and Bokeh's SVGs close what they open, a few levels deep.
"""

from __future__ import annotations

import re
from functools import cache

from ..errors import OutputTooComplexError
from ..limits import HTML_ATTRIBUTES, HTML_DEPTH, HTML_FORMATTING

FORMATTING = frozenset({"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"})
VOID = frozenset({"area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "image", "img", "input",
                  "keygen", "link", "meta", "param", "source", "track", "wbr"})
RAW_TEXT = frozenset({"style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"})
SCOPE = frozenset({"applet", "caption", "html", "table", "td", "th", "marquee", "object", "template", "select",
                   "button", "ol", "ul", "foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext",
                   "annotation-xml"})
"""Where the parser stops looking for the element an end tag closes (all its scopes at once: more stays open)."""
INTEGRATION = frozenset({"foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext", "annotation-xml"})
"""SVG and MathML elements whose children are HTML."""
BREAKOUT = frozenset({"b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em", "embed",
                      "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li", "listing", "menu", "meta",
                      "nobr", "ol", "p", "pre", "ruby", "s", "small", "span", "strong", "strike", "sub", "sup",
                      "table", "tt", "u", "ul", "var", "font"})
"""HTML start tags that end SVG or MathML content."""
UNFOLLOWED = re.compile(r"<(?:svg|math|select|template|script|noscript|plaintext)[\t\n\f\r />]|<!\[CDATA\[", re.I)
FORMATTING_START = re.compile(rf"<(?:{'|'.join(FORMATTING)})[\t\n\f\r />]", re.I)

TAG_NAME = re.compile(r"[^\t\n\f\r />]*")
BETWEEN_ATTRIBUTES = re.compile(r"[\t\n\f\r /]*")
ATTRIBUTE_NAME = re.compile(r"[^\t\n\f\r />][^\t\n\f\r />=]*[\t\n\f\r ]*")
ATTRIBUTE_VALUE = re.compile(r"=[\t\n\f\r ]*(?:\"[^\"]*(?:\"|\Z)|'[^']*(?:'|\Z)|[^\t\n\f\r >]*)")
COMMENT_END = re.compile(r"--!?>")


@cache
def _raw_text_end(name: str) -> re.Pattern[str]:
    return re.compile(rf"</{name}(?=[\t\n\f\r />])", re.I)


def _tag(markup: str, start: int) -> tuple[str, bool, int]:
    """The lower-case name of the tag whose name starts at ``start``, whether it ends in ``/>``, and where
    it ends (``len(markup)`` if it never does: the parser drops it, after reading its attributes);
    ``OutputTooComplexError`` past ``HTML_ATTRIBUTES`` attributes."""
    name = TAG_NAME.match(markup, start).group()  # type: ignore[union-attr]
    at = start + len(name)
    attributes = 0
    while True:
        gap = BETWEEN_ATTRIBUTES.match(markup, at).group()  # type: ignore[union-attr]
        at += len(gap)
        if at >= len(markup):
            return "", False, len(markup)
        if markup[at] == ">":
            return (name.lower() if name.isascii() else name), gap.endswith("/"), at + 1
        attributes += 1
        if attributes > HTML_ATTRIBUTES:
            raise OutputTooComplexError(f"This output has a tag with more than {HTML_ATTRIBUTES:,} attributes, more "
                                        "than an output may show.", {"bound": "html_attributes", "max": HTML_ATTRIBUTES})
        at = ATTRIBUTE_NAME.match(markup, at).end()  # type: ignore[union-attr]
        if (value := ATTRIBUTE_VALUE.match(markup, at)) is not None:
            at = value.end()


def _letter(char: str) -> bool:
    return char.isascii() and char.isalpha()


class _OpenElements:
    """The elements a scan holds open (name, in SVG or MathML) and the formatting ones it counts."""

    def __init__(self, followed: bool):
        self.stack: list[tuple[str, bool]] = []
        self.followed = followed
        self.formatting = 0
        self.cells: list[tuple[int, int]] = []  # table cells open: their place in the stack, formatting before them

    def foreign(self) -> bool:
        return bool(self.stack) and self.stack[-1][1] and self.stack[-1][0] not in INTEGRATION

    def start(self, name: str, self_closing: bool) -> bool:
        """Open ``name``; whether its content is raw text."""
        if self.foreign() and name in BREAKOUT:
            while self.foreign():
                self._pop_to(len(self.stack) - 1)
        foreign = self.foreign() or name in ("svg", "math")
        if not foreign and name in ("td", "th", "tr"):  # close the open cell (and row), as the parser does
            if self.cells and not any(entry[0] in SCOPE for entry in self.stack[self.cells[-1][0] + 1:]):
                self._pop_to(self.cells[-1][0])
            while self.stack and self.stack[-1][0] in (("td", "th", "tr") if name == "tr" else ("td", "th")):
                self._pop_to(len(self.stack) - 1)
        if foreign and self_closing or not foreign and name in VOID:
            return False
        if not foreign and name in ("td", "th") and self._in_table():
            self.cells.append((len(self.stack), self.formatting))
        self.stack.append((name, foreign))
        if not foreign and name in FORMATTING and self.followed:
            self.formatting += 1
        if len(self.stack) > HTML_DEPTH:
            raise OutputTooComplexError(f"This output nests elements more than {HTML_DEPTH:,} deep, more than an "
                                        "output may show. Close the elements it opens.",
                                        {"bound": "html_depth", "max": HTML_DEPTH})
        if self.formatting > HTML_FORMATTING:
            raise _too_many_formatting()
        return not foreign and name in RAW_TEXT

    def _in_table(self) -> bool:
        """Whether a cell opened now is one to the parser (in a row, or a table's body or the table itself)."""
        at = len(self.stack) - 1
        while at >= 0 and self.stack[at][0] in ("tr", "tbody", "thead", "tfoot"):
            at -= 1
        return at >= 0 and self.stack[at] == ("table", False)

    def _pop_to(self, at: int) -> None:
        """Close the elements from ``at`` up; a table cell closed takes its formatting elements with it (the
        parser clears them up to the cell's marker)."""
        del self.stack[at:]
        while self.cells and self.cells[-1][0] >= at:
            self.formatting = min(self.formatting, self.cells.pop()[1])

    def end(self, name: str) -> None:
        stack = self.stack
        at = len(stack) - 1
        while at >= 0 and stack[at][1]:  # in SVG or MathML: the nearest element of that name
            if stack[at][0] == name:
                self._pop_to(at)
                return
            at -= 1
        if name in FORMATTING:  # closed only if innermost: the parser may keep it, to rebuild
            if stack and stack[-1] == (name, False):
                stack.pop()
                self.formatting -= self.followed
            return
        at = len(stack) - 1
        while at >= 0 and stack[at][0] != name and stack[at][0] not in SCOPE:
            at -= 1
        if at >= 0 and stack[at] == (name, False):
            self._pop_to(at)


def _too_many_formatting() -> OutputTooComplexError:
    return OutputTooComplexError(f"This output leaves more than {HTML_FORMATTING:,} formatting elements (<b>, <a>, "
                                 "<font>...) open, more than an output may show. Close the elements it opens.",
                                 {"bound": "html_formatting", "max": HTML_FORMATTING})


def check(markup: str) -> None:
    """``OutputTooComplexError`` if parsing ``markup`` would leave more than ``HTML_FORMATTING`` formatting
    elements open or nest elements more than ``HTML_DEPTH`` deep."""
    followed = UNFOLLOWED.search(markup) is None
    if not followed and sum(1 for _ in FORMATTING_START.finditer(markup)) > HTML_FORMATTING:
        raise _too_many_formatting()
    elements = _OpenElements(followed)
    at = 0
    while (at := markup.find("<", at)) >= 0:
        after = markup[at + 1:at + 2]
        if markup.startswith("<!--", at):
            end = COMMENT_END.search(markup, at + 2)
            at = end.end() if end else len(markup)
        elif after in ("!", "?") or after == "/" and not _letter(markup[at + 2:at + 3]):
            end_of_bogus = markup.find(">", at + 2)
            at = end_of_bogus + 1 if end_of_bogus >= 0 else len(markup)
        elif after == "/":
            name, _, at = _tag(markup, at + 2)
            if name:
                elements.end(name)
        elif _letter(after):
            name, self_closing, at = _tag(markup, at + 1)
            if name and elements.start(name, self_closing):
                end = _raw_text_end(name).search(markup, at)
                at = end.start() if end else len(markup)
        else:
            at += 1
