"""Health, the error shape, request ids, CORS, metrics and request logs."""

from __future__ import annotations

from structlog.testing import capture_logs


async def test_health(any_api):
    """GET /api/health answers ok without a token."""
    response = await any_api.fetch("GET", "/api/health")
    assert response.code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_names_what_is_missing_and_nothing_more(any_api):
    """GET /api/ready needs no token; it is 503 with Retry-After and a reason per failed check."""
    response = await any_api.fetch("GET", "/api/ready")
    assert response.code == 503 and response.headers["Retry-After"] == "5"
    assert response.json() == {"status": "not_ready", "checks": {
        "store": {"ok": True}, "executors": {"ok": False, "reason": "no executor agent is configured or found"},
        "bus": {"ok": True}}}
    await any_api.app.store_instance.close()
    checks = (await any_api.fetch("GET", "/api/ready")).json()["checks"]
    assert checks["store"] == {"ok": False, "reason": "the store answered with an error (see the server's log)"}
    assert (await any_api.fetch("GET", "/api/health")).code == 200


async def test_unknown_route_is_json_404(api):
    """An unknown path gets the JSON error shape, not HTML."""
    response = await api.fetch("GET", "/api/nothing/here")
    assert response.code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert response.error_code == "not_found"


async def test_wrong_method_is_json_405(api):
    """A method a route does not have is a JSON 405."""
    response = await api.fetch("DELETE", "/api/health")
    assert response.code == 405
    assert response.error_code == "method_not_allowed"


async def test_unhandled_error_is_500_without_traceback(api, monkeypatch):
    """A bug inside a handler gives a 500 with the request id and no traceback."""
    async def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.app.store_instance, "page_datasets", broken)
    token = await api.login()
    with capture_logs() as logs:
        response = await api.fetch("GET", "/api/datasets", token=token)
    assert response.code == 500
    body = response.body.decode()
    assert "secret internals" not in body and "Traceback" not in body
    assert response.headers["X-Request-ID"] in response.json()["error"]["message"]
    assert any(e["event"] == "unhandled_exception" for e in logs)


async def test_request_id_echoed_or_made(api):
    """An incoming X-Request-ID is returned; without one the server makes one."""
    response = await api.fetch("GET", "/api/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    made = await api.fetch("GET", "/api/health")
    assert len(made.headers["X-Request-ID"]) == 32
    hostile = await api.fetch("GET", "/api/health", headers={"X-Request-ID": "x\" injected=1"})
    assert hostile.headers["X-Request-ID"] != "x\" injected=1"


async def test_request_log_line(api):
    """Every request logs request_id, user_id, method, endpoint, status and duration_ms."""
    token = await api.login()
    with capture_logs() as logs:
        await api.fetch("GET", "/api/datasets/abc", token=token, headers={"X-Request-ID": "req-1"})
    line = next(e for e in logs if e["event"] == "request")
    assert line["request_id"] == "req-1"
    assert line["user_id"]
    assert line["method"] == "GET"
    assert line["endpoint"] == "/api/datasets/{dataset_id}"
    assert line["status"] == 404
    assert line["duration_ms"] >= 0


async def test_cors_allowed_origin(start_server):
    """An allowed origin gets CORS headers and a preflight answer; others get none."""
    api = await start_server(ServeApp__cors_origins=["https://bi.example.com"])
    preflight = await api.fetch("OPTIONS", "/api/datasets", headers={
        "Origin": "https://bi.example.com", "Access-Control-Request-Method": "POST"})
    assert preflight.code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://bi.example.com"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = await api.fetch("GET", "/api/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_metrics(start_server):
    """/metrics counts responses by route and status class and has a latency histogram."""
    api = await start_server(ServeApp__metrics_token="scrape-token")
    await api.fetch("GET", "/api/health")
    await api.fetch("GET", "/api/me")
    text = (await api.fetch("GET", "/metrics", headers={"Authorization": "Bearer scrape-token"})).body.decode()
    assert 'bi_http_responses_total{endpoint="/api/health",method="GET",status_class="2xx"} 1.0' in text
    assert 'bi_http_responses_total{endpoint="/api/me",method="GET",status_class="4xx"} 1.0' in text
    assert 'bi_http_request_duration_seconds_bucket{endpoint="/api/health",le="0.005",method="GET"}' in text
