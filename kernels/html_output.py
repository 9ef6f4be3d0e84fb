"""Styled tables for cards: ``DataFrame.style`` and ``IPython.display.HTML`` publish their ``text/html``
with the CSS of its ``<style>`` elements written into the ``style`` attribute of each element it selects.

Cards and dashboards take no style sheet from a kernel: the server keeps a table's markup and its inline
styles, declaration by declaration against an allowlist (``server/execution/html_tables.py``). pandas'
Styler scopes its CSS by id and class (``.bar()``, ``.background_gradient()``, ``.set_table_styles()``),
so a styled table keeps its look only once the rules are inline. css-inline applies them here, where
matching selectors costs the kernel's own time and memory, never the server's; it loads no stylesheet
(``<link>`` and ``@import`` are dropped) and drops ``@media`` and other at-rules. Jupyter kernels publish
the HTML as it is (``notebook_output`` unregisters this).
"""

from __future__ import annotations

from typing import Any

STYLED = ("pandas.io.formats.style.Styler", "IPython.core.display.HTML")
"""The types whose HTML is inlined, by name: pandas imports the Styler (and Jinja2) only when it is used."""


def inline(obj: Any) -> str | None:
    """``obj``'s HTML with its ``<style>`` rules inline (as it was if css-inline cannot read it)."""
    html = obj._repr_html_()
    if not isinstance(html, str) or "<style" not in html.lower():
        return html
    import css_inline  # only where a styled table is shown

    inliner = css_inline.CSSInliner(keep_style_tags=False, keep_link_tags=False, keep_at_rules=False,
                                    load_remote_stylesheets=False)
    try:
        return inliner.inline_fragment(html, "")
    except ValueError:
        return html


def install(shell: Any) -> None:
    """Styled tables shown on ``shell`` publish their HTML with inline styles."""
    formatter = shell.display_formatter.formatters["text/html"]
    for name in STYLED:
        module, _, type_name = name.rpartition(".")
        formatter.for_type_by_name(module, type_name, inline)
