"""Markdown outputs cannot freeze a reader's tab: text too full of markup to parse quickly shows as text, and
outputs are parsed one per task (red team 4, F5: 24 outputs of ``"![" * 99999``, each under the 200,000
characters the page parses, froze a dashboard viewer's tab for 46 s).

Red team 5: a Markdown image may be a data: URL, and a 140 KB PNG in one (within the characters the page
parses) declared 12,000 x 12,000 pixels, which the tab decoded whole (580 MB a reader). Images whose header
declares more than ``IMAGE_PIXELS``, or that are not the PNG or JPEG they say, show their alt text."""

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


IMAGES = """from IPython.display import Markdown, display
import base64, struct, zlib
def png(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(bytes(width + 1)) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return base64.b64encode(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")).decode()
display(Markdown(f"![bomb](data:image/png;base64,{png(12_000, 12_000)})"))
display(Markdown(f"![gif](data:image/gif;base64,{base64.b64encode(b'GIF89a' + bytes(20)).decode()})"))
display(Markdown(f"![small](data:image/png;base64,{png(40, 30)})"))
"""


def test_markdown_images_past_the_pixels_a_page_may_decode_show_their_alt_text(page: Page, bi):
    sign_in(page, bi, "/cards/new")
    type_code(page, IMAGES)
    page.keyboard.press("Control+Enter")
    shown = page.locator(".output-markdown")
    expect(shown).to_have_count(3, timeout=60_000)
    expect(shown.nth(2).locator("img")).to_have_count(1, timeout=10_000)
    expect(shown.nth(0)).to_contain_text("bomb")
    expect(shown.nth(1)).to_contain_text("gif")
    assert page.locator(".output-markdown img").count() == 1, "only the small PNG is an image"
