"""Viewers and small screens, in a Japanese browser: a viewer opens a card read-only (no Save, no editing
session) and runs it with their own values; tiles keep their reading order in one column on a narrow
screen; the sidebar collapses and stays so; a dashboard has a full-screen (TV) mode. And a saved card's
editor session is listed under the card's title."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from .conftest import api, screenshot, token_of
from .test_sessions import signed_in

EMAIL = "kimura@example.com"
OWNER = "ito@example.com"  # not the admin: the other modules on this server expect the admin's lists empty
PASSWORD = "a long enough password"
REGION = [{"name": "region", "type": "choice", "label": "地域", "default": "関東", "choices": ["関東", "関西", "九州"]}]


def card(key: str, title: str, **fields) -> dict:
    return {"key": key, "title": title, "code": f"print('{title}')", **fields}


def make_dashboard(bi, token: str, title: str, cards: list[dict], layout: list[dict], **fields) -> dict:
    status, body = api(bi, "POST", "/api/dashboards", {"schemaVersion": 1, "title": title, "cards": cards,
                                                       "layout": layout, **fields}, token=token)
    assert status == 201, body
    return body


def member(bi, email: str, name: str) -> str:
    """A token of the member ``email``, added on first use."""
    status, body = api(bi, "POST", "/api/users", {"email": email, "name": name, "password": PASSWORD}, token=token_of(bi))
    assert status in (201, 409), body
    return api(bi, "POST", "/api/auth/login", {"email": email, "password": PASSWORD})[1]["access_token"]


def boxes(page: Page, titles: list[str]) -> list[dict]:
    """Where the tiles of ``titles`` are once they stop moving (the grid animates a change of columns)."""
    before: list[dict] = []
    for _ in range(50):
        now = [page.get_by_role("article", name=title).bounding_box() for title in titles]
        if now == before:
            return now
        before = now
        page.wait_for_timeout(200)
    raise AssertionError(f"the tiles kept moving: {before}")


def test_a_viewer_opens_a_card_read_only_and_runs_it_with_their_values(browser: Browser, bi):
    owner = member(bi, OWNER, "伊藤 誠")
    viewer = member(bi, EMAIL, "木村 拓也")
    dashboard = make_dashboard(bi, owner, "地域別売上", [card("region", "地域の売上", code="print(f'地域: {region}')",
                                                               parameters=REGION)],
                               [{"card": "region", "x": 0, "y": 0, "w": 6, "h": 3}], parameters=REGION)
    status, body = api(bi, "PUT", f"/api/dashboards/{dashboard['id']}/shares", {"email": EMAIL, "permission": "view"},
                       token=owner)
    assert status == 200, body
    card_id = dashboard["document"]["cards"][0]["card"]
    page = signed_in(browser, bi, "ja-JP", EMAIL, PASSWORD, f"/dashboards/{dashboard['id']}")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    tile = page.get_by_role("article", name="地域の売上")
    expect(tile.locator(".output-stream")).to_have_text("地域: 関東\n", timeout=30_000)
    tile.get_by_role("link", name="カードを表示").click()

    expect(page.get_by_role("heading", name="地域の売上")).to_be_visible()
    expect(page.get_by_text("閲覧のみ", exact=True)).to_be_visible()
    expect(page.get_by_text("このカードは閲覧のみです。")).to_be_visible()
    expect(page.get_by_role("button", name="保存")).to_have_count(0)
    expect(page.get_by_role("button", name="■ 中断")).to_have_count(0)
    expect(page.get_by_text("自動実行")).to_have_count(0)
    expect(page.locator(".cm-content")).to_have_attribute("contenteditable", "false")
    expect(page.locator(".cm-content")).to_contain_text("print(f'地域: {region}')")
    page.get_by_label("地域").select_option("関西")
    page.get_by_role("button", name="▶ 実行").click()
    expect(page.locator(".output-pane .output-stream")).to_have_text("地域: 関西\n", timeout=30_000)
    expect(page.locator(".run-status")).to_contain_text("完了")
    screenshot(page, "ja-card-viewer")
    # It ran the saved card through the run API: no editing session, the card unchanged, the shared view as it was.
    sessions = api(bi, "GET", "/api/card-sessions", token=viewer)[1]
    assert sessions["held"] == 0 and sessions["sessions"] == []
    assert api(bi, "GET", f"/api/cards/{card_id}", token=viewer)[1]["version"] == 1
    ran = api(bi, "POST", f"/api/cards/{card_id}/run", {"parameters": {"region": "関西"}}, token=viewer)[1]
    assert ran["cached"] is True and ran["outputs"][0]["text"] == "地域: 関西\n", "the viewer's run is the one cached"
    page.go_back()
    expect(page.get_by_role("article", name="地域の売上").locator(".output-stream")).to_have_text("地域: 関東\n", timeout=30_000)
    page.context.close()

    # The owner's editor of the same card is an editor, and its session is listed under the card's title.
    editor = signed_in(browser, bi, "ja-JP", OWNER, PASSWORD, f"/cards/{card_id}")
    editor.on("pageerror", lambda error: errors.append(str(error)))
    expect(editor.get_by_role("button", name="保存")).to_be_visible()
    editor.get_by_role("button", name="▶ 実行").click()  # no values in the editor: a NameError, but a session
    expect(editor.locator(".output-pane .output-error")).to_contain_text("region", timeout=30_000)
    listed = api(bi, "GET", "/api/card-sessions", token=owner)[1]["sessions"]
    assert [(s["card_id"], s["card_title"]) for s in listed] == [(card_id, "地域の売上")]
    editor.context.close()
    assert not errors, errors


def test_tiles_keep_their_reading_order_on_a_narrow_screen(browser: Browser, bi):
    owner = member(bi, OWNER, "伊藤 誠")
    # Listed bottom first: the order on screen comes from the places, not from the document's order.
    dashboard = make_dashboard(bi, owner, "並び順", [card("c", "下段"), card("b", "右上"), card("a", "左上")], [
        {"card": "c", "x": 0, "y": 3, "w": 12, "h": 3},
        {"card": "b", "x": 6, "y": 0, "w": 6, "h": 3},
        {"card": "a", "x": 0, "y": 0, "w": 6, "h": 3}])
    page = signed_in(browser, bi, "ja-JP", OWNER, PASSWORD, f"/dashboards/{dashboard['id']}")
    titles = ["左上", "右上", "下段"]
    expect(page.get_by_role("article", name="下段").locator(".output-stream")).to_have_text("下段\n", timeout=30_000)
    left, right, bottom = boxes(page, titles)
    assert left["y"] == right["y"] < bottom["y"] and left["x"] < right["x"], (left, right, bottom)

    # Narrower than 760 px of grid: one column, top-left first, then top-right, then the bottom row.
    page.set_viewport_size({"width": 700, "height": 900})
    expect(page.locator(".grid-stack")).to_have_class(re.compile(r"gs-1\b"))
    left, right, bottom = boxes(page, titles)
    assert left["y"] < right["y"] < bottom["y"], (left, right, bottom)
    assert left["x"] == right["x"] == bottom["x"], (left, right, bottom)
    screenshot(page, "ja-dashboard-narrow")
    # Opened on the narrow screen: the same order.
    page.reload()
    expect(page.get_by_role("article", name="下段").locator(".output-stream")).to_have_text("下段\n", timeout=30_000)
    expect(page.locator(".grid-stack")).to_have_class(re.compile(r"gs-1\b"))
    left, right, bottom = boxes(page, titles)
    assert left["y"] < right["y"] < bottom["y"], (left, right, bottom)
    assert left["x"] == right["x"] == bottom["x"], (left, right, bottom)
    # Saved from the narrow screen's edit mode, the layout stays the document's (not one column).
    page.get_by_role("button", name="編集", exact=True).click()
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.get_by_text("バージョン2として保存しました。")).to_be_visible()
    saved = api(bi, "GET", f"/api/dashboards/{dashboard['id']}", token=owner)[1]
    assert saved["version"] == 2 and saved["document"]["layout"] == dashboard["document"]["layout"]
    # Wide again: back to the grid.
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(page.locator(".grid-stack")).not_to_have_class(re.compile(r"gs-1\b"))
    left, right, bottom = boxes(page, titles)
    assert left["y"] == right["y"] < bottom["y"] and left["x"] < right["x"], (left, right, bottom)
    page.context.close()


def test_the_sidebar_collapses_and_the_dashboard_goes_full_screen(browser: Browser, bi):
    owner = member(bi, OWNER, "伊藤 誠")
    dashboard = make_dashboard(bi, owner, "売上モニター", [card("a", "今日の売上")],
                               [{"card": "a", "x": 0, "y": 0, "w": 6, "h": 3}], parameters=REGION)
    page = signed_in(browser, bi, "ja-JP", OWNER, PASSWORD, f"/dashboards/{dashboard['id']}")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sidebar = page.get_by_role("navigation", name="メインメニュー")
    expect(sidebar.get_by_text("ダッシュボード", exact=True)).to_be_visible()

    # Collapsed: icons only, and the page wider; it stays so after a reload, until opened again.
    page.get_by_role("button", name="メニューを折りたたむ").click()
    expect(sidebar.get_by_text("ダッシュボード", exact=True)).to_be_hidden()
    assert sidebar.bounding_box()["width"] < 80
    expect(sidebar.get_by_role("link", name="ダッシュボード")).to_be_visible()
    screenshot(page, "ja-sidebar-collapsed")
    page.reload()
    expect(page.get_by_role("button", name="メニューを開く")).to_be_visible()
    assert sidebar.bounding_box()["width"] < 80
    page.get_by_role("button", name="メニューを開く").click()
    expect(sidebar.get_by_text("ダッシュボード", exact=True)).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="メニューを折りたたむ")).to_be_visible()

    # Full screen: no sidebar, parameters or buttons; the tiles take the width; Esc ends it.
    tile = page.get_by_role("article", name="今日の売上")
    expect(tile.locator(".output-stream")).to_have_text("今日の売上\n", timeout=30_000)
    width = tile.bounding_box()["width"]
    page.get_by_role("button", name="全画面表示").click()
    expect(sidebar).to_be_hidden()
    expect(page.get_by_role("combobox", name="地域")).to_be_hidden()
    expect(page.get_by_role("button", name="編集", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="全画面表示を終了")).to_be_visible()
    expect(page.get_by_role("heading", name="売上モニター")).to_be_visible()
    page.wait_for_function("w => document.querySelector('.tile').getBoundingClientRect().width > w + 100", arg=width)
    screenshot(page, "ja-dashboard-tv")
    page.keyboard.press("Escape")
    expect(sidebar).to_be_visible()
    expect(page.get_by_role("button", name="編集", exact=True)).to_be_visible()
    page.get_by_role("button", name="全画面表示").click()
    page.get_by_role("button", name="全画面表示を終了").click()
    expect(sidebar).to_be_visible()

    # A wall screen opens it in TV mode directly.
    page.goto(f"{bi.url}/dashboards/{dashboard['id']}?tv=1")
    expect(page.get_by_role("button", name="全画面表示を終了")).to_be_visible()
    expect(sidebar).to_be_hidden()
    expect(tile.locator(".output-stream")).to_have_text("今日の売上\n", timeout=30_000)
    page.context.close()
    assert not errors, errors
