"""A Japanese browser gets the Japanese UI: sign-in, datasets and dashboards read in Japanese, dates
and numbers as in Japan; switching to English in the user menu sticks to the account."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Browser, Page, expect

from .conftest import CONTEXT, api, screenshot, token_of
from .test_datasets import choose_file, cp932_csv

# Words that may stay in Latin letters on a Japanese page: product and format names.
ALLOWED = {"BI", "Cards", "CSV", "TSV", "UTF", "Shift_JIS", "CP932", "EUC", "JP", "BOM", "Bokeh", "Python",
           "Jupyter", "JupyterLab", "Code", "JSON", "PNG", "English"}
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z_]{2,}")
EMAIL = "sato@example.com"
PASSWORD = "a long enough password"


def latin_words(page: Page) -> list[str]:
    """Words of three or more Latin letters in the visible text, outside code, emails and the names
    people chose for themselves (``.user-email``, ``.user-name``: removed before reading)."""
    text = page.evaluate("""() => {
        const copy = document.body.cloneNode(true);
        copy.querySelectorAll("code, kbd, pre, .cm-editor, .user-email, .user-name, select option:not(:checked), dialog:not([open])")
            .forEach((el) => el.remove());
        document.body.append(copy);
        copy.style.position = "absolute"; copy.style.left = "-10000px";
        const text = copy.innerText;
        copy.remove();
        return text;
    }""")
    return [word for word in LATIN_WORD.findall(text) if word not in ALLOWED and word.upper() not in ALLOWED]


def test_japanese_browser_sees_japanese(browser: Browser, bi):
    status, body = api(bi, "POST", "/api/users", {"email": EMAIL, "name": "佐藤 健", "password": PASSWORD},
                       token=token_of(bi))
    assert status == 201, body
    token = api(bi, "POST", "/api/auth/login", {"email": EMAIL, "password": PASSWORD})[1]["access_token"]
    status, _ = api(bi, "POST", "/api/dashboards", {"schemaVersion": 1, "title": "月次売上", "cards": [], "layout": []},
                    token=token)
    assert status == 201
    context = browser.new_context(**{**CONTEXT, "locale": "ja-JP"})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{bi.url}/signin?next=/datasets")
        expect(page.get_by_role("heading", name="ログイン")).to_be_visible()
        assert page.evaluate("document.documentElement.lang") == "ja"
        assert latin_words(page) == []
        screenshot(page, "ja-signin")

        page.get_by_label("メールアドレス").fill(EMAIL)
        page.get_by_label("パスワード").fill("not the password")
        page.get_by_role("button", name="ログイン").click()
        expect(page.get_by_role("alert")).to_have_text("メールアドレスまたはパスワードが正しくありません。")
        time.sleep(1.2)  # after a failure this account waits a second at this address
        page.get_by_label("パスワード").fill(PASSWORD)
        page.get_by_role("button", name="ログイン").click()
        expect(page.get_by_role("heading", name="データセット", exact=True)).to_be_visible()
        assert latin_words(page) == []
        screenshot(page, "ja-datasets-empty")

        # A file that cannot be read: what is wrong, on which line, in Japanese.
        choose_file(page, "ragged.csv", b"a,b,c\n1,2,3\n4,5\n")
        problem = page.get_by_role("alert")
        expect(problem).to_contain_text("ファイルを読み込めませんでした（3行目に問題があります）。")
        expect(problem).to_contain_text("列の数が見出しと合いません（見出しは3列、この行は2列です）。")
        assert latin_words(page) == []
        screenshot(page, "ja-datasets-422")

        # A Shift_JIS upload: the dataset page and the list in Japanese, with grouped numbers.
        choose_file(page, "売上データ.csv", cp932_csv(1200))
        expect(page.get_by_role("heading", name="売上データ")).to_be_visible()
        expect(page.get_by_text("1,200行中 1〜50行目")).to_be_visible()
        expect(page.locator(".fact dd").first).to_have_text("1,200")
        expect(page.locator(".fact dd").nth(2)).to_have_text("Shift_JIS（CP932）")  # the glossary's name, not cp932
        assert latin_words(page) == []
        screenshot(page, "ja-dataset", also_wide=True)
        page.get_by_role("link", name="データセット", exact=True).click()
        expect(page.get_by_role("link", name="売上データ")).to_be_visible()
        expect(page.locator("table.list tbody td").nth(5)).to_have_text(re.compile(r"^v1 · (たった今|\d+分前)$"))
        assert latin_words(page) == []
        screenshot(page, "ja-datasets")

        page.get_by_role("link", name="ダッシュボード", exact=True).click()
        expect(page.get_by_role("heading", name="ダッシュボード", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="月次売上")).to_be_visible()
        expect(page.get_by_text("オーナー", exact=True)).to_be_visible()
        assert latin_words(page) == []
        screenshot(page, "ja-dashboards")

        page.get_by_role("link", name="月次売上").click()
        expect(page.get_by_text("このダッシュボードにはまだカードがありません")).to_be_visible()
        expect(page.get_by_text("ライブ", exact=True)).to_be_visible()
        assert latin_words(page) == []
        screenshot(page, "ja-dashboard-empty")

        # English from the user menu: the page changes at once, and the account keeps it.
        page.get_by_label("表示言語").select_option("en")
        expect(page.get_by_text("No cards on this dashboard yet")).to_be_visible()
        status, me = api(bi, "GET", "/api/me", token=token, headers={"Accept-Language": "ja"})
        assert status == 200 and me["locale"] == "en"
        page.get_by_label("Language").select_option("ja")
        expect(page.get_by_text("このダッシュボードにはまだカードがありません")).to_be_visible()
        assert api(bi, "GET", "/api/me", token=token)[1]["locale"] == "ja"
    finally:
        context.close()
    assert not errors, errors


def test_japanese_card_editor_and_dashboard(browser: Browser, bi):
    """In Japanese: a card's run, its outputs and the errors the platform sets (a blocked import, a
    missing dataset) explained in Japanese; saving; the card on a dashboard, and sharing."""
    from .test_card_editor import CODE, type_code, upload

    email, password = "suzuki@example.com", "a long enough password"
    status, body = api(bi, "POST", "/api/users", {"email": email, "name": "鈴木 一郎", "password": password},
                       token=token_of(bi))
    assert status == 201, body
    token = api(bi, "POST", "/api/auth/login", {"email": email, "password": password})[1]["access_token"]
    upload(bi, token, "店舗売上")
    status, dashboard = api(bi, "POST", "/api/dashboards", {"schemaVersion": 1, "title": "営業会議", "cards": [],
                                                            "layout": []}, token=token)
    assert status == 201
    context = browser.new_context(**{**CONTEXT, "locale": "ja-JP"})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{bi.url}/signin?next=/cards/new")
        page.get_by_label("メールアドレス").fill(email)
        page.get_by_label("パスワード").fill(password)
        page.get_by_role("button", name="ログイン").click()
        expect(page.get_by_role("button", name="▶ 実行")).to_be_visible()
        screenshot(page, "ja-card-new")

        page.get_by_placeholder("無題のカード").fill("店舗別の売上")
        page.locator("details.picker > summary").click()
        page.get_by_label("店舗売上").check()
        page.get_by_placeholder("無題のカード").click()
        type_code(page, "import socket\n")
        page.keyboard.press("Control+Enter")
        expect(page.locator(".error-explained")).to_have_text(re.compile("^カードでは「socket」をインポートできません"))
        expect(page.get_by_role("button", name="▶ 実行")).to_be_enabled()  # the run has ended
        screenshot(page, "ja-card-blocked")
        type_code(page, 'load_dataset("在庫")\n')
        page.keyboard.press("Control+Enter")
        expect(page.locator(".error-explained")).to_have_text(
            "「在庫」という名前のデータセットはありません。このカードで読み込めるのは「店舗売上」です。")
        expect(page.get_by_role("button", name="▶ 実行")).to_be_enabled()

        type_code(page, CODE)
        page.keyboard.press("Control+Enter")
        outputs = page.locator(".outputs")
        expect(outputs.locator(".output-bokeh canvas").first).to_be_visible(timeout=30_000)
        expect(outputs.locator(".output-table .pager-status").first).to_have_text("40行中 1〜20行目")
        expect(outputs.locator(".output-caption").first).to_contain_text("40行 × 3列")
        expect(page.locator(".run-status.ok")).to_contain_text("完了")
        page.get_by_role("button", name="保存").click()
        expect(page.get_by_text("バージョン1として保存しました。")).to_be_visible()
        screenshot(page, "ja-card-chart", also_wide=True)

        page.get_by_role("button", name="ダッシュボードに追加").click()
        page.get_by_role("dialog").get_by_role("button", name=re.compile("営業会議")).click()
        expect(page.get_by_text("「営業会議」に追加しました。")).to_be_visible()
        page.get_by_role("link", name="ダッシュボードを開く").click()
        tile = page.locator(".tile").first
        expect(tile.locator(".output-bokeh canvas").first).to_be_visible(timeout=30_000)
        expect(tile.locator(".tile-meta")).to_contain_text("更新（カードの変更）")
        screenshot(page, "ja-dashboard", also_wide=True)

        page.get_by_role("button", name="共有").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("メールアドレス").fill("nobody@example.com")
        dialog.get_by_role("button", name="共有").click()
        expect(dialog.get_by_role("alert")).to_have_text(
            "このメールアドレスのユーザーはいません。管理者にユーザーの追加を依頼してください。")
        screenshot(page, "ja-share")
        dialog.get_by_role("button", name="完了").click()

        page.get_by_role("button", name="編集").click()
        expect(page.get_by_text("レイアウトを編集中です。")).to_be_visible()
        page.get_by_role("button", name="＋ カードを追加").click()
        expect(page.get_by_role("dialog", name="カードを追加")).to_contain_text("配置済み")
        screenshot(page, "ja-add-card")
        page.get_by_role("dialog").get_by_role("button", name="キャンセル").click()
        screenshot(page, "ja-dashboard-editing")
        page.get_by_role("button", name="キャンセル").click()

        page.get_by_role("link", name="カード", exact=True).click()
        expect(page.get_by_role("link", name="店舗別の売上")).to_be_visible()
        expect(page.locator("table.list tbody td").nth(3)).to_have_text(re.compile(r"^(たった今|\d+分前)$"))
        assert latin_words(page) == []
        screenshot(page, "ja-cards")
    finally:
        context.close()
    assert not errors, errors


def test_language_chosen_before_sign_in_sticks(browser: Browser, bi):
    """English chosen on the sign-in page of a Japanese browser shows at once and becomes the account's."""
    email, password = "tanaka@example.com", "a long enough password"
    status, body = api(bi, "POST", "/api/users", {"email": email, "name": "田中 花子", "password": password},
                       token=token_of(bi))
    assert status == 201, body
    context = browser.new_context(**{**CONTEXT, "locale": "ja-JP"})
    page = context.new_page()
    try:
        page.goto(f"{bi.url}/signin")
        page.get_by_label("表示言語").select_option("en")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert page.evaluate("document.documentElement.lang") == "en"
        screenshot(page, "en-signin-from-ja")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Cards", exact=True)).to_be_visible()
        token = api(bi, "POST", "/api/auth/login", {"email": email, "password": password})[1]["access_token"]
        assert api(bi, "GET", "/api/me", token=token, headers={"Accept-Language": "ja"})[1]["locale"] == "en"
    finally:
        context.close()
