"""Dashboards in a browser: the owner puts a Bokeh card on a dashboard and shares it; a viewer in
another browser context sees it, and sees the owner's change arrive live; a stranger cannot open it."""

from __future__ import annotations

import re
import urllib.request

from playwright.sync_api import Browser, Page, expect

from .conftest import CONTEXT, api, screenshot, sign_in, token_of

PASSWORD = "a long enough password"
CODE = """from bokeh.plotting import figure
label = "{label}"
stores = ["東京", "大阪", "名古屋", "福岡"]
print(f"集計: {{label}}")
p = figure(x_range=stores, title=f"店舗別売上（{{label}}）", height=300, sizing_mode="stretch_width")
p.vbar(x=stores, top=[120, 95, 70, 64], width=0.8)
p
"""


def add_user(bi, token: str, email: str, name: str) -> None:
    status, body = api(bi, "POST", "/api/users", {"email": email, "name": name, "password": PASSWORD}, token=token)
    assert status == 201, body


def sign_in_as(browser: Browser, bi, email: str, next_path: str, errors: list[str]) -> Page:
    """A second browser context, signed in as someone else; what its page throws goes to ``errors``."""
    context = browser.new_context(**CONTEXT)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{bi.url}/signin?next={next_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    return page


def write_card(page: Page, label: str) -> None:
    page.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(CODE.format(label=label))


def test_someone_without_dashboards_is_told_what_they_are(browser: Browser, bi):
    """The empty dashboards page, for a member of their own (other modules may give the admin dashboards)."""
    add_user(bi, token_of(bi), "newcomer@example.com", "新人 一郎")
    errors: list[str] = []
    page = sign_in_as(browser, bi, "newcomer@example.com", "/dashboards", errors)
    expect(page.get_by_role("heading", name="No dashboards yet")).to_be_visible()
    screenshot(page, "dashboards-empty")
    page.context.close()
    assert not errors, errors


def test_dashboard_shared_live_and_closed_to_strangers(page: Page, browser: Browser, bi):
    token = token_of(bi)
    errors: list[str] = []
    add_user(bi, token, "hanako@example.com", "山田 花子")
    add_user(bi, token, "stranger@example.com", "Sam Stranger")

    # The owner writes a card that draws a chart and saves it.
    sign_in(page, bi, "/cards/new")
    page.get_by_placeholder("Untitled card").fill("店舗別売上")
    write_card(page, "初版")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".outputs .output-bokeh canvas").first).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as version 1.")).to_be_visible()

    # A new dashboard, then the card goes on it from the card editor.
    page.get_by_role("link", name="Dashboards", exact=True).click()
    page.get_by_label("New dashboard title").fill("営業ダッシュボード")
    page.get_by_role("button", name="+ New dashboard").click()
    expect(page).to_have_url(re.compile(r"/dashboards/[^/]+$"))
    dashboard_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", name="No cards on this dashboard yet")).to_be_visible()
    screenshot(page, "dashboard-new")

    page.go_back()
    page.go_back()
    expect(page.get_by_placeholder("Untitled card")).to_have_value("店舗別売上")
    page.get_by_role("button", name="Add to dashboard").click()
    page.get_by_role("dialog", name="Add to dashboard").get_by_role("button", name=re.compile("営業ダッシュボード")).click()
    added = page.get_by_role("status").filter(has_text="Added to “営業ダッシュボード”.")
    expect(added).to_be_visible()
    screenshot(page, "card-added-to-dashboard")
    added.get_by_role("link", name="Open dashboard").click()

    tile = page.get_by_role("article", name="店舗別売上")
    expect(tile.locator(".output-bokeh canvas").first).to_be_visible(timeout=30_000)
    expect(tile.locator(".output-stream")).to_have_text("集計: 初版\n")
    expect(page.locator(".live-state")).to_have_text("Live")
    screenshot(page, "dashboard-owner", also_wide=True)

    # Edit mode: add the card a second time, drag it beside the first, make it taller, remove the
    # first; save.
    page.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_role("button", name="+ Add card").click()
    picker = page.get_by_role("dialog", name="Add a card")
    expect(picker).to_contain_text("already here")
    screenshot(page, "dashboard-add-card")
    picker.get_by_role("button", name=re.compile("店舗別売上")).click()
    second = page.locator('.tile[data-key="card-2"]')
    expect(second).to_contain_text("Save the dashboard to run this card.")
    head = second.locator(".tile-head")
    head.scroll_into_view_if_needed()
    box = head.bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + box["height"] / 2)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(box["x"] + 200 + step * 30, box["y"] + box["height"] / 2)
    page.mouse.up()
    corner = page.locator('.grid-stack-item[gs-id="card-2"] > .ui-resizable-se')
    corner.scroll_into_view_if_needed()
    box = corner.bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + 10)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(box["x"] + 10, box["y"] + 10 + step * 15)
    page.mouse.up()
    screenshot(page, "dashboard-editing")
    page.locator('.tile[data-key="card-1"]').get_by_role("button", name="Remove from the dashboard").click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved as version 3.")).to_be_visible()
    layout = api(bi, "GET", f"/api/dashboards/{dashboard_id}", token=token)[1]["document"]["layout"]
    assert [(cell["card"], cell["x"] > 0, cell["w"], cell["h"] > 7) for cell in layout] == [("card-2", True, 6, True)], layout
    tile = page.get_by_role("article", name="店舗別売上")
    expect(tile.locator(".output-bokeh canvas").first).to_be_visible(timeout=30_000)

    # Sharing: an unknown email is refused with a reason; a colleague becomes a viewer.
    page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share “営業ダッシュボード”")
    dialog.get_by_label("Email").fill("nobody@example.com")
    dialog.get_by_role("button", name="Share").click()
    expect(dialog.get_by_role("alert")).to_contain_text("nobody@example.com")
    dialog.get_by_label("Email").fill("hanako@example.com")
    dialog.get_by_role("button", name="Share").click()
    expect(dialog.locator(".share-list")).to_contain_text("山田 花子")
    expect(dialog.locator(".share-list")).to_contain_text("Can view")
    screenshot(page, "dashboard-share")
    dialog.get_by_role("button", name="Done").click()

    # Parameters: a card that takes the region; the dashboard offers a choice of region.
    status, current = api(bi, "GET", f"/api/dashboards/{dashboard_id}", token=token)
    document = current["document"]
    document["parameters"] = [{"name": "region", "type": "choice", "label": "地域", "default": "関東",
                               "choices": ["関東", "関西", "九州"]}]
    document["cards"].append({"key": "region", "title": "地域", "code": 'print(f"地域: {region}")',
                              "parameters": [{"name": "region", "type": "text", "default": "関東"}]})
    document["layout"].append({"card": "region", "x": 0, "y": 0, "w": 4, "h": 3})
    status, body = api(bi, "PUT", f"/api/dashboards/{dashboard_id}", document, token=token,
                       headers={"If-Match": f'"{current["version"]}"'})
    assert status == 200, body
    region = page.get_by_role("article", name="地域")
    expect(region.locator(".output-stream")).to_have_text("地域: 関東\n", timeout=30_000)

    # The viewer finds it among the dashboards shared with her and sees the chart.
    viewer = sign_in_as(browser, bi, "hanako@example.com", "/dashboards", errors)
    expect(viewer.get_by_role("row", name=re.compile("営業ダッシュボード"))).to_contain_text("Can view")
    screenshot(viewer, "dashboards-viewer")
    viewer.get_by_role("link", name="営業ダッシュボード").click()
    viewer_tile = viewer.get_by_role("article", name="店舗別売上")
    expect(viewer_tile.locator(".output-bokeh canvas").first).to_be_visible(timeout=30_000)
    expect(viewer.get_by_text("View only")).to_be_visible()
    expect(viewer.get_by_role("button", name="Edit", exact=True)).to_have_count(0)
    expect(viewer_tile.get_by_role("button", name="↻ Re-run")).to_have_count(0)
    expect(page.locator(".presence .avatar")).to_have_count(2)
    expect(viewer.locator(".presence")).to_contain_text("1 other viewing")
    viewer.evaluate("window.stillTheSamePage = true")
    screenshot(viewer, "dashboard-viewer", also_wide=True)

    # The owner's own region: personal outputs for the owner only, then back to the shared view.
    page.get_by_role("combobox", name="地域").select_option("関西")
    page.get_by_role("button", name="Apply").click()
    expect(region.locator(".output-stream")).to_have_text("地域: 関西\n", timeout=30_000)
    expect(region.locator(".tile-meta")).to_contain_text("Your values")
    expect(page.get_by_text("Showing results for your values, only to you.")).to_be_visible()
    screenshot(page, "dashboard-personal")
    expect(viewer.get_by_role("article", name="地域").locator(".output-stream")).to_have_text("地域: 関東\n")
    page.get_by_role("button", name="Back to shared view").click()
    expect(region.locator(".output-stream")).to_have_text("地域: 関東\n")
    expect(page.get_by_role("combobox", name="地域")).to_have_value("関東")

    # The owner re-runs the card, then changes it: the viewer sees the new output, without a reload.
    tile.get_by_role("button", name="↻ Re-run").click()
    expect(tile.locator(".tile-meta")).not_to_have_text("Running…")
    tile.get_by_role("link", name="Edit card").click()
    write_card(page, "改訂")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as version 2.")).to_be_visible()
    expect(viewer_tile.locator(".output-stream")).to_have_text("集計: 改訂\n", timeout=30_000)
    expect(viewer_tile.locator(".output-bokeh canvas").first).to_be_visible()
    assert viewer.evaluate("window.stillTheSamePage") is True
    screenshot(viewer, "dashboard-viewer-updated")

    # Someone saves while the owner edits: the owner is told, and a save says why it failed.
    page.get_by_role("link", name="Dashboards", exact=True).click()
    page.get_by_role("link", name="営業ダッシュボード").click()
    page.get_by_role("button", name="Edit", exact=True).click()
    current = api(bi, "GET", f"/api/dashboards/{dashboard_id}", token=token)[1]
    status, _ = api(bi, "PUT", f"/api/dashboards/{dashboard_id}", {**current["document"], "title": "営業ダッシュボード（週次）"},
                    token=token, headers={"If-Match": f'"{current["version"]}"'})
    assert status == 200
    expect(page.get_by_text(f"Someone saved version {current['version'] + 1} while you were editing.")).to_be_visible()
    page.get_by_role("button", name="Save", exact=True).click()
    conflict = page.get_by_role("alert").filter(has_text="someone else saved this dashboard")
    expect(conflict).to_contain_text(f"it is now at version {current['version'] + 1}")
    screenshot(page, "dashboard-conflict")
    conflict.get_by_role("button", name="Discard my changes").click()
    expect(page.get_by_role("heading", name="営業ダッシュボード（週次）")).to_be_visible()

    # A card deleted while it waits to be saved on the dashboard: the save names it.
    status, doomed = api(bi, "POST", "/api/cards", {"title": "消える予定", "code": "print(1)", "datasets": [], "parameters": []}, token=token)
    assert status == 201, doomed
    page.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_role("button", name="+ Add card").click()
    page.get_by_role("dialog", name="Add a card").get_by_role("button", name=re.compile("消える予定")).click()
    assert api(bi, "DELETE", f"/api/cards/{doomed['id']}", token=token)[0] == 204
    page.get_by_role("button", name="Save", exact=True).click()
    problem = page.get_by_role("alert").filter(has_text="Not saved: the dashboard has a problem.")
    expect(problem).to_contain_text(f"/cards/2/card (the card “消える予定”) — there is no card {doomed['id']} of yours.")
    expect(page.locator(".tile.problem")).to_have_attribute("aria-label", "消える予定")
    screenshot(page, "dashboard-save-problem")
    page.get_by_role("button", name="Cancel").click()

    # A stranger gets a clear page, not the dashboard.
    stranger = sign_in_as(browser, bi, "stranger@example.com", f"/dashboards/{dashboard_id}", errors)
    expect(stranger.get_by_role("heading", name="Dashboard not available")).to_be_visible()
    expect(stranger.locator(".tile")).to_have_count(0)
    screenshot(stranger, "dashboard-stranger")

    # Revoking the share closes the viewer's live dashboard with a message.
    status, _ = api(bi, "DELETE", f"/api/dashboards/{dashboard_id}/shares", {"email": "hanako@example.com"}, token=token)
    assert status == 204
    expect(viewer.get_by_text("Your access to this dashboard was revoked.")).to_be_visible()
    screenshot(viewer, "dashboard-revoked")
    assert not errors, errors


def test_the_share_dialog_names_the_data_an_editor_cannot_read(browser: Browser, bi):
    """An editor opens the share dialog (without its sharing form) and reads which datasets of the cards
    they may not read: a version they save runs without them."""
    token = token_of(bi)
    add_user(bi, token, "ken@example.com", "佐藤 健")
    upload = urllib.request.Request(f"{bi.url}/api/datasets?name=payments", data=b"card,amount\n4111,9000\n",
                                    method="POST", headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"})
    with urllib.request.urlopen(upload, timeout=30) as response:
        assert response.status == 201
    status, dashboard = api(bi, "POST", "/api/dashboards", {
        "schemaVersion": 1, "title": "支払い", "parameters": [], "refresh": None,
        "cards": [{"key": "pay", "title": "合計", "datasets": ["payments"],
                   "code": "print(load_dataset('payments')['amount'].sum())"}],
        "layout": [{"card": "pay", "x": 0, "y": 0, "w": 6, "h": 3}]}, token=token)
    assert status == 201, dashboard
    status, body = api(bi, "PUT", f"/api/dashboards/{dashboard['id']}/shares",
                       {"email": "ken@example.com", "permission": "edit"}, token=token)
    assert status == 200, body
    errors: list[str] = []
    editor = sign_in_as(browser, bi, "ken@example.com", f"/dashboards/{dashboard['id']}", errors)
    editor.get_by_role("button", name="Share").click()
    dialog = editor.get_by_role("dialog", name="Share “支払い”")
    expect(dialog.locator(".unreadable-list")).to_have_text("payments (cards: pay)")
    expect(dialog.get_by_label("Email")).to_have_count(0)
    expect(dialog.get_by_role("button", name="Revoke ken@example.com")).to_have_count(0)
    screenshot(editor, "dashboard-share-editor")
    assert not errors, errors
