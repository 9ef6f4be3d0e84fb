"""Markdown outputs cannot freeze a reader's tab: text too full of markup to parse quickly shows as text, and
outputs are parsed one per task (red team 4, F5: 24 outputs of ``"![" * 99999``, each under the 200,000
characters the page parses, froze a dashboard viewer's tab for 46 s)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import sign_in
from .test_card_editor import type_code

BRACKETS = """from IPython.display import Markdown, display
for _ in range(24):
    display(Markdown("![" * 99999))
display(Markdown("**still rendered**"))
"""


def test_markup_heavy_markdown_shows_as_text_and_the_page_answers(page: Page, bi):
    sign_in(page, bi, "/cards/new")
    type_code(page, BRACKETS)
    page.keyboard.press("Control+Enter")
    shown = page.locator(".output-markdown")
    expect(shown).to_have_count(25, timeout=60_000)
    expect(shown.locator("strong")).to_have_text("still rendered", timeout=5_000)
    assert page.evaluate("1 + 1") == 2
    expect(shown.locator("pre.output-text")).to_have_count(24)
