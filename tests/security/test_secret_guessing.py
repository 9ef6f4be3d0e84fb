"""No route lets a caller guess a password or a chosen secret faster than sign-in does.

Before, a stolen access token guessed its user's password through ``POST /api/me/password`` as fast as
argon2 checked (about 2 guesses a second, unthrottled), and ``/metrics`` checked a scrape token on every
request without counting failures. Now every check of a secret a person or operator chose goes through
the sign-in throttle (``services/throttle.py``): per user at the client address, per user over all
addresses, and per address; the caller gets 429 ``secret_check_throttled`` with ``Retry-After``.
Tokens the server generates (access, refresh and personal access tokens: 256-bit keys or secrets) are
not guessable and are not counted.
"""

from __future__ import annotations

import asyncio

import pytest

from ..server.conftest import ADMIN_PASSWORD

ATTACKER = "198.51.100.66"
ELSEWHERE = "198.51.100.67"
PROXIES = ["127.0.0.0/8"]  # the test client is the proxy: X-Forwarded-For names the client
SCRAPE_TOKEN = "scrape-" + "s" * 32


@pytest.fixture
async def proxied(start_server):
    return await start_server(ServeApp__trusted_proxies=PROXIES, ServeApp__metrics_token=SCRAPE_TOKEN)


async def guess(api, token: str, password: str, address: str = ATTACKER):
    return await api.fetch("POST", "/api/me/password", token=token, headers={"X-Forwarded-For": address},
                           json_body={"current_password": password, "new_password": "a new password 123"})


async def test_a_stolen_token_cannot_guess_the_password_quickly(proxied):
    token = await proxied.login()
    assert (await guess(proxied, token, "guess 1")).code == 403
    waiting = await guess(proxied, token, ADMIN_PASSWORD)  # even the right password waits now
    assert waiting.code == 429 and waiting.error_code == "secret_check_throttled", waiting.body
    assert waiting.headers["Retry-After"] == "1" and waiting.json()["error"]["details"] == {"retry_after": 1}
    elsewhere = await guess(proxied, token, "guess 2", address=ELSEWHERE)
    assert elsewhere.code == 429, "the token works from anywhere: the user's failures count over all addresses"
    await asyncio.sleep(1.05)
    assert (await guess(proxied, token, "guess 3")).code == 403
    assert (await guess(proxied, token, "guess 4")).headers["Retry-After"] == "2", "doubled after each failure"

    member = await proxied.add_user("member@example.com", "member password 1")
    answers = await asyncio.gather(*(guess(proxied, member, f"guess {n}") for n in range(8)))
    assert sorted(a.code for a in answers) == [403] + [429] * 7, "a burst of guesses gets one check"
    await asyncio.sleep(1.05)
    assert (await guess(proxied, member, "member password 1", address=ELSEWHERE)).code == 200, "the owner, after the wait"


async def test_scrape_token_guesses_wait(proxied):
    def scrape(secret: str):
        return proxied.fetch("GET", "/metrics", headers={"Authorization": f"Bearer {secret}",
                                                         "X-Forwarded-For": ATTACKER})

    assert (await scrape("guess")).code == 401
    waiting = await scrape(SCRAPE_TOKEN)
    assert waiting.code == 429 and waiting.error_code == "secret_check_throttled"
    assert int(waiting.headers["Retry-After"]) >= 1
    other = await proxied.fetch("GET", "/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}",
                                                            "X-Forwarded-For": ELSEWHERE})
    assert other.code == 200, "the scraper at its own address is not held up by someone else's guesses"
