"""List pages in a browser: a page at a time with "Show more", search (two-character Japanese) and sort."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from server.limits import PAGE_SIZE

from .conftest import api, screenshot, token_of
from .test_dashboards import PASSWORD, add_user, sign_in_as

EMAIL = "lister@example.com"


def test_card_list_pages_searches_and_sorts(browser: Browser, bi):
    add_user(bi, token_of(bi), EMAIL, "Lister")
    status, body = api(bi, "POST", "/api/auth/login", {"email": EMAIL, "password": PASSWORD})
    assert status == 200, body
    token = body["access_token"]
    for i in range(PAGE_SIZE):
        assert api(bi, "POST", "/api/cards", {"title": f"カード {i:02d}", "code": "1"}, token=token)[0] == 201
    assert api(bi, "POST", "/api/cards", {"title": "今月の売上", "code": "1"}, token=token)[0] == 201
    errors: list[str] = []
    page = sign_in_as(browser, bi, EMAIL, "/cards", errors)
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    expect(rows.first).to_contain_text("今月の売上")  # the most recently changed first
    more = page.get_by_role("button", name="Show more")
    more.click()
    expect(rows).to_have_count(PAGE_SIZE + 1)
    expect(more).to_be_hidden()
    page.get_by_label("Sort").select_option("title")
    expect(rows.first).to_contain_text("カード 00")
    page.get_by_role("searchbox", name="Search").fill("売上")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("今月の売上")
    screenshot(page, "cards-list-search")
    page.get_by_role("searchbox", name="Search").fill("見つからない")
    expect(page.get_by_text("Nothing matches.")).to_be_visible()
    assert not errors
