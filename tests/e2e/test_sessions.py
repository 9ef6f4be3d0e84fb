"""Sessions that never get in the way, freshness you can trust, errors a person understands, in a
Japanese browser (and the same two screens in English): the session limit lists the open sessions and
closes one; leaving the editor frees its session at once; a tile says when and why its output was
computed, that new data is coming, and Re-run runs past the cache; a timeout says so above the
traceback."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.kernels.sandbox.helpers import require

from ..serve_process import Server
from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, CONTEXT, api, screenshot, start_bi, token_of

EMAIL = "suzuki@example.com"
PASSWORD = "a long enough password"
WALL_SECONDS = 3
CARD = "import time\ntime.sleep(1.5)\ndf = load_dataset('売上')\nprint('合計', int(df['売上'].sum()))"


@pytest.fixture(scope="module")
def bi2(tmp_path_factory) -> Iterator[Server]:
    """A server of its own: two interactive sessions per user (the limit is quick to reach), one card run at a
    time per user (a tile waits its turn), a 3 s wall clock."""
    require(os.geteuid() == 0, "the local executor agent needs root to sandbox kernels")
    yield from start_bi(tmp_path_factory.mktemp("bi-sessions"), "--ServeApp.local_executor_pool_size=1",
                        "--KernelPool.sessions_per_user=2", "--CardRunner.runs_per_user=1",
                        f"--KernelPool.execution_timeout={WALL_SECONDS}")


def csv_upload(server: Server, token: str, body: str, dataset_id: str | None = None) -> dict[str, Any]:
    path = f"/api/datasets/{dataset_id}/versions" if dataset_id else "/api/datasets?name=%E5%A3%B2%E4%B8%8A"
    request = urllib.request.Request(server.url + path, method="POST", data=body.encode(), headers={
        "Content-Type": "text/csv", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def held(server: Server, token: str) -> int:
    status, body = api(server, "GET", "/api/card-sessions", token=token)
    assert status == 200, body
    return body["held"]


def open_sessions(server: Server, token: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        status, body = api(server, "POST", "/api/card-sessions", {"datasets": []}, token=token)
        assert status == 201, body
        ids.append(body["id"])
    return ids


def signed_in(browser: Browser, server: Server, locale: str, email: str, password: str, next_path: str,
              clock: bool = False) -> Page:
    """A new browser context signed in; with ``clock``, its clock can be moved on (it runs as usual till then)."""
    context = browser.new_context(**{**CONTEXT, "locale": locale})
    page = context.new_page()
    if clock:
        page.clock.install()
    page.goto(f"{server.url}/signin?next={next_path}")
    page.locator("input[type=email]").fill(email)
    page.locator("input[type=password]").fill(password)
    page.locator("button[type=submit]").click()
    expect(page.locator("nav").first).to_be_visible()
    return page


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def test_an_analysts_sessions_freshness_and_errors_in_japanese(browser: Browser, bi2: Server):
    admin = token_of(bi2)
    status, body = api(bi2, "POST", "/api/users", {"email": EMAIL, "name": "鈴木 一郎", "password": PASSWORD}, token=admin)
    assert status == 201, body
    token = api(bi2, "POST", "/api/auth/login", {"email": EMAIL, "password": PASSWORD})[1]["access_token"]
    dataset = csv_upload(bi2, token, "店舗,売上\n東京,100\n大阪,50\n")
    status, card = api(bi2, "POST", "/api/cards", {"title": "売上合計", "code": CARD, "datasets": [dataset["id"]],
                                                   "parameters": []}, token=token)
    assert status == 201, card
    status, other = api(bi2, "POST", "/api/cards", {"title": "店舗数", "code": CARD.replace("int(df['売上'].sum())",
                        "len(df)"), "datasets": [dataset["id"]], "parameters": []}, token=token)
    assert status == 201, other
    status, dashboard = api(bi2, "POST", "/api/dashboards", {
        "schemaVersion": 1, "title": "月次売上", "cards": [{"key": "total", "card": card["id"]},
                                                          {"key": "stores", "card": other["id"]}],
        "layout": [{"card": "total", "x": 0, "y": 0, "w": 6, "h": 4}, {"card": "stores", "x": 6, "y": 0, "w": 6, "h": 4}]},
        token=token)
    assert status == 201, dashboard

    page = signed_in(browser, bi2, "ja-JP", EMAIL, PASSWORD, f"/dashboards/{dashboard['id']}", clock=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # One run at a time for this analyst: the other tile shows its place in line, then its output.
    expect(page.locator(".tile .tile-meta").filter(has_text="実行待ち（1番目）")).to_have_count(1, timeout=30_000)
    expect(page.get_by_role("article", name="店舗数").locator(".output-stream")).to_have_text("合計 2\n", timeout=30_000)

    # Freshness: when and why the output was computed; new data says so until its output comes.
    tile = page.get_by_role("article", name="売上合計")
    expect(tile.locator(".output-stream")).to_have_text("合計 150\n", timeout=30_000)
    expect(tile.locator(".tile-meta")).to_contain_text("たった今更新（カードの変更）")
    csv_upload(bi2, token, "店舗,売上\n東京,100\n大阪,50\n福岡,25\n", dataset["id"])
    expect(tile.locator(".tile-stale")).to_have_text(
        "新しいデータがあります。この出力は前のデータのものです（更新中）。", timeout=10_000)
    expect(tile.locator(".output-stream")).to_have_text("合計 175\n", timeout=30_000)
    expect(tile.locator(".tile-meta")).to_contain_text("たった今更新（新しいデータ）")
    expect(page.get_by_role("article", name="店舗数").locator(".output-stream")).to_have_text("合計 3\n", timeout=30_000)
    expect(tile.locator(".tile-stale")).to_be_hidden()
    # Three minutes later (the browser's clock moved on), in the glossary's words.
    page.clock.fast_forward("03:10")
    expect(tile.locator(".tile-meta")).to_contain_text("3分前に更新（新しいデータ）")
    screenshot(page, "ja-tile-freshness")

    # Re-run runs past the cache: a new run, and the API says it was forced.
    before = api(bi2, "POST", f"/api/cards/{card['id']}/run", {}, token=token)[1]
    assert before["cached"] is True and before["reason"] == "new_data"
    tile.get_by_role("button", name="↻ 再実行").click()
    expect(tile.locator(".tile-meta")).to_contain_text("更新（再実行）", timeout=30_000)
    after = api(bi2, "POST", f"/api/cards/{card['id']}/run", {}, token=token)[1]
    assert after["cached"] is True and after["reason"] == "forced" and after["computed_at"] > before["computed_at"]

    # The session limit: the editor's run lists the open sessions; closing one runs. (A new browser
    # context: the clock above moved on three minutes.)
    page.context.close()
    opened = open_sessions(bi2, token, 2)
    page = signed_in(browser, bi2, "ja-JP", EMAIL, PASSWORD, f"/cards/{card['id']}")
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.get_by_role("button", name="▶ 実行").click()
    dialog = page.get_by_role("dialog", name="開いているセッションが上限（2個）に達しました")
    expect(dialog.locator(".session-row")).to_have_count(2)
    expect(dialog).to_contain_text("新しいカード · データなし")
    expect(page.locator(".run-status")).to_have_text("未実行")  # a run that did not happen: no run time
    screenshot(page, "ja-session-limit")
    dialog.get_by_role("button", name="閉じて実行").first.click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".output-pane .output-stream")).to_have_text("合計 175\n", timeout=30_000)
    assert held(bi2, token) == 2

    # Leaving the editor frees its session at once (not after the 30 s resume window).
    page.get_by_role("link", name="ダッシュボード", exact=True).click()
    wait_until(lambda: held(bi2, token) == 1, seconds=3)
    for session_id in opened:
        api(bi2, "DELETE", f"/api/card-sessions/{session_id}", token=token)

    # A timeout headlines the limit above the traceback, not KeyboardInterrupt.
    page.goto(f"{bi2.url}/cards/new")
    page.locator(".cm-content").click()
    page.keyboard.insert_text("x = 0\nwhile True:\n    x += 1")
    page.keyboard.press("Control+Enter")
    error = page.locator(".output-pane .output-error")
    expect(error.locator(".error-explained")).to_have_text(
        f"{WALL_SECONDS}秒の制限を超えたため停止しました。処理を小さく分けるか、データを絞り込んでください。", timeout=30_000)
    expect(error.locator("details")).to_contain_text("while True")
    expect(page.locator(".output-pane")).not_to_contain_text("KeyboardInterrupt")
    screenshot(page, "ja-timeout")

    # Saved with a title, the new card's session lists under its title, no longer as a new card.
    page.get_by_label("カードのタイトル").fill("止まらない計算")
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.get_by_text("バージョン1として保存しました。")).to_be_visible()
    wait_until(lambda: [s["card_title"] for s in api(bi2, "GET", "/api/card-sessions", token=token)[1]["sessions"]]
               == ["止まらない計算"], seconds=3)

    # Tracebacks leave out the platform's own frames.
    page.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text("load_dataset('なし')")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".output-pane .output-error .error-explained")).to_contain_text("「なし」", timeout=30_000)
    expect(page.locator(".output-pane")).not_to_contain_text("kernels/")

    # Leaving the page itself (pagehide: a close message and a DELETE that outlives the page) frees it too.
    assert held(bi2, token) == 1
    page.goto("about:blank")
    wait_until(lambda: held(bi2, token) == 0, seconds=3)
    assert errors == []
    page.context.close()


def test_the_same_screens_in_english(browser: Browser, bi2: Server):
    """The session-limit dialog and a tile's freshness read in English for an English browser; a tile whose
    scheduled refresh is due says so."""
    token = token_of(bi2)
    status, card = api(bi2, "POST", "/api/cards", {"title": "Total", "code": "print('total', 1 + 1)", "datasets": [],
                                                   "parameters": []}, token=token)
    assert status == 201, card
    status, dashboard = api(bi2, "POST", "/api/dashboards", {
        "schemaVersion": 1, "title": "Monthly", "cards": [{"key": "total", "card": card["id"]}],
        "layout": [{"card": "total", "x": 0, "y": 0, "w": 6, "h": 4}], "refresh": {"every_seconds": 3600}}, token=token)
    assert status == 201, dashboard
    page = signed_in(browser, bi2, "en-US", ADMIN_EMAIL, ADMIN_PASSWORD, f"/dashboards/{dashboard['id']}", clock=True)
    tile = page.get_by_role("article", name="Total")
    expect(tile.locator(".tile-meta")).to_contain_text("Updated just now (card changed)", timeout=30_000)
    tile.get_by_role("button", name="↻ Re-run").click()
    expect(tile.locator(".tile-meta")).to_contain_text("Updated just now (re-run)", timeout=30_000)
    screenshot(page, "en-tile-freshness")
    page.clock.fast_forward("01:01:00")  # the browser an hour on: the refresh round came, no new output yet
    expect(tile.locator(".tile-stale")).to_have_text(
        "The scheduled refresh is due. This output is from the previous refresh.")
    page.context.close()
    page = signed_in(browser, bi2, "en-US", ADMIN_EMAIL, ADMIN_PASSWORD, "/cards")

    opened = open_sessions(bi2, token, 2)
    try:
        page.goto(f"{bi2.url}/cards/{card['id']}")
        page.get_by_role("button", name="▶ Run").click()
        dialog = page.get_by_role("dialog", name="You have reached your limit of 2 open sessions")
        expect(dialog.locator(".session-row")).to_have_count(2)
        screenshot(page, "en-session-limit")
        dialog.get_by_role("button", name="Close", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("You already have 2 open sessions")
    finally:
        for session_id in opened:
            api(bi2, "DELETE", f"/api/card-sessions/{session_id}", token=token)
        page.context.close()
