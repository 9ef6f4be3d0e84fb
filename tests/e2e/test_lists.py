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


def test_tags_and_shared_with_me_filter_the_lists(browser: Browser, bi):
    """A card's tag filters the cards list when clicked (its chip clears it); dashboards can be only those
    shared with me."""
    admin = token_of(bi)
    add_user(bi, admin, "tagger@example.com", "Tagger")
    token = api(bi, "POST", "/api/auth/login", {"email": "tagger@example.com", "password": PASSWORD})[1]["access_token"]
    for title, tags in (("月次の売上", ["月次"]), ("在庫", [])):
        assert api(bi, "POST", "/api/cards", {"title": title, "code": "1", "tags": tags}, token=token)[0] == 201
    document = {"schemaVersion": 1, "cards": [], "layout": []}
    assert api(bi, "POST", "/api/dashboards", {**document, "title": "自分の"}, token=token)[0] == 201
    status, shared = api(bi, "POST", "/api/dashboards", {**document, "title": "共有された週報"}, token=admin)
    assert status == 201, shared
    assert api(bi, "PUT", f"/api/dashboards/{shared['id']}/shares",
               {"email": "tagger@example.com", "permission": "view"}, token=admin)[0] == 200
    errors: list[str] = []
    page = sign_in_as(browser, bi, "tagger@example.com", "/cards", errors)
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(2)
    page.locator("table.list .tags .tag", has_text="月次").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("月次の売上")
    screenshot(page, "cards-list-tag")
    page.get_by_role("button", name="Tag: 月次 ✕").click()
    expect(rows).to_have_count(2)
    page.goto(f"{bi.url}/dashboards")
    expect(rows).to_have_count(2)
    page.get_by_label("Dashboards to show").select_option(label="Shared with me")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("共有された週報")
    assert not errors
