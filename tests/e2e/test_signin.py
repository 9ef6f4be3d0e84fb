"""Signing in and out in a browser."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from ..serve_process import ROOT
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


BUNDLE_BUDGET = 500 * 1000  # bytes of our own JavaScript (minified, uncompressed) a page may load
ASSETS = ROOT / "static" / "dist" / "assets"


def chunks_loaded(entry: str, page: str) -> dict[str, int]:
    """The built chunks (name: bytes) a page may ever load: the entry, the page's chunk, what they import, and
    what the page's chunks import on demand (Markdown), with the English catalog; none of the other pages'."""
    def imports(name: str, on_demand: bool) -> set[str]:
        text = (ASSETS / name).read_text()
        return set(re.findall(r'import\([`"]\./([\w-]+\.js)[`"]\)' if on_demand else r'(?:from|import)\s*"\./([\w-]+\.js)"', text))

    def closure(roots: set[str]) -> set[str]:
        seen: set[str] = set()
        while roots - seen:
            name = (roots - seen).pop()
            seen.add(name)
            roots |= imports(name, on_demand=False)
        return seen

    [entry_chunk] = [p.name for p in ASSETS.glob(f"{entry}-*.js")]
    [page_chunk] = [p.name for p in ASSETS.glob(f"{page}-*.js")]
    static = closure({entry_chunk, page_chunk})
    later = {name for chunk in static - {entry_chunk} for name in imports(chunk, on_demand=True)}
    later |= {name for name in imports(entry_chunk, on_demand=True) if name.startswith("en-")}
    return {name: (ASSETS / name).stat().st_size for name in closure(static | later)}


def test_the_sign_in_and_dashboard_pages_load_under_500_kb_of_javascript(browser, bi):
    """Each page is its own chunk: signing in and watching a dashboard never load the code editor."""
    from .conftest import CONTEXT, api, token_of

    status, dashboard = api(bi, "POST", "/api/dashboards", {"schemaVersion": 1, "title": "容量", "parameters": [],
                                                            "cards": [], "layout": []}, token=token_of(bi))
    assert status == 201, dashboard
    context = browser.new_context(**CONTEXT)
    page = context.new_page()
    loaded: dict[str, int] = {}
    page.on("response", lambda response: loaded.__setitem__(response.url, len(response.body()))
            if "/assets/" in response.url and response.url.endswith(".js") else None)
    try:
        page.goto(f"{bi.url}/signin?next=/dashboards/{dashboard['id']}")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        signin = sum(loaded.values())
        sign_in(page, bi, f"/dashboards/{dashboard['id']}")
        expect(page.get_by_role("heading", name="容量")).to_be_visible()
        both = sum(loaded.values())
    finally:
        context.close()
    assert 0 < signin < both < BUNDLE_BUDGET, loaded
    assert not any("card-editor" in url for url in loaded), "the dashboard page loaded the code editor"
    built = chunks_loaded("index", "dashboard")  # and what only some dashboards load (Markdown, English)
    assert sum(built.values()) < BUNDLE_BUDGET and not any(name.startswith("card-editor") for name in built), built
