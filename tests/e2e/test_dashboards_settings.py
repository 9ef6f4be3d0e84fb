"""A dashboard's settings and file actions in a Japanese browser, each checked through the API: title,
description, parameters (a Japanese label; a name that is no identifier is refused with a message saying
how to fix it) and the refresh schedule; version history and restore; export to a file and import from
one; duplicate (the copy and its cards are the caller's); delete after a confirmation that names it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from .conftest import api, screenshot, token_of
from .test_sessions import signed_in

EMAIL = "nakamura@example.com"
PASSWORD = "a long enough password"


def document(title: str) -> dict:
    return {"schemaVersion": 1, "title": title, "parameters": [], "refresh": None,
            "cards": [{"key": "total", "title": "売上合計", "code": "print('合計', 150)"}],
            "layout": [{"card": "total", "x": 0, "y": 0, "w": 6, "h": 3}]}


def more(page: Page, action: str) -> None:
    """Chooses ``action`` from the dashboard's その他 menu."""
    page.get_by_role("button", name="その他").click()
    page.locator(".menu-items").get_by_role("button", name=action, exact=True).click()


def test_dashboard_settings_versions_files_duplicate_and_delete(browser: Browser, bi, tmp_path: Path):
    admin = token_of(bi)
    status, body = api(bi, "POST", "/api/users", {"email": EMAIL, "name": "中村 優子", "password": PASSWORD}, token=admin)
    assert status == 201, body
    token = api(bi, "POST", "/api/auth/login", {"email": EMAIL, "password": PASSWORD})[1]["access_token"]
    me = api(bi, "GET", "/api/me", token=token)[1]["id"]
    status, dashboard = api(bi, "POST", "/api/dashboards", document("月次売上"), token=token)
    assert status == 201, dashboard
    path = f"/api/dashboards/{dashboard['id']}"
    page = signed_in(browser, bi, "ja-JP", EMAIL, PASSWORD, f"/dashboards/{dashboard['id']}")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # Settings: title, description, refresh schedule and a parameter with a Japanese label.
    expect(page.get_by_role("article", name="売上合計").locator(".output-stream")).to_have_text("合計 150\n", timeout=30_000)
    more(page, "設定")
    dialog = page.get_by_role("dialog", name="ダッシュボードの設定")
    dialog.get_by_label("タイトル").fill("月次売上（全社）")
    dialog.get_by_label("説明").fill("毎月の売上を地域別に見ます。")
    dialog.get_by_label("更新スケジュール").select_option(label="1時間ごと")
    expect(dialog.get_by_label("更新スケジュール").locator("option")).to_have_text(
        ["なし", "15分ごと", "30分ごと", "1時間ごと", "3時間ごと", "6時間ごと", "12時間ごと", "毎日"])
    dialog.get_by_role("button", name="＋ パラメータを追加").click()
    dialog.get_by_label("名前（コード用）").fill("地域")
    dialog.get_by_label("表示名").fill("地域")
    dialog.get_by_label("種類").select_option(label="選択肢")
    dialog.get_by_label("既定値").fill("関東")
    dialog.get_by_label("選択肢（カンマ区切り）").fill("関東, 関西、九州")
    dialog.get_by_role("button", name="保存").click()
    expect(dialog.get_by_role("alert").first).to_have_text(
        "名前「地域」は使えません。半角英字か_で始め、半角英数字と_だけを使ってください（例：region）。日本語は表示名に入力してください。")
    screenshot(page, "ja-dashboard-settings-invalid")
    assert api(bi, "GET", path, token=token)[1]["version"] == 1, "nothing saved while the form is wrong"
    dialog.get_by_label("名前（コード用）").fill("region")
    dialog.get_by_role("button", name="保存").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_text("バージョン2として保存しました。")).to_be_visible()
    expect(page.get_by_role("heading", name="月次売上（全社）")).to_be_visible()
    expect(page.get_by_role("combobox", name="地域")).to_have_value("関東")
    saved = api(bi, "GET", path, token=token)[1]
    assert saved["version"] == 2
    doc = saved["document"]
    assert (doc["title"], doc["description"], doc["refresh"]) == ("月次売上（全社）", "毎月の売上を地域別に見ます。", {"every_seconds": 3600})
    assert doc["parameters"] == [{"name": "region", "type": "choice", "default": "関東", "label": "地域",
                                  "choices": ["関東", "関西", "九州"]}]
    more(page, "設定")
    dialog = page.get_by_role("dialog", name="ダッシュボードの設定")
    expect(dialog.get_by_label("更新スケジュール")).to_have_value("3600")
    screenshot(page, "ja-dashboard-settings")
    dialog.get_by_role("button", name="パラメータ「region」を削除").click()
    dialog.get_by_role("button", name="キャンセル").click()
    assert api(bi, "GET", path, token=token)[1]["version"] == 2, "cancel saves nothing"

    # Version history: restore version 1 as version 3.
    more(page, "バージョン履歴")
    history = page.get_by_role("dialog", name="「月次売上（全社）」のバージョン履歴")
    expect(history.locator(".version-row")).to_have_count(2)
    expect(history.locator(".version-row").first).to_contain_text("現在のバージョン")
    expect(history.locator(".version-row").nth(1)).to_contain_text("あなたが保存")
    screenshot(page, "ja-dashboard-versions")
    history.get_by_role("button", name="バージョン1を復元").click()
    expect(page.get_by_text("バージョン1を復元し、バージョン3として保存しました。")).to_be_visible()
    expect(page.get_by_role("heading", name="月次売上", exact=True)).to_be_visible()
    restored = api(bi, "GET", path, token=token)[1]
    assert restored["version"] == 3 and restored["document"]["title"] == "月次売上"
    assert restored["document"]["refresh"] is None and restored["document"]["parameters"] == []

    # Export: the file is the API's export, cards inline.
    with page.expect_download() as download:
        more(page, "エクスポート")
    assert download.value.suggested_filename == "月次売上.json"
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported == api(bi, "GET", f"{path}/export", token=token)[1]
    assert exported["cards"][0]["code"] == "print('合計', 150)"

    # Import: a file that is not a dashboard says so; the exported file under a new uid makes a new dashboard.
    page.get_by_role("link", name="ダッシュボード", exact=True).click()
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="インポート").click()
    chooser.value.set_files({"name": "メモ.txt", "mimeType": "text/plain", "buffer": "売上メモ".encode()})
    expect(page.locator(".dash-create .form-error")).to_have_text(
        "「メモ.txt」はダッシュボードのファイル（JSON）として読めませんでした。エクスポートしたファイルを選んでください。")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="インポート").click()
    copy = {**exported, "uid": "monthly-import", "title": "月次売上（取り込み）"}
    chooser.value.set_files({"name": "月次売上.json", "mimeType": "application/json",
                             "buffer": json.dumps(copy, ensure_ascii=False).encode()})
    expect(page.get_by_role("heading", name="月次売上（取り込み）")).to_be_visible()
    imported_id = page.url.rsplit("/", 1)[1]
    imported = api(bi, "GET", f"/api/dashboards/{imported_id}", token=token)[1]
    assert (imported["uid"], imported["owner_id"]) == ("monthly-import", me)
    assert imported["document"]["cards"][0]["card"] != restored["document"]["cards"][0]["card"]
    expect(page.get_by_role("article", name="売上合計").locator(".output-stream")).to_have_text("合計 150\n", timeout=30_000)

    # Duplicate a dashboard shared to view: the copy and its cards are the viewer's.
    status, body = api(bi, "POST", "/api/users", {"email": "mori@example.com", "name": "森 直人", "password": PASSWORD},
                       token=admin)
    assert status == 201, body
    other = api(bi, "POST", "/api/auth/login", {"email": "mori@example.com", "password": PASSWORD})[1]["access_token"]
    status, shared = api(bi, "POST", "/api/dashboards", document("全社KPI"), token=other)
    assert status == 201, shared
    status, body = api(bi, "PUT", f"/api/dashboards/{shared['id']}/shares", {"email": EMAIL, "permission": "view"}, token=other)
    assert status == 200, body
    page.goto(f"{bi.url}/dashboards/{shared['id']}")
    page.get_by_role("button", name="その他").click()
    expect(page.locator(".menu-items button")).to_have_text(["バージョン履歴", "エクスポート", "複製"])
    screenshot(page, "ja-dashboard-menu-viewer")
    page.locator(".menu-items").get_by_role("button", name="複製").click()
    expect(page.get_by_role("heading", name="全社KPIのコピー")).to_be_visible()
    copy_id = page.url.rsplit("/", 1)[1]
    assert copy_id != shared["id"]
    duplicated = api(bi, "GET", f"/api/dashboards/{copy_id}", token=token)[1]
    assert (duplicated["owner_id"], duplicated["access"]) == (me, "owner")
    card_id = duplicated["document"]["cards"][0]["card"]
    assert card_id != shared["document"]["cards"][0]["card"]
    card = api(bi, "GET", f"/api/cards/{card_id}", token=token)[1]
    assert (card["owner_id"], card["updated_by"], card["code"]) == (me, me, "print('合計', 150)")
    expect(page.get_by_role("button", name="編集", exact=True)).to_be_visible()

    # Delete, after a confirmation that names the dashboard; cancelling keeps it.
    more(page, "削除")
    confirm = page.get_by_role("dialog", name="ダッシュボードを削除")
    expect(confirm).to_contain_text("ダッシュボード「全社KPIのコピー」を削除しますか？この操作は元に戻せません。")
    screenshot(page, "ja-dashboard-delete")
    confirm.get_by_role("button", name="キャンセル").click()
    assert api(bi, "GET", f"/api/dashboards/{copy_id}", token=token)[0] == 200
    more(page, "削除")
    page.get_by_role("dialog", name="ダッシュボードを削除").get_by_role("button", name="削除").click()
    expect(page).to_have_url(re.compile(r"/dashboards$"))
    assert api(bi, "GET", f"/api/dashboards/{copy_id}", token=token)[0] == 404
    assert api(bi, "GET", f"/api/dashboards/{shared['id']}", token=other)[0] == 200
    page.context.close()
    assert not errors, errors
