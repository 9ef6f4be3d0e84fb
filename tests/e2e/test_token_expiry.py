"""When the access token runs out, the page renews it from the sign-in cookie without a word; when the
sign-in itself has ended, the user signs in again in a dialog and keeps the code in the editor."""

from __future__ import annotations

import time
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from ..serve_process import Server
from .conftest import ADMIN_PASSWORD, api, screenshot, sign_in, start_bi, token_of

LIFETIME = 15  # seconds: the page must load and take the typing before it ends, on a loaded machine too


@pytest.fixture(scope="module")
def short_tokens(tmp_path_factory) -> Iterator[Server]:
    """A server whose sign-ins (access and refresh tokens) last a few seconds (card execution off: saving
    needs no kernel)."""
    yield from start_bi(tmp_path_factory.mktemp("short"), f"--AuthService.token_lifetime={LIFETIME}",
                        f"--AuthService.refresh_token_lifetime={LIFETIME}", "--ServeApp.local_executor=False")


@pytest.fixture(scope="module")
def short_access(tmp_path_factory) -> Iterator[Server]:
    """A server whose access tokens last a few seconds and sign-ins the default two weeks."""
    yield from start_bi(tmp_path_factory.mktemp("access"), f"--AuthService.token_lifetime={LIFETIME}",
                        "--ServeApp.local_executor=False")


def test_an_expired_access_token_is_renewed_without_asking(page: Page, short_access):
    """A save after the access token ran out goes through at once: the page renewed the token from the
    httpOnly refresh cookie, with no dialog."""
    sign_in(page, short_access, "/cards/new")
    signed_in = time.monotonic()
    page.get_by_placeholder("Untitled card").fill("更新のテスト")
    page.locator(".cm-content").click()
    page.keyboard.insert_text("1 + 1\n")
    time.sleep(max(0.0, signed_in + LIFETIME + 1 - time.monotonic()))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as version 1.")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)


def test_first_visit_pages_say_what_to_do(page: Page, short_tokens):
    """On a new server the empty cards and datasets pages say what to do first."""
    sign_in(page, short_tokens)
    expect(page.get_by_role("heading", name="No cards yet")).to_be_visible()
    expect(page.get_by_role("link", name="+ New card")).to_have_count(2)
    screenshot(page, "cards-empty")
    page.get_by_role("link", name="Datasets", exact=True).click()
    expect(page.get_by_role("heading", name="No datasets yet")).to_be_visible()
    screenshot(page, "datasets-empty")


def test_expired_token_signs_in_again_and_keeps_code(page: Page, short_tokens):
    """A save after the token ran out opens the sign-in dialog; after it the save goes through and
    the code typed before is still there."""
    sign_in(page, short_tokens, "/cards/new")
    signed_in = time.monotonic()  # after the token was made, however long signing in took
    page.get_by_placeholder("Untitled card").fill("期限切れのテスト")
    page.locator(".cm-content").click()
    page.keyboard.insert_text("print('まだここにあります')\n")
    time.sleep(max(0.0, signed_in + LIFETIME + 1 - time.monotonic()))

    page.get_by_role("button", name="Save").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Your session has ended")
    expect(dialog.get_by_label("Email")).to_have_value("admin@example.com")
    screenshot(page, "reauth-dialog")
    dialog.get_by_label("Password").fill(ADMIN_PASSWORD)
    dialog.get_by_role("button", name="Sign in").click()

    expect(page.get_by_text("Saved as version 1.")).to_be_visible()
    expect(dialog).to_be_hidden()
    expect(page.locator(".cm-content")).to_contain_text("print('まだここにあります')")
    card_id = page.url.rsplit("/", 1)[1]
    status, card = api(short_tokens, "GET", f"/api/cards/{card_id}", token=token_of(short_tokens))
    assert status == 200 and card["code"] == "print('まだここにあります')\n"


def test_signing_out_everywhere_ends_an_open_dashboard_at_once(page: Page, short_access):
    """Sign-out everywhere from elsewhere closes the open dashboard's socket (4401); the page cannot renew
    the revoked sign-in and asks to sign in again, instead of reconnecting for ever with a dead token."""
    token = token_of(short_access)
    status, dashboard = api(short_access, "POST", "/api/dashboards", {
        "schemaVersion": 1, "title": "営業会議", "parameters": [], "cards": [], "layout": []}, token=token)
    assert status == 201, dashboard
    sign_in(page, short_access, f"/dashboards/{dashboard['id']}")
    expect(page.get_by_role("heading", name="営業会議")).to_be_visible()
    assert api(short_access, "POST", "/api/auth/logout-everywhere", {}, token=token)[0] == 204
    expect(page.get_by_role("dialog")).to_contain_text("Your session has ended", timeout=10_000)
