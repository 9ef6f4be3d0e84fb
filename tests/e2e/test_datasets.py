"""Datasets in a browser: a Shift_JIS upload with its Japanese preview, and files that cannot be stored."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .conftest import UPLOAD_LIMIT, screenshot, sign_in

STORES = ["東京", "大阪", "名古屋", "福岡", "札幌"]


def cp932_csv(rows: int) -> bytes:
    lines = ["店舗,商品,売上"] + [f"{STORES[i % 5]},りんご{i},{100 + i}" for i in range(rows)]
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def choose_file(page: Page, name: str, content: bytes) -> None:
    page.locator(".dropzone input[type=file]").first.set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": content})


def test_cp932_upload_shows_japanese_preview(page: Page, bi):
    """A CP932 file uploads and its preview reads in Japanese, a page at a time; a new card can
    start from it; it can be deleted."""
    sign_in(page, bi, "/datasets")
    expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()

    choose_file(page, "売上データ.csv", cp932_csv(120))
    expect(page.get_by_role("heading", name="売上データ")).to_be_visible()
    expect(page.get_by_text("Read as Shift_JIS (CP932), comma-separated", exact=False)).to_be_visible()
    table = page.locator("table.data")
    expect(table.locator("thead")).to_contain_text("店舗")
    expect(table.locator("tbody tr").first).to_contain_text("東京")
    expect(table.locator("tbody tr").first).to_contain_text("りんご0")
    expect(page.get_by_text("Rows 1–50 of 120")).to_be_visible()
    screenshot(page, "dataset-preview", also_wide=True)

    page.get_by_role("button", name="Next page").click()
    expect(page.get_by_text("Rows 51–100 of 120")).to_be_visible()
    expect(table.locator("tbody tr").first).to_contain_text("りんご50")

    page.get_by_role("link", name="New card from this dataset").click()
    expect(page.locator("details.picker > summary")).to_have_text("Datasets: 売上データ")

    page.get_by_role("link", name="Datasets", exact=True).click()
    expect(page.get_by_role("link", name="売上データ")).to_be_visible()
    screenshot(page, "datasets-list")

    page.get_by_role("link", name="売上データ").click()
    page.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog", name="Delete the dataset “売上データ”")
    expect(confirm).to_contain_text("No card reads this dataset.")
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="売上データ")).to_have_count(0)


def test_unreadable_and_too_large_files(page: Page, bi):
    """A ragged file is refused naming its line; the chosen encoding is used (wrong: refused naming
    the line, right: read); a file past the limit is refused as too large."""
    sign_in(page, bi, "/datasets")
    choose_file(page, "ragged.csv", b"a,b,c\n1,2,3\n4,5\n")
    expect(page.get_by_text("a problem on line 3")).to_be_visible()
    expect(page.locator("details.read-options")).to_have_attribute("open", "")
    screenshot(page, "datasets-422")

    page.get_by_label("Encoding").select_option("utf-8")
    choose_file(page, "shift_jis.csv", cp932_csv(3))
    expect(page.get_by_text("The file could not be read: a problem on line 1.")).to_be_visible()
    page.get_by_label("Encoding").select_option("cp932")
    page.get_by_label("Delimiter").select_option(",")
    choose_file(page, "shift_jis.csv", cp932_csv(3))
    expect(page.get_by_role("heading", name="shift_jis")).to_be_visible()
    expect(page.locator("table.data tbody tr").first).to_contain_text("東京")
    page.get_by_role("link", name="Datasets", exact=True).click()

    choose_file(page, "big.csv", b"a,b\n" + b"1,2\n" * (UPLOAD_LIMIT // 4 + 1000))
    expect(page.get_by_text("This file is too large to upload.")).to_be_visible()
    expect(page.get_by_text("The largest file this server takes is 1.0 MB.")).to_be_visible()
    screenshot(page, "datasets-413")


def test_upload_progress_bar_moves(page: Page, bi):
    """On a slow link the bar shows the bytes sent as they go, before the dataset opens."""
    sign_in(page, bi, "/datasets")
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 300_000})
    choose_file(page, "ゆっくり.csv", cp932_csv(40_000))
    expect(page.locator(".progress-label")).to_contain_text("%")
    expect(page.locator(".upload-progress progress")).to_have_attribute("value", re.compile(r"^[1-9]"))
    screenshot(page, "datasets-uploading")
    expect(page.get_by_role("heading", name="ゆっくり")).to_be_visible(timeout=20_000)
