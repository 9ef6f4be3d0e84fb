"""``/metrics`` (route names, agent URLs, traffic) is not for anonymous callers on the API port."""

from __future__ import annotations

import asyncio

from tornado import httpclient

from tests.server.conftest import start_server  # noqa: F401 - fixture

SCRAPE_TOKEN = "scrape-" + "s" * 32


async def test_anonymous_callers_get_no_metrics_by_default(start_server):
    api = await start_server()
    await api.fetch("GET", "/api/health")
    response = await api.fetch("GET", "/metrics")
    assert response.code == 403 and response.error_code == "forbidden", response.body[:200]
    assert "BI_METRICS_TOKEN" in response.json()["error"]["message"]
    assert b"bi_http" not in response.body
    signed_in = await api.fetch("GET", "/metrics", token=await api.login())
    assert signed_in.code == 403, "a user's sign-in token is not a scrape token"


async def test_the_scrape_token_reads_metrics_and_nothing_else_does(start_server):
    api = await start_server(ServeApp__metrics_token=SCRAPE_TOKEN, LoginThrottle__first_delay=0.01)
    for wrong in ("", "Bearer nope", f"Basic {SCRAPE_TOKEN}", f"Bearer {SCRAPE_TOKEN}x"):
        await asyncio.sleep(0.05)  # wrong bearer tokens make the next one wait (test_secret_guessing.py)
        response = await api.fetch("GET", "/metrics", headers={"Authorization": wrong} if wrong else {})
        assert response.code == 401 and b"bi_http" not in response.body, wrong
    await asyncio.sleep(0.05)
    response = await api.fetch("GET", "/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert response.code == 200 and b"bi_http_responses_total" in response.body


async def test_a_separate_metrics_port_serves_only_metrics(start_server):
    api = await start_server(ServeApp__metrics_port=0)
    client = httpclient.AsyncHTTPClient(force_instance=True)
    try:
        metrics = await client.fetch(api.app.metrics_url, raise_error=False)
        assert metrics.code == 200 and b"bi_http_responses_total" in metrics.body
        other = await client.fetch(api.app.metrics_url.replace("/metrics", "/api/health"), raise_error=False)
        assert other.code == 404
    finally:
        client.close()
    assert (await api.fetch("GET", "/metrics")).code == 403, "the API port stays closed"
