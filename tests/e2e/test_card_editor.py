"""The card editor in a browser: streaming outputs with a Bokeh chart, saving, and a save conflict."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import api, screenshot, sign_in, token_of
from .test_datasets import cp932_csv

CODE = """from bokeh.plotting import figure
df = load_dataset("店舗売上")
display(df)
print("店舗ごとの売上を集計します")
totals = df.groupby("店舗", as_index=False)["売上"].sum()
display(totals)
p = figure(x_range=list(totals["店舗"]), title="店舗別売上", height=320, sizing_mode="stretch_width")
p.vbar(x=totals["店舗"], top=totals["売上"], width=0.8)
p
"""


def upload(bi, token: str, name: str) -> str:
    request = urllib.request.Request(f"{bi.url}/api/datasets?name={urllib.parse.quote(name)}", method="POST",
                                     data=cp932_csv(40), headers={"Authorization": f"Bearer {token}",
                                                                  "Content-Type": "text/csv"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["id"]


def type_code(page: Page, code: str) -> None:
    page.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(code)


def test_card_draws_chart_saves_and_reports_conflict(page: Page, bi):
    """Run streams text, a paged table and a Bokeh canvas; Save makes version 1; a save over
    someone else's newer version says so, keeps the code, and can overwrite on request."""
    token = token_of(bi)
    upload(bi, token, "店舗売上")
    sign_in(page, bi, "/cards/new")
    page.get_by_placeholder("Untitled card").fill("店舗別の売上")
    page.locator("details.picker > summary").click()
    page.get_by_label("店舗売上").check()
    page.get_by_placeholder("Untitled card").click()
    expect(page.locator(".picker-menu")).to_be_hidden()
    screenshot(page, "card-new")

    type_code(page, CODE)
    page.keyboard.press("Control+Enter")
    expect(page.locator(".run-status.busy")).to_be_visible()
    outputs = page.locator(".outputs")
    expect(outputs.locator(".output-bokeh canvas").first).to_be_visible(timeout=30_000)
    expect(outputs.locator(".output-stream")).to_have_text("店舗ごとの売上を集計します\n")
    rows, totals = outputs.locator(".output-table").nth(0), outputs.locator(".output-table").nth(1)
    expect(rows.locator(".pager-status")).to_have_text("Rows 1–20 of 40")
    rows.get_by_role("button", name="Next page").click()
    expect(rows.locator(".pager-status")).to_have_text("Rows 21–40 of 40")
    expect(rows.locator("tbody tr").first).to_contain_text("りんご20")
    expect(totals.locator("thead")).to_contain_text("店舗")
    expect(totals.locator("tbody")).to_contain_text("名古屋")
    expect(page.locator(".run-status.ok")).to_contain_text("Finished in")
    outputs.locator(".output-bokeh").scroll_into_view_if_needed()
    screenshot(page, "card-chart", also_wide=True)

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as version 1.")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"^{re.escape(bi.url)}/cards/[^/]+$"))
    card_id = page.url.rsplit("/", 1)[1]
    card = api(bi, "GET", f"/api/cards/{card_id}", token=token)[1]
    assert (card["title"], card["code"], card["version"]) == ("店舗別の売上", CODE, 1)
    status, _ = api(bi, "PUT", f"/api/cards/{card_id}", {
        "title": card["title"], "code": card["code"] + "# a colleague's change\n",
        "datasets": card["datasets"], "parameters": card["parameters"]}, token=token, headers={"If-Match": '"1"'})
    assert status == 200
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("# my change\n")
    page.get_by_role("button", name="Save").click()
    conflict = page.get_by_role("alert").filter(has_text="someone else saved this card")
    expect(conflict).to_contain_text("You started from version 1; the card is now at version 2.")
    expect(page.locator(".cm-content")).to_contain_text("# my change")
    screenshot(page, "card-conflict")

    conflict.get_by_role("button", name="Save mine anyway").click()
    expect(page.get_by_text("Saved as version 3.")).to_be_visible()
    assert api(bi, "GET", f"/api/cards/{card_id}", token=token)[1]["code"].endswith("# my change\n")

    page.get_by_role("link", name="Cards", exact=True).click()
    expect(page.get_by_role("link", name="店舗別の売上")).to_be_visible()
    screenshot(page, "cards-list")


def test_interrupt_and_draft_kept_across_reload(page: Page, bi):
    """Interrupt ends a running card with a KeyboardInterrupt while the elapsed time counts; a
    reload brings back the unsaved code."""
    sign_in(page, bi, "/cards/new")
    type_code(page, "import time\nprint('waiting')\ntime.sleep(8)\n")
    page.get_by_role("button", name="▶ Run").click()
    expect(page.locator(".output-stream")).to_have_text("waiting\n", timeout=20_000)
    expect(page.locator(".run-status.busy .elapsed")).not_to_have_text("0.0 s")
    screenshot(page, "card-running")
    page.get_by_role("button", name="■ Interrupt").click()
    expect(page.locator(".output-error")).to_contain_text("KeyboardInterrupt")
    expect(page.get_by_role("button", name="▶ Run")).to_be_enabled()
    expect(page.locator(".run-status")).to_contain_text("Interrupted in")
    screenshot(page, "card-error")

    page.reload()
    expect(page.get_by_text("Your unsaved changes are back.")).to_be_visible()
    expect(page.locator(".cm-content")).to_contain_text("time.sleep(8)")


PLOT_CODE = """import pandas as pd
from tqdm import tqdm
import ipywidgets
for _ in tqdm(range(3), mininterval=0):
    pass
pd.DataFrame({"売上": [120, 340, 260]}, index=["東京", "大阪", "名古屋"]).plot.bar(title="店舗別の売上")
ipywidgets.IntSlider(value=3)
"""


def test_plot_progress_bar_and_widget(page: Page, bi):
    """A matplotlib chart shows as an image, tqdm's bar as one line, a widget as a note on where widgets work."""
    sign_in(page, bi, "/cards/new")
    type_code(page, PLOT_CODE)
    page.keyboard.press("Control+Enter")
    outputs = page.locator(".outputs")
    image = outputs.locator("img.output-image")
    expect(image).to_be_visible(timeout=30_000)
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    assert image.evaluate("img => img.naturalWidth") > 300
    bar = outputs.locator(".output-stream.stderr")
    expect(bar).to_contain_text("100%")
    assert "\r" not in bar.text_content() and bar.text_content().strip().count("\n") == 0
    expect(outputs.get_by_text("Widgets are not shown in cards and dashboards.")).to_be_visible()
    image.scroll_into_view_if_needed()
    screenshot(page, "card-matplotlib")
    with page.expect_download() as saved:
        outputs.get_by_role("link", name="Save as PNG").click()
    assert saved.value.suggested_filename == "chart.png"
    assert Path(saved.value.path()).read_bytes().startswith(b"\x89PNG")


def test_auto_run_updates_outputs_as_you_type(page: Page, bi):
    """After a quick run, Auto-run is on: pausing in typing re-runs the card and replaces its outputs; code
    that does not parse is marked in the editor and not run, and the outputs stay."""
    sign_in(page, bi, "/cards/new")
    auto = page.get_by_label("Auto-run")
    expect(auto).not_to_be_checked()
    type_code(page, "total = 40 + 2\ntotal")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".outputs")).to_have_text("42")
    expect(auto).to_be_checked()  # the run took under a second

    page.keyboard.press("Control+End")
    page.keyboard.insert_text(" * 10")
    expect(page.locator(".outputs")).to_have_text("420")
    page.keyboard.insert_text(" * (")
    expect(page.locator(".run-status")).to_contain_text("Syntax error on line 2: not run")
    expect(page.locator(".cm-lintRange-error")).to_be_visible()
    expect(page.locator(".outputs")).to_have_text("420")
    screenshot(page, "card-auto-run-syntax")
    page.keyboard.insert_text("2)")
    expect(page.locator(".outputs")).to_have_text("840")
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)


def test_a_table_downloads_as_csv(page: Page, bi):
    """A DataFrame output's whole table downloads as CSV that Excel reads: UTF-8 with a BOM, or Shift_JIS."""
    sign_in(page, bi, "/cards/new")
    type_code(page, "import pandas as pd\npd.DataFrame({'店舗': ['東京', '大阪'] * 50, '売上': range(100)})")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_role("button", name="CSV (UTF-8)")).to_be_visible()
    screenshot(page, "card-table-downloads")
    with page.expect_download() as utf8:
        page.get_by_role("button", name="CSV (UTF-8)").click()
    body = Path(utf8.value.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf") and body.decode("utf-8-sig").splitlines()[:2] == ['"店舗","売上"', '"東京",0']
    with page.expect_download() as sjis:
        page.get_by_role("button", name="CSV (Shift_JIS)").click()
    assert len(Path(sjis.value.path()).read_bytes().decode("cp932").splitlines()) == 101


TYPED_FRAME = ("import pandas as pd\npd.DataFrame({'売上': [194852276, 1200], '年度': [2026, 2025], '率': [1234.5, 0.125],"
               " '日時': pd.to_datetime(['2026-12-06 14:05', '2026-01-02 00:00'])})")


def test_table_cells_read_as_each_locale_writes_them(browser, bi):
    """Integers are grouped except in id, code and year columns; dates read per locale at the data's own
    wall time (the browser is in Tokyo: nothing shifts)."""
    from .conftest import ADMIN_PASSWORD, CONTEXT

    email = "yamada@example.com"
    assert api(bi, "POST", "/api/users", {"email": email, "name": "山田", "password": ADMIN_PASSWORD},
               token=token_of(bi))[0] == 201
    expected = {"en-US": ["194,852,276", "2026", "1,234.5", "Dec 6, 2026, 02:05 PM"],
                "ja-JP": ["194,852,276", "2026", "1,234.5", "2026/12/06 14:05"]}
    for browser_locale, first_row in expected.items():
        context = browser.new_context(**{**CONTEXT, "locale": browser_locale})
        page = context.new_page()
        try:
            page.goto(f"{bi.url}/signin?next=/cards/new")
            page.locator("input[type=email]").fill(email)
            page.locator("input[type=password]").fill(ADMIN_PASSWORD)
            page.locator("button[type=submit]").click()
            expect(page.locator(".cm-content")).to_be_visible()
            type_code(page, TYPED_FRAME)
            page.keyboard.press("Control+Enter")
            cells = page.locator(".output-table tbody tr").first.locator("td")
            expect(cells).to_have_text(first_row)
            expect(page.locator(".output-table tbody tr").nth(1).locator("td").last).to_have_text(
                "Jan 2, 2026" if browser_locale == "en-US" else "2026/01/02")
        finally:
            context.close()


MARKDOWN_CODE = '''from IPython.display import Markdown
Markdown("""# 売上の概要
**太字**と`コード` <script>window.owned = 1</script> <b>生のHTML</b>

| 店舗 | 売上 |
|---|---|
| 東京 | 120 |

[危ない](javascript:window.owned=2) [資料](https://example.com/report)
""")
'''


def test_markdown_renders_without_the_kernels_html(page: Page, bi):
    """IPython's Markdown shows as headings, emphasis, tables and links; raw HTML shows as text, and a
    javascript: link is no link."""
    sign_in(page, bi, "/cards/new")
    type_code(page, MARKDOWN_CODE)
    page.keyboard.press("Control+Enter")
    shown = page.locator(".output-markdown")
    expect(shown.get_by_role("heading", name="売上の概要")).to_be_visible()
    expect(shown.locator("strong")).to_have_text("太字")
    expect(shown.locator("table td").first).to_have_text("東京")
    expect(shown).to_contain_text("<script>window.owned = 1</script> <b>生のHTML</b>")
    assert shown.locator("script, b").count() == 0 and page.evaluate("window.owned") is None
    expect(shown.get_by_role("link")).to_have_count(1)
    link = shown.get_by_role("link", name="資料")
    assert (link.get_attribute("href"), link.get_attribute("target")) == ("https://example.com/report", "_blank")
    screenshot(page, "card-markdown")


STYLED_CODE = """import pandas as pd
df = pd.DataFrame({"店舗": ["東京", "大阪", "名古屋"], "売上": [120, 80, 30]})
(df.style.bar(subset=["売上"], color="#d65f5f").set_caption("店舗別売上")
   .set_table_styles([{"selector": "", "props": "position: fixed; top: 0; z-index: 99999"}]))
"""


def test_a_styled_table_shows_its_bars_in_the_editor_and_on_a_dashboard(page: Page, bi):
    """DataFrame.style.bar() draws its gradient bars in the editor and on a dashboard tile; the position
    it asked for stays out: the table sits in its output."""
    token = token_of(bi)
    status, card = api(bi, "POST", "/api/cards", {"title": "棒付きの表", "code": STYLED_CODE}, token=token)
    assert status == 201, card
    status, dashboard = api(bi, "POST", "/api/dashboards", {
        "schemaVersion": 1, "title": "表の色", "cards": [{"key": "styled", "card": card["id"]}],
        "layout": [{"card": "styled", "x": 0, "y": 0, "w": 8, "h": 5}]}, token=token)
    assert status == 201, dashboard

    def bars_shown(where) -> None:
        table = where.locator(".output-html-table table")
        expect(table.locator("caption")).to_have_text("店舗別売上", timeout=30_000)
        expect(table.locator("td")).to_have_count(6)
        bar = table.locator("td", has_text="120")
        assert "linear-gradient" in bar.evaluate("td => getComputedStyle(td).backgroundImage")
        assert bar.evaluate("td => td.getBoundingClientRect().width") > 50
        assert table.evaluate("t => getComputedStyle(t).position") == "static"

    sign_in(page, bi, f"/cards/{card['id']}")
    page.get_by_role("button", name="▶ Run").click()
    bars_shown(page.locator(".outputs"))
    screenshot(page, "card-styled-table")
    page.goto(f"{bi.url}/dashboards/{dashboard['id']}")
    bars_shown(page.locator(".tile").first)
    screenshot(page, "dashboard-styled-table")
