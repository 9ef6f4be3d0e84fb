"""Dashboards in a browser: a card with a chart put on a dashboard, shared with a viewer who watches
it update live in a second browser, and a stranger who cannot open it."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from .conftest import api, screenshot, sign_in, token_of
from .test_card_editor import type_code

CHART = """from bokeh.plotting import figure
print("{label}")
p = figure(x_range=["東京", "大阪", "名古屋"], title="店舗別売上", height=260, sizing_mode="stretch_width")
p.vbar(x=["東京", "大阪", "名古屋"], top=[1200, 800, 2500], width=0.8)
p
"""
PASSWORD = "a long enough password"


def sign_in_as(page: Page, bi, email: str, next_path: str) -> None:
    page.goto(f"{bi.url}/signin?next={next_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def test_a_shared_dashboard_updates_live(page: Page, bi, browser: Browser):
    token = token_of(bi)
    for name in ("viewer", "stranger"):
        status, body = api(bi, "POST", "/api/users", {"email": f"{name}@example.com", "name": name.title(),
                                                       "password": PASSWORD, "role": "member"}, token=token)
        assert status == 201, body

    sign_in(page, bi, "/cards/new")
    page.get_by_placeholder("Untitled card").fill("店舗別の売上")
    type_code(page, CHART.format(label="初回の集計"))
    page.keyboard.press("Control+Enter")
    expect(page.locator(".outputs .output-bokeh canvas").first).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as version 1.")).to_be_visible()
    card_id = page.url.rsplit("/", 1)[1]

    page.get_by_role("link", name="Dashboards", exact=True).click()
    expect(page.get_by_text("No dashboards yet")).to_be_visible()
    screenshot(page, "dashboards-empty")
    page.get_by_label("New dashboard title").fill("売上ダッシュボード")
    page.get_by_role("button", name="+ New dashboard").click()
    expect(page.get_by_role("heading", name="売上ダッシュボード")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/dashboards/[0-9a-f]{32}$"))
    dashboard_url = page.url
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Card to add").select_option(label="店舗別の売上")
    screenshot(page, "dashboard-editing")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as version 2.")).to_be_visible()
    tile = page.get_by_role("region", name="店舗別の売上")
    expect(tile.locator(".output-bokeh canvas").first).to_be_visible(timeout=30_000)
    expect(tile).to_contain_text("初回の集計")

    page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share")
    dialog.get_by_label("Email").fill("nobody@example.com")
    dialog.get_by_role("button", name="Share").click()
    expect(dialog.get_by_role("alert")).to_contain_text("nobody@example.com")
    dialog.get_by_label("Email").fill("viewer@example.com")
    dialog.get_by_label("Permission").select_option("view")
    dialog.get_by_role("button", name="Share").click()
    expect(dialog.locator(".share-list")).to_contain_text("viewer@example.com")
    screenshot(page, "dashboard-share")
    dialog.get_by_role("button", name="Done").click()
    screenshot(page, "dashboard-owner", also_wide=True)

    viewer_context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP")
    viewer = viewer_context.new_page()
    sign_in_as(viewer, bi, "viewer@example.com", "/dashboards")
    expect(viewer.get_by_role("link", name="売上ダッシュボード")).to_be_visible()
    viewer.goto(dashboard_url)
    watched = viewer.get_by_role("region", name="店舗別の売上")
    expect(watched.locator(".output-bokeh canvas").first).to_be_visible(timeout=30_000)
    expect(viewer.get_by_text("View only")).to_be_visible()
    expect(viewer.get_by_role("button", name="Edit")).to_have_count(0)
    expect(page.locator(".presence .avatar")).to_have_count(2)

    card = api(bi, "GET", f"/api/cards/{card_id}", token=token)[1]
    status, _ = api(bi, "PUT", f"/api/cards/{card_id}", {
        "title": card["title"], "code": CHART.format(label="更新された集計"), "datasets": [], "parameters": []},
        token=token, headers={"If-Match": f'"{card["version"]}"'})
    assert status == 200
    expect(watched).to_contain_text("更新された集計", timeout=30_000)
    expect(watched.locator(".output-bokeh canvas").first).to_be_visible()
    assert viewer.url == dashboard_url, "the new output arrived without a reload"
    screenshot(viewer, "dashboard-viewer")
    viewer_context.close()

    stranger_context = browser.new_context(viewport={"width": 1280, "height": 800})
    stranger = stranger_context.new_page()
    sign_in_as(stranger, bi, "stranger@example.com", "/dashboards")
    stranger.goto(dashboard_url)
    expect(stranger.get_by_role("alert")).to_contain_text("Not found")
    expect(stranger.locator(".tile")).to_have_count(0)
    screenshot(stranger, "dashboard-stranger")
    stranger_context.close()

    page.get_by_role("link", name="Dashboards", exact=True).click()
    expect(page.get_by_role("link", name="売上ダッシュボード")).to_be_visible()
    screenshot(page, "dashboards-list")
