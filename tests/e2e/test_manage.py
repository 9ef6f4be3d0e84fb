"""Everything without curl, in Japanese: users (admins), my password and tokens, the audit log, a card's
version history and parameters, renaming and deleting a dataset, a new card from a dataset. Each action
done in the browser is checked through the API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import CONTEXT, api, screenshot, sign_in, token_of
from .test_card_editor import upload
from .test_japanese import latin_words

PASSWORD = "a long enough password"
# The clients the token section names, and the first admin's name (made from its email: a user's name).
ALSO_ALLOWED = {"admin"}


def japanese_only(page: Page) -> None:
    assert [word for word in latin_words(page) if word not in ALSO_ALLOWED] == []


def add_user(bi, email: str, name: str, role: str = "member") -> str:
    """A user made through the API; their token."""
    status, body = api(bi, "POST", "/api/users", {"email": email, "name": name, "password": PASSWORD, "role": role},
                       token=token_of(bi))
    assert status == 201, body
    return login(bi, email)


def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Waits for what the page sent to reach the server."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the change did not reach the server"
        time.sleep(0.1)


def login(bi, email: str, password: str = PASSWORD) -> str:
    status, body = api(bi, "POST", "/api/auth/login", {"email": email, "password": password})
    assert status == 200, body
    return body["access_token"]


@pytest.fixture
def signed_in(browser: Browser, bi) -> Iterator[Callable[[str, str], Page]]:
    """Opens a Japanese browser signed in as a user at a path; fails the test on any script error."""
    contexts = []
    errors: list[str] = []

    def open_as(email: str, path: str) -> Page:
        context = browser.new_context(**{**CONTEXT, "locale": "ja-JP"})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{bi.url}/signin?next={path}")
        page.get_by_label("メールアドレス").fill(email)
        page.get_by_label("パスワード").fill(PASSWORD)
        page.get_by_role("button", name="ログイン").click()
        expect(page.get_by_role("navigation", name="メインメニュー")).to_be_visible()
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert not errors, errors


def user_by_email(bi, token: str, email: str) -> dict:
    return next(u for u in api(bi, "GET", "/api/users?limit=200", token=token)[1]["users"] if u["email"] == email)


def test_admin_manages_users(signed_in, bi):
    """An admin adds a user, makes them an admin and a member again, deactivates and activates them, and
    resets their password to a one-time password shown once."""
    admin = add_user(bi, "kanri@example.com", "管理 花子", "admin")
    page = signed_in("kanri@example.com", "/users")
    expect(page.get_by_role("heading", name="ユーザー", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="監査ログ")).to_be_visible()

    page.get_by_role("button", name="ユーザーを追加").click()
    dialog = page.get_by_role("dialog", name="ユーザーを追加")
    dialog.get_by_label("名前").fill("高橋 次郎")
    dialog.get_by_label("メールアドレス").fill("takahashi@example.com")
    dialog.get_by_label("初期パスワード").fill(PASSWORD)
    japanese_only(page)
    screenshot(page, "ja-users-add")
    dialog.get_by_role("button", name="追加").click()
    expect(page.get_by_text("「高橋 次郎」を追加しました。")).to_be_visible()
    added = user_by_email(bi, admin, "takahashi@example.com")
    assert (added["name"], added["role"], added["active"]) == ("高橋 次郎", "member", True)
    login(bi, "takahashi@example.com")

    row = page.locator("tr[data-email='takahashi@example.com']")
    row.get_by_label("「高橋 次郎」の役割").select_option("admin")
    expect(page.get_by_text("「高橋 次郎」を変更しました。")).to_be_visible()
    assert user_by_email(bi, admin, "takahashi@example.com")["role"] == "admin"
    row.get_by_label("「高橋 次郎」の役割").select_option("member")
    until(lambda: user_by_email(bi, admin, "takahashi@example.com")["role"] == "member")

    row.get_by_role("button", name="無効化").click()
    confirm = page.get_by_role("dialog", name="ユーザーを無効化")
    expect(confirm).to_contain_text("「高橋 次郎」（takahashi@example.com）を無効化しますか？")
    screenshot(page, "ja-users-deactivate")
    confirm.get_by_role("button", name="無効化").click()
    expect(row.get_by_text("無効", exact=True)).to_be_visible()
    assert user_by_email(bi, admin, "takahashi@example.com")["active"] is False
    status, body = api(bi, "POST", "/api/auth/login", {"email": "takahashi@example.com", "password": PASSWORD})
    assert (status, body["error"]["code"]) == (401, "account_deactivated")
    row.get_by_role("button", name="有効化").click()
    expect(row.get_by_text("有効", exact=True)).to_be_visible()
    assert user_by_email(bi, admin, "takahashi@example.com")["active"] is True

    row.get_by_role("button", name="パスワードをリセット").click()
    page.get_by_role("dialog", name="パスワードをリセット").get_by_role("button", name="パスワードをリセット").click()
    shown = page.get_by_role("dialog", name="「高橋 次郎」の一時パスワード")
    expect(shown).to_contain_text("今回しか表示されません")
    one_time = shown.locator(".secret-value").inner_text()
    japanese_only(page)
    screenshot(page, "ja-users-reset")
    shown.get_by_role("button", name="閉じる").click()
    expect(shown).to_be_hidden()
    status, body = api(bi, "POST", "/api/auth/login", {"email": "takahashi@example.com", "password": one_time})
    assert (status, body["error"]["code"]) == (403, "password_change_required")
    expect(row).to_contain_text("次回ログイン時にパスワードを変更")
    japanese_only(page)
    screenshot(page, "ja-users")


def test_member_changes_password_and_manages_tokens(signed_in, bi):
    """A member changes their password (the old one stops working) and creates a personal access token,
    shown once, that the Jupyter API takes, then revokes it; they see no admin pages."""
    add_user(bi, "yamada@example.com", "山田 太郎")
    page = signed_in("yamada@example.com", "/account")
    expect(page.get_by_role("heading", name="アカウント")).to_be_visible()
    expect(page.get_by_role("link", name="ユーザー", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="監査ログ")).to_have_count(0)

    page.get_by_label("現在のパスワード").fill(PASSWORD)
    page.get_by_label("新しいパスワード", exact=True).fill("a brand new password")
    page.get_by_label("新しいパスワード（確認）").fill("a different password")
    page.get_by_role("button", name="パスワードを変更").click()
    expect(page.get_by_text("確認用のパスワードが一致しません。")).to_be_visible()
    page.get_by_label("新しいパスワード（確認）").fill("a brand new password")
    page.get_by_role("button", name="パスワードを変更").click()
    expect(page.get_by_text("パスワードを変更しました。")).to_be_visible()
    token = login(bi, "yamada@example.com", "a brand new password")
    assert api(bi, "POST", "/api/auth/login", {"email": "yamada@example.com", "password": PASSWORD})[0] == 401

    page.get_by_label("トークン名").fill("ノートPC")
    page.get_by_role("button", name="トークンを作成").click()
    shown = page.get_by_role("dialog", name="トークン「ノートPC」を作成しました")
    expect(shown).to_contain_text("今回しか表示されません")
    secret = shown.locator(".secret-value").inner_text()
    japanese_only(page)
    screenshot(page, "ja-account-token")
    shown.get_by_role("button", name="閉じる").click()
    tokens = api(bi, "GET", "/api/me/tokens", token=token)[1]["tokens"]
    assert [t["name"] for t in tokens] == ["ノートPC"]
    assert api(bi, "GET", "/api/kernelspecs", token=secret)[0] == 200
    expect(page.locator("tr[data-token='ノートPC']")).to_be_visible()
    japanese_only(page)
    screenshot(page, "ja-account")

    page.get_by_role("button", name="トークン「ノートPC」を取り消す").click()
    page.get_by_role("dialog", name="トークンを取り消す").get_by_role("button", name="取り消す").click()
    expect(page.get_by_text("トークン「ノートPC」を取り消しました。")).to_be_visible()
    assert api(bi, "GET", "/api/me/tokens", token=token)[1]["tokens"] == []
    assert api(bi, "GET", "/api/kernelspecs", token=secret)[0] == 401


def test_admin_reads_the_audit_log(signed_in, bi):
    """The audit log pages newest first and filters by event and user, as the API does."""
    add_user(bi, "kansa@example.com", "監査 三郎", "admin")
    assert api(bi, "POST", "/api/auth/login", {"email": "kansa@example.com", "password": "wrong password"})[0] == 401
    time.sleep(1.5)  # a wrong password holds the account back at this address for 1 s
    page = signed_in("kansa@example.com", "/audit")
    expect(page.get_by_role("heading", name="監査ログ")).to_be_visible()
    expect(page.locator("tr[data-event]").first).to_be_visible()
    page.get_by_label("イベント", exact=True).fill("login_failed")
    page.get_by_label("ユーザー", exact=True).fill("kansa@example.com")
    page.get_by_role("button", name="絞り込む").click()
    rows = page.locator("tr[data-event]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ログイン失敗")
    token = login(bi, "kansa@example.com")
    listed = api(bi, "GET", "/api/audit?event=login_failed&user=kansa@example.com", token=token)[1]["events"]
    assert len(listed) == 1 and listed[0]["event"] == "login_failed"
    japanese_only(page)
    screenshot(page, "ja-audit")
    page.get_by_label("開始日").fill("2099-01-01")  # from a day to come: nothing yet
    page.get_by_role("button", name="絞り込む").click()
    expect(page.get_by_text("条件に合う記録はありません。")).to_be_visible()
    assert api(bi, "GET", "/api/audit?since=2099-01-01&user=kansa@example.com", token=token)[1]["events"] == []


def test_card_history_and_parameters(signed_in, bi):
    """A card's versions with a diff against the current one; restoring one makes a new version; typed
    parameters with Japanese labels are added, refused with a clear message for a bad name, and removed."""
    token = add_user(bi, "kato@example.com", "加藤 恵")
    dataset = upload(bi, token, "店舗売上")
    first = 'df = load_dataset("店舗売上")\ndf.head()\n'
    status, card = api(bi, "POST", "/api/cards", {"title": "店舗別", "code": first, "datasets": [dataset]}, token=token)
    assert status == 201, card
    second = 'df = load_dataset("店舗売上")\ndf.groupby("店舗")["売上"].sum()\n'
    status, _ = api(bi, "PUT", f"/api/cards/{card['id']}", {"title": "店舗別", "code": second, "datasets": [dataset],
                                                            "parameters": []}, token=token, headers={"If-Match": '"1"'})
    assert status == 200
    page = signed_in("kato@example.com", f"/cards/{card['id']}")
    page.get_by_role("button", name="バージョン履歴").click()
    history = page.get_by_role("dialog", name="「店舗別」のバージョン履歴")
    expect(history.locator("li[data-version]")).to_have_count(2)
    expect(history.locator("li[data-version='1']")).to_contain_text("加藤 恵")
    history.locator("li[data-version='1'] button").click()
    expect(history.locator(".diff-line.del")).to_have_text(['- df.groupby("店舗")["売上"].sum()'])
    expect(history.locator(".diff-line.add")).to_have_text(["+ df.head()"])
    japanese_only(page)
    screenshot(page, "ja-card-history")
    history.get_by_role("button", name="バージョン1を復元").click()
    page.get_by_role("dialog", name="バージョン1を復元").get_by_role("button", name="復元").click()
    expect(page.get_by_text("バージョン3として復元しました。")).to_be_visible()
    restored = api(bi, "GET", f"/api/cards/{card['id']}", token=token)[1]
    assert (restored["version"], restored["code"]) == (3, first)
    expect(page.locator(".cm-content")).to_contain_text("df.head()")

    page.get_by_role("button", name="パラメータ", exact=True).click()
    params = page.get_by_role("dialog", name="カードのパラメータ")
    params.get_by_role("button", name="＋ パラメータを追加").click()
    params.get_by_label("名前（コード用）").fill("地域")
    params.get_by_label("表示名").fill("地域")
    params.get_by_label("種類").select_option("choice")
    params.get_by_label("選択肢（カンマ区切り）").fill("東京, 大阪")
    params.get_by_label("既定値").fill("東京")
    params.get_by_role("button", name="保存").click()
    expect(params.get_by_role("alert")).to_contain_text("名前「地域」は使えません。")
    japanese_only(page)
    screenshot(page, "ja-card-parameters")
    params.get_by_label("名前（コード用）").fill("class")
    params.get_by_role("button", name="保存").click()
    expect(params.get_by_role("alert")).to_contain_text("「class」はPythonの予約語のため使えません。")
    params.get_by_label("名前（コード用）").fill("region")
    params.get_by_role("button", name="保存").click()
    expect(params).to_be_hidden()
    expect(page.get_by_text("バージョン4として保存しました。")).to_be_visible()
    saved = api(bi, "GET", f"/api/cards/{card['id']}", token=token)[1]
    assert saved["parameters"] == [{"name": "region", "type": "choice", "default": "東京", "choices": ["東京", "大阪"],
                                    "label": "地域"}]
    expect(page.get_by_role("button", name="パラメータ（1）")).to_be_visible()

    page.get_by_role("button", name="パラメータ（1）").click()
    params.get_by_role("button", name="パラメータ「region」を削除").click()
    params.get_by_role("button", name="保存").click()
    expect(page.get_by_text("バージョン5として保存しました。")).to_be_visible()
    assert api(bi, "GET", f"/api/cards/{card['id']}", token=token)[1]["parameters"] == []


def test_dataset_rename_versions_new_card_and_delete(signed_in, bi):
    """Renaming keeps the old name working for saved cards; the versions say who uploaded them; a new card
    from the dataset starts with load_dataset of its name and runs; deleting lists the cards that read it."""
    token = add_user(bi, "ito@example.com", "伊藤 誠")
    dataset = upload(bi, token, "売上")
    status, card = api(bi, "POST", "/api/cards", {"title": "売上の合計", "code": 'int(load_dataset("売上")["売上"].sum())',
                                                  "datasets": [dataset]}, token=token)
    assert status == 201, card
    page = signed_in("ito@example.com", f"/datasets/{dataset}")
    expect(page.locator(".dataset-versions tr[data-version]")).to_have_count(1)
    expect(page.locator(".dataset-versions tr[data-version='1']")).to_contain_text("伊藤 誠")

    page.get_by_role("button", name="名前を変更").click()
    rename = page.get_by_role("dialog", name="データセット「売上」の名前を変更")
    rename.get_by_label("新しい名前").fill("売上2024")
    japanese_only(page)
    screenshot(page, "ja-dataset-rename")
    rename.get_by_role("button", name="変更").click()
    expect(page.get_by_role("heading", name="売上2024")).to_be_visible()
    expect(page.get_by_text("以前の名前：「売上」")).to_be_visible()
    renamed = api(bi, "GET", f"/api/datasets/{dataset}", token=token)[1]
    assert (renamed["name"], renamed["aliases"]) == ("売上2024", ["売上"])
    ran = api(bi, "POST", f"/api/cards/{card['id']}/run", {}, token=token)
    assert ran[0] == 200 and ran[1]["status"] == "ok", ran  # the saved card loads it by its old name

    page.get_by_role("link", name="このデータセットで新しいカード").click()
    expect(page.locator(".cm-content")).to_contain_text('df = load_dataset("売上2024")')
    page.get_by_role("button", name="▶ 実行").click()
    expect(page.locator(".output-pane table").first).to_be_visible(timeout=30_000)
    screenshot(page, "ja-card-from-dataset")

    page.goto(f"{bi.url}/datasets/{dataset}")
    page.get_by_role("button", name="削除").click()
    confirm = page.get_by_role("dialog", name="データセット「売上2024」を削除")
    expect(confirm).to_contain_text("このデータセットを読み込むカードが1件あります。")
    expect(confirm.get_by_role("link", name="売上の合計")).to_be_visible()
    japanese_only(page)
    screenshot(page, "ja-dataset-delete")
    confirm.get_by_role("button", name="キャンセル").click()
    assert api(bi, "GET", f"/api/datasets/{dataset}", token=token)[0] == 200
    page.get_by_role("button", name="削除").click()
    page.get_by_role("dialog", name="データセット「売上2024」を削除").get_by_role("button", name="削除").click()
    expect(page.get_by_role("heading", name="データセット", exact=True)).to_be_visible()
    assert api(bi, "GET", f"/api/datasets/{dataset}", token=token)[0] == 404


def test_the_pages_in_english(page: Page, bi):
    """The same pages read in English for an English browser (screenshots of the walk in both languages)."""
    admin = token_of(bi)
    dataset = upload(bi, admin, "sales")
    status, card = api(bi, "POST", "/api/cards", {"title": "Totals", "code": "1", "datasets": [dataset]}, token=admin)
    assert status == 201, card
    sign_in(page, bi, "/users")
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    screenshot(page, "users")
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Personal access tokens")).to_be_visible()
    screenshot(page, "account")
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("tr[data-event]").first).to_be_visible()
    screenshot(page, "audit")
    page.goto(f"{bi.url}/datasets/{dataset}")
    expect(page.get_by_role("heading", name="Version history")).to_be_visible()
    screenshot(page, "dataset-versions")
    page.goto(f"{bi.url}/cards/{card['id']}")
    page.get_by_role("button", name="Version history").click()
    page.get_by_role("dialog", name="Version history of “Totals”").locator("li[data-version='1'] button").click()
    expect(page.get_by_text("Version 1 has the same code as the current version 1.")).to_be_visible()
    screenshot(page, "card-history")
