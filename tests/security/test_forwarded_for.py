"""Forged client addresses: ``X-Forwarded-For`` counts only as far as trusted proxies vouch for it.

The client address is the connection's, or the rightmost ``X-Forwarded-For`` hop that is not in
``BI_TRUSTED_PROXIES``. A caller cannot dodge the per-address login throttle by sending its own
``X-Forwarded-For`` or ``X-Real-Ip``, and clients behind the load balancer are not one address.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from ..serve_process import Server, request
from .conftest import start_serve

THROTTLE = "--LoginThrottle.max_failures_per_address=3"
PROXIES = "127.0.0.0/8,10.0.0.0/8"


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    running = start_serve(tmp_path_factory.mktemp("direct"), THROTTLE)
    yield running
    running.proc.kill()
    running.proc.wait()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    running = start_serve(tmp_path_factory.mktemp("proxied"), THROTTLE, BI_TRUSTED_PROXIES=PROXIES)
    yield running
    running.proc.kill()
    running.proc.wait()


def failed_login(server: Server, forwarded_for: str, real_ip: str = "") -> int:
    """The status of a sign-in with a wrong password for a fresh email (so only the address counts)."""
    headers = {"Content-Type": "application/json", "X-Forwarded-For": forwarded_for}
    if real_ip:
        headers["X-Real-Ip"] = real_ip
    body = json.dumps({"email": f"{uuid.uuid4().hex}@example.com", "password": "wrong"}).encode()
    req = urllib.request.Request(f"{server.url}/api/auth/login", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def random_ip() -> str:
    raw = uuid.uuid4().bytes
    return f"{raw[0] % 223 + 1}.{raw[1]}.{raw[2]}.{raw[3]}"


def test_forged_headers_do_not_dodge_the_throttle_without_proxies(direct):
    statuses = [failed_login(direct, random_ip(), random_ip()) for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_forged_hops_left_of_the_client_do_not_dodge_the_throttle(proxied):
    statuses = [failed_login(proxied, f"{random_ip()}, 198.51.100.3, 10.0.0.7", random_ip()) for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_clients_behind_trusted_proxies_are_throttled_apart(proxied):
    first = [failed_login(proxied, "198.51.100.1, 10.0.0.7") for _ in range(4)]
    assert first == [401, 401, 401, 429]
    assert failed_login(proxied, "198.51.100.2, 10.0.0.7") == 401


def test_request_log_names_the_client_address(tmp_path):
    server = start_serve(tmp_path, BI_TRUSTED_PROXIES=PROXIES)
    assert request(server.port, "/api/health")[0] == 200
    failed_login(server, "203.0.113.50, 10.0.0.9")
    _, out, err = server.stop()
    events = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    requests = [e for e in events if e.get("event") == "request" and e.get("endpoint") == "/api/auth/login"]
    assert [e["ip"] for e in requests] == ["203.0.113.50"]
    failures = [e for e in events if e.get("event") == "login_failed"]
    assert [e["ip"] for e in failures] == ["203.0.113.50"]
