"""The screenshot walk: every page and dialog of the UI, in Japanese and in English, saved as
``screenshots/walk-<language>-<nn>-<page>.png`` for people to look at. In Japanese, visible text in Latin
letters fails the walk unless it is code, a user's email, or a product or format name (``latin_words`` of
test_japanese); the data here is named in Japanese, so no user-chosen name is Latin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import CONTEXT, api, screenshot, token_of
from .test_card_editor import CODE, upload
from .test_japanese import latin_words

PASSWORD = "a long enough password"
WALKER = "walker@example.com"
OWNER = "lender@example.com"
ADMIN = "walk-admin@example.com"
REGION = [{"name": "region", "type": "choice", "label": "地域", "default": "関東", "choices": ["関東", "関西"]}]


@dataclass
class World:
    dataset: str
    card: str
    dashboard: str
    shared: str
    shared_card: str


@pytest.fixture(scope="module")
def world(bi) -> World:
    """The walker's dataset, card and dashboard, and a dashboard someone else shares with them to view."""
    admin = token_of(bi)
    tokens = {}
    for email, name, role in ((WALKER, "歩 太郎", "member"), (OWNER, "貸手 花子", "member"), (ADMIN, "管理 次郎", "admin")):
        status, body = api(bi, "POST", "/api/users", {"email": email, "name": name, "password": PASSWORD, "role": role},
                           token=admin)
        assert status == 201, body
        tokens[email] = api(bi, "POST", "/api/auth/login", {"email": email, "password": PASSWORD})[1]["access_token"]
    token = tokens[WALKER]
    dataset = upload(bi, token, "店舗売上")
    status, card = api(bi, "POST", "/api/cards", {"title": "店舗別売上", "code": CODE, "datasets": [dataset],
                                                  "parameters": []}, token=token)
    assert status == 201, card
    status, dashboard = api(bi, "POST", "/api/dashboards", {
        "schemaVersion": 1, "title": "営業の状況", "description": "店舗ごとの売上と地域の数字です。", "parameters": REGION,
        "refresh": {"every_seconds": 3600},
        "cards": [{"key": "sales", "card": card["id"]},
                  {"key": "region", "title": "地域の数字", "code": "print(f'地域: {region}')", "parameters": REGION}],
        "layout": [{"card": "sales", "x": 0, "y": 0, "w": 8, "h": 7}, {"card": "region", "x": 8, "y": 0, "w": 4, "h": 3}]},
        token=token)
    assert status == 201, dashboard
    status, shared = api(bi, "POST", "/api/dashboards", {
        "schemaVersion": 1, "title": "全社の指標", "parameters": REGION,
        "cards": [{"key": "region", "title": "地域の指標", "code": "print(f'地域: {region}')", "parameters": REGION}],
        "layout": [{"card": "region", "x": 0, "y": 0, "w": 6, "h": 3}]}, token=tokens[OWNER])
    assert status == 201, shared
    status, body = api(bi, "PUT", f"/api/dashboards/{shared['id']}/shares", {"email": WALKER, "permission": "view"},
                       token=tokens[OWNER])
    assert status == 200, body
    return World(dataset, card["id"], dashboard["id"], shared["id"], shared["document"]["cards"][0]["card"])


def steps(bi, world: World) -> list[tuple[str, Callable[[Page], None]]]:
    """What to do before each screenshot; each waits for what the page shows (by CSS, not by its words)."""
    url = bi.url

    def sign_in_page(page: Page) -> None:
        page.goto(f"{url}/signin?next=/cards")
        expect(page.locator("input[type=password]")).to_be_visible()

    def signed_in(page: Page) -> None:
        page.locator("input[type=email]").fill(WALKER)
        page.locator("input[type=password]").fill(PASSWORD)
        page.locator("button[type=submit]").click()
        expect(page.locator("table.list tbody tr")).to_have_count(2)  # the card, and the dashboard's inline one

    def editor(page: Page) -> None:
        page.goto(f"{url}/cards/{world.card}")
        page.locator(".toolbar button.primary").click()
        expect(page.locator(".output-pane .output-bokeh canvas").first).to_be_visible(timeout=30_000)
        expect(page.locator(".run-status.ok")).to_be_visible()

    def editor_dialog(button: int) -> Callable[[Page], None]:
        def open_dialog(page: Page) -> None:
            page.keyboard.press("Escape")
            page.locator(".editor-page .page-head button.ghost").nth(button).click()
            expect(page.locator("dialog[open]")).to_be_visible()
            if button == 0:  # the parameters: a row, refused for its Japanese name
                page.locator("dialog[open] .param-editor button.secondary").click()
                page.locator("dialog[open] input[name=name]").fill("地域")
                page.locator("dialog[open] input[name=label]").fill("地域")
                page.locator("dialog[open] .dialog-actions button.primary").click()
                expect(page.locator("dialog[open] .param-row .form-error")).not_to_be_empty()
            else:  # the history: its one version, with its code
                expect(page.locator("dialog[open] .history-item")).to_have_count(1)
        return open_dialog

    def editor_error(page: Page) -> None:
        page.goto(f"{url}/cards/new")
        page.locator(".cm-content").click()
        page.keyboard.insert_text("import os\n")
        page.keyboard.press("Control+Enter")
        expect(page.locator(".output-pane .output-error")).to_be_visible(timeout=30_000)

    def dataset_dialog(button: int) -> Callable[[Page], None]:
        def open_dialog(page: Page) -> None:
            page.keyboard.press("Escape")
            page.locator(".page-head button.ghost").nth(button).click()
            expect(page.locator("dialog[open] .dialog-actions")).to_be_visible()
            if button == 1:  # delete: names the card that reads it
                expect(page.locator("dialog[open] .reader-list li")).to_have_count(1)
        return open_dialog

    def datasets(page: Page) -> None:
        page.goto(f"{url}/datasets")
        expect(page.locator("table.list tbody tr")).to_have_count(1)

    def dataset(page: Page) -> None:
        page.goto(f"{url}/datasets/{world.dataset}")
        expect(page.locator("table.data tbody tr").first).to_be_visible()

    def dashboards(page: Page) -> None:
        page.goto(f"{url}/dashboards")
        expect(page.locator("table.list tbody tr")).to_have_count(2)

    def dashboard(page: Page) -> None:
        page.goto(f"{url}/dashboards/{world.dashboard}")
        expect(page.locator(".tile .output-bokeh canvas").first).to_be_visible(timeout=30_000)
        expect(page.locator('.tile[data-key="region"] .output-stream')).to_be_visible(timeout=30_000)

    def menu(item: int) -> Callable[[Page], None]:
        def open_dialog(page: Page) -> None:
            page.keyboard.press("Escape")
            page.locator(".menu-toggle").click()
            page.locator(".menu-items button").nth(item).click()
            expect(page.locator("dialog[open]")).to_be_visible()
            if item == 1:
                expect(page.locator("dialog[open] .version-row")).to_have_count(1)
        return open_dialog

    def share(page: Page) -> None:
        page.keyboard.press("Escape")
        page.locator(".dash-actions button.ghost").nth(1).click()
        expect(page.locator("dialog[open] .share-list li")).to_have_count(1)

    def editing(page: Page) -> None:
        page.keyboard.press("Escape")
        page.locator(".dash-actions button.secondary").click()
        expect(page.locator(".edit-hint")).to_be_visible()

    def tv(page: Page) -> None:
        page.goto(f"{url}/dashboards/{world.dashboard}?tv=1")
        expect(page.locator(".tile .output-bokeh canvas").first).to_be_visible(timeout=30_000)

    def shared(page: Page) -> None:
        page.goto(f"{url}/dashboards/{world.shared}")
        expect(page.locator(".tile .output-stream")).to_be_visible(timeout=30_000)

    def viewer(page: Page) -> None:
        page.locator(".tile-open").click()
        page.locator(".viewer-run button[type=submit]").click()
        expect(page.locator(".output-pane .output-stream")).to_be_visible(timeout=30_000)

    def missing(page: Page) -> None:
        page.goto(f"{url}/dashboards/0123456789abcdef0123456789abcdef")
        expect(page.locator(".dash-gone")).to_be_visible()

    def account(page: Page) -> None:
        page.goto(f"{url}/account")
        expect(page.locator("input[type=password]").first).to_be_visible()

    def users(page: Page) -> None:
        page.goto(f"{url}/cards")
        page.locator(".user-actions button.ghost").click()  # signed out: the admin signs in
        expect(page.locator("input[type=email]")).to_be_visible()
        page.goto(f"{url}/signin?next=/users")
        page.locator("input[type=email]").fill(ADMIN)
        page.locator("input[type=password]").fill(PASSWORD)
        page.locator("button[type=submit]").click()
        expect(page.locator(f'table.users-list tr[data-email="{ADMIN}"]')).to_be_visible()

    def user_add(page: Page) -> None:
        page.locator(".page-head button.primary").click()
        expect(page.locator("dialog[open] form#user-add")).to_be_visible()

    def audit(page: Page) -> None:
        page.keyboard.press("Escape")
        page.goto(f"{url}/audit")
        expect(page.locator("table.audit-list tbody tr").first).to_be_visible()

    def collapsed(page: Page) -> None:  # as the admin, whose lists hold what other modules made (in English)
        page.goto(f"{url}/users")
        page.locator(".sidebar-toggle").click()
        expect(page.locator(".shell.collapsed")).to_be_visible()

    return [("signin", sign_in_page), ("cards", signed_in), ("card-editor", editor),
            ("card-parameters", editor_dialog(0)), ("card-history", editor_dialog(1)), ("card-error", editor_error),
            ("datasets", datasets), ("dataset", dataset), ("dataset-rename", dataset_dialog(0)),
            ("dataset-delete", dataset_dialog(1)), ("dashboards", dashboards), ("dashboard", dashboard),
            ("dashboard-settings", menu(0)), ("dashboard-versions", menu(1)), ("dashboard-share", share),
            ("dashboard-editing", editing), ("dashboard-tv", tv), ("dashboard-shared", shared), ("card-viewer", viewer),
            ("dashboard-missing", missing), ("account", account), ("users", users), ("user-add", user_add),
            ("audit", audit), ("sidebar-collapsed", collapsed)]


@pytest.mark.parametrize("language", ["ja", "en"])
def test_walk_every_page(browser: Browser, bi, world: World, language: str):
    context = browser.new_context(**{**CONTEXT, "locale": "ja-JP" if language == "ja" else "en-US"})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    latin: dict[str, list[str]] = {}
    try:
        for number, (name, step) in enumerate(steps(bi, world), 1):
            step(page)
            page.wait_for_timeout(300)  # fonts and the last layout settle
            screenshot(page, f"walk-{language}-{number:02}-{name}")
            assert page.evaluate("document.documentElement.lang") == language
            if language == "ja" and (words := latin_words(page)):
                latin[name] = words
    finally:
        context.close()
    assert latin == {}, "Latin text on Japanese pages (page: words)"
    assert not errors, errors
