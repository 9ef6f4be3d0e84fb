"""Signing in and out in a browser."""

from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from .conftest import ADMIN_EMAIL, screenshot, sign_in


def test_sign_in_and_out(page: Page, bi):
    """A wrong password is refused with a message; the right one opens the cards; sign out returns."""
    page.goto(bi.url + "/")
    expect(page).to_have_url(f"{bi.url}/signin?next=%2Fcards")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "signin")

    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That email and password do not match.")
    screenshot(page, "signin-wrong-password")

    time.sleep(1.2)  # after a failure this account waits a second at this address (then 2, 4, ...)
    sign_in(page, bi)
    expect(page).to_have_url(bi.url + "/cards")
    expect(page.get_by_role("heading", name="Cards", exact=True)).to_be_visible()
    expect(page.get_by_text(ADMIN_EMAIL)).to_be_visible()
    screenshot(page, "cards")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(bi.url + "/datasets")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
