"""Sign-in cannot be aimed at someone, and what is typed for an unknown account is never logged.

Before, five wrong passwords for an account locked it for 15 minutes even for its owner with the right
password from elsewhere, twenty wrong ones from an address locked everyone behind it out (an office
behind one NAT), and a password typed into the email field went to the logs as ``email``. Now failures
make the same account at the same client address wait (429, ``Retry-After`` from 1 s doubling up to
15 minutes), an address waits only after 100 failures in 10 minutes, and unknown accounts are logged
by a keyed hash.

Red team 5: ``POST /api/me/password`` checked ``current_password`` with no throttle at all, so whoever held
an access token guessed the account's password as fast as the server hashed (300 wrong guesses in a row, all
403, then the right one changed the password and cut the owner's every other token) while the sign-in route
refused the second wrong guess. A wrong current password now counts as a failed sign-in of the account from
the caller's address.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from structlog.testing import capture_logs

from server.errors import RateLimitedError
from server.services.throttle import MemoryLoginThrottle

from ..server.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

ATTACKER = "198.51.100.66"
OWNER = "203.0.113.7"
PROXIES = ["127.0.0.0/8"]  # the test client is the proxy: X-Forwarded-For names the client


async def sign_in(api, address: str, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD):
    return await api.fetch("POST", "/api/auth/login", json_body={"email": email, "password": password},
                           headers={"X-Forwarded-For": address})


@pytest.fixture
async def proxied(start_server):
    return await start_server(ServeApp__trusted_proxies=PROXIES)


async def test_failures_elsewhere_never_lock_the_owner_out(proxied):
    """An attacker's failures make only the attacker wait; the owner signs in from their address."""
    for _ in range(6):
        failed = await sign_in(proxied, ATTACKER, password="guess")
        assert failed.code in (401, 429), failed.body
        await asyncio.sleep(0 if failed.code == 401 else 0.01)
    assert (await sign_in(proxied, ATTACKER, password="guess")).code == 429
    assert (await sign_in(proxied, OWNER)).code == 200, "the owner was locked out by someone else's failures"


async def test_the_same_account_and_address_wait_longer_after_each_failure(proxied):
    assert (await sign_in(proxied, ATTACKER, password="guess")).code == 401
    waiting = await sign_in(proxied, ATTACKER)  # even the right password waits, at this address
    assert waiting.code == 429 and waiting.error_code == "rate_limited"
    assert waiting.headers["Retry-After"] == "1"
    await asyncio.sleep(1.05)
    assert (await sign_in(proxied, ATTACKER, password="guess")).code == 401
    assert (await sign_in(proxied, ATTACKER)).headers["Retry-After"] == "2"


async def test_an_office_behind_one_address_is_not_locked_out(proxied):
    """Twenty failures from one address (for many accounts) leave its other users alone."""
    for n in range(20):
        assert (await sign_in(proxied, OWNER, email=f"typo{n}@example.com", password="x")).code == 401
    assert (await sign_in(proxied, OWNER)).code == 200


async def test_a_password_typed_as_the_email_is_not_logged(proxied):
    typed = "Tr0ub4dor&3-correct-horse"
    with capture_logs() as logs:
        assert (await sign_in(proxied, OWNER, email=typed, password="x")).code == 401
        assert (await sign_in(proxied, ATTACKER, email=typed.upper(), password="x")).code == 401
    assert typed.lower() not in json.dumps(logs, default=str).lower()
    failed = [e for e in logs if e["event"] == "login_failed"]
    assert len(failed) == 2 and failed[0]["email_hash"] == failed[1]["email_hash"], "the same typed text, one hash"
    assert "email" not in failed[0] and failed[0]["user_id"] is None and failed[0]["ip"] == OWNER
    with capture_logs() as logs:
        await sign_in(proxied, ATTACKER, password="wrong")
    failed = [e for e in logs if e["event"] == "login_failed"]
    assert failed[0]["email"] == ADMIN_EMAIL and failed[0]["user_id"], "a known account is named"


async def test_a_burst_for_one_account_gets_one_check(proxied):
    answers = await asyncio.gather(*(sign_in(proxied, ATTACKER, password="guess") for _ in range(10)))
    assert sorted(a.code for a in answers) == [401] + [429] * 9


async def change_password(api, token: str, address: str, current: str):
    return await api.fetch("POST", "/api/me/password", token=token, headers={"X-Forwarded-For": address},
                           json_body={"current_password": current, "new_password": "a new password 123456"})


async def test_a_held_token_guesses_the_password_no_faster_than_sign_in(proxied):
    """Each wrong current password makes the account wait at that address, as a failed sign-in does."""
    token = await proxied.login()
    assert (await change_password(proxied, token, ATTACKER, "guess")).error_code == "wrong_password"
    answers = await asyncio.gather(*(change_password(proxied, token, ATTACKER, f"guess {n}") for n in range(5)))
    assert sorted(a.code for a in answers) == [429] * 5, [a.body for a in answers]
    waiting = await change_password(proxied, token, ATTACKER, ADMIN_PASSWORD)  # even the right one, here
    assert waiting.code == 429 and waiting.error_code == "rate_limited" and waiting.headers["Retry-After"] == "1"
    assert (await sign_in(proxied, ATTACKER)).code == 429, "the same account at the same address"
    assert (await sign_in(proxied, OWNER)).code == 200, "the owner elsewhere is never held up"


async def test_the_right_current_password_changes_it(proxied):
    token = await proxied.login()
    assert (await change_password(proxied, token, OWNER, ADMIN_PASSWORD)).code == 200


async def test_refused_sign_ins_are_audited_without_flooding_the_trail(start_server):
    """Refused (429) sign-ins used to leave no audit event. Now each account and address gets one
    ``login_throttled`` event a window (with the count of refusals before it), a few such events a window
    over all pairs, and one aggregated event for the refusals past them."""
    api = await start_server(ServeApp__trusted_proxies=PROXIES, AuthService__throttled_audit_window=1.0,
                             AuthService__throttled_audits_per_window=3, LoginThrottle__first_delay=10.0)
    admin = await api.login()
    for _ in range(2):  # two windows of one attacker's refused guesses at the admin's account
        assert (await sign_in(api, ATTACKER, password="guess")).code in (401, 429)
        for _ in range(5):
            assert (await sign_in(api, ATTACKER, password="guess")).code == 429
        await asyncio.sleep(1.05)
    flood = [f"198.51.100.{n + 1}" for n in range(5)]  # then new addresses, each refused twice after a failure
    for address in flood:
        assert (await sign_in(api, address, email="nobody@example.com", password="x")).code == 401
    await asyncio.sleep(1.05)
    for address in flood * 2:
        assert (await sign_in(api, address, email="nobody@example.com", password="x")).code == 429
    await asyncio.sleep(1.05)
    for expected in (401, 429):  # the next window's first refusal brings the summary of the last one
        assert (await sign_in(api, "198.51.100.99", email="nobody@example.com", password="x")).code == expected

    events = (await api.fetch("GET", "/api/audit?event=login_throttled&limit=100", token=admin)).json()["events"]
    rows = [e for e in reversed(events) if not e.get("aggregated")]
    summary = [e for e in events if e.get("aggregated")]
    me = (await api.fetch("GET", "/api/me", token=admin)).json()
    assert [(e["ip"], e["user_id"]) for e in rows[:2]] == [(ATTACKER, me["id"])] * 2
    assert rows[0]["email"] == ADMIN_EMAIL and rows[0]["retry_after"] >= 1
    assert rows[1]["repeats"] >= 4, "the refusals of the window before, in one count"
    assert len([e for e in rows if e["ip"] in flood]) == 3, "three a window"
    assert "email" not in rows[2] and rows[2]["email_hash"], "an unknown account: its hash"
    assert len(summary) == 1 and summary[0]["refused"] >= 2 and summary[0]["pairs"] == 2


class TestMemoryLoginThrottle:
    """The throttle's rules over time, on a clock the test moves."""

    @pytest.fixture
    def clock(self):
        return [1000.0]

    @pytest.fixture
    def throttle(self, clock):
        return MemoryLoginThrottle(clock=lambda: clock[0])

    async def fail(self, throttle, account: str = "a", address: str = "10.0.0.1") -> None:
        await throttle.end(await throttle.begin(account, address), "failure")

    async def retry_after(self, throttle, account: str = "a", address: str = "10.0.0.1") -> int:
        with pytest.raises(RateLimitedError) as waiting:
            await throttle.begin(account, address)
        return waiting.value.retry_after

    async def test_waits_double_up_to_fifteen_minutes(self, throttle, clock):
        waits = []
        for _ in range(13):
            await self.fail(throttle)
            waits.append(await self.retry_after(throttle))
            clock[0] += waits[-1]
        assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
        await throttle.end(await throttle.begin("a", "10.0.0.1"), "success")
        await self.fail(throttle)
        assert await self.retry_after(throttle) == 1, "a right password starts the pair afresh"

    async def test_quiet_for_fifteen_minutes_starts_afresh(self, throttle, clock):
        for _ in range(4):
            await self.fail(throttle)
            clock[0] += await self.retry_after(throttle)
        await self.fail(throttle)
        clock[0] += await self.retry_after(throttle) + 900
        await self.fail(throttle)
        assert await self.retry_after(throttle) == 1

    async def test_other_addresses_and_accounts_do_not_wait(self, throttle):
        await self.fail(throttle)
        await self.retry_after(throttle)
        await throttle.end(await throttle.begin("a", "10.0.0.2"), "success")
        await throttle.end(await throttle.begin("b", "10.0.0.1"), "success")

    async def test_an_address_waits_after_a_hundred_failures_in_ten_minutes(self, throttle, clock):
        for n in range(99):
            await self.fail(throttle, account=f"user{n}")
            clock[0] += 1
        await throttle.end(await throttle.begin("someone", "10.0.0.1"), "success")  # successes do not count
        await self.fail(throttle, account="user99")
        assert await self.retry_after(throttle, account="someone") == 501  # when the first failure ages out
        await throttle.end(await throttle.begin("someone", "10.0.0.2"), "success")
        clock[0] += 501
        await throttle.end(await throttle.begin("someone", "10.0.0.1"), "success")

    async def test_attempts_count_before_they_are_checked(self, throttle):
        attempts = [await throttle.begin(f"user{n}", "10.0.0.1") for n in range(100)]
        with pytest.raises(RateLimitedError):
            await throttle.begin("late", "10.0.0.1")  # a hundred under way: refused before any check
        await throttle.end(attempts[0], "success")
        await throttle.end(attempts[1], "unchecked")
        for attempt in attempts[2:]:
            await throttle.end(attempt, "failure")
        await self.fail(throttle, account="late")  # 98 failures stand: two more fill the window
        await self.fail(throttle, account="later")
        await self.retry_after(throttle, account="last")

    async def test_remembers_at_most_max_keys(self, clock):
        throttle = MemoryLoginThrottle(clock=lambda: clock[0], max_keys=10)
        for n in range(50):
            await self.fail(throttle, account=f"user{n}", address=f"10.0.0.{n}")
        assert len(throttle._pairs) <= 10 and len(throttle._addresses) <= 10
