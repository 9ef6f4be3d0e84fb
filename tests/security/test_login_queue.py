"""Sign-ins for nobody, or for somebody, from everywhere, must not lock out anybody.

Twenty workers sent wrong passwords for unknown emails from rotating client addresses; the shared
password-check queue filled and every sign-in, a real user's from another address included, got 429.
Now checks for unknown emails never take a password-check thread or queue place, and each client
address may have only a few checks waiting, so the real user signs in throughout.

Then the workers sent sign-ins for accounts that exist (the victim's own email with wrong passwords,
their own account with its right one), each from a new address: every new (account, address) pair
gets a first try, five addresses filled the queue, and the victim's sign-ins from their usual address
got 429. Now the checks take turns by account, and a pair that signed in before goes first, so the
victim signs in from their own address throughout, without waiting behind the flood.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from ..serve_process import ROOT, Server, clean_env, free_port, request
from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD

WORKERS = 20
ALICE_LOGINS = 10
ATTACKER_EMAIL = "mallory@example.com"
ATTACKER_PASSWORD = "mallory's own password"
VICTIM_ADDRESS = "203.0.113.50"
VICTIM_LOGINS = 5
# Seconds a sign-in from the victim's usual address may take under the flood: its password check goes
# first, but its store reads and writes queue behind the flood's (audit events, sign-in sessions) on the
# embedded store's one thread, on a machine the flood's twenty clients share.
VICTIM_WAIT = 6.0


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """``bi serve`` behind a trusted proxy on loopback; its log goes to a file (a flood fills a pipe)."""
    folder = tmp_path_factory.mktemp("queue")
    port = free_port()
    env = clean_env(PYTHONPATH=str(ROOT), BI_ADMIN_EMAIL=ADMIN_EMAIL, BI_ADMIN_PASSWORD=ADMIN_PASSWORD,
                    BI_TRUSTED_PROXIES="127.0.0.0/8")
    with open(folder / "serve.log", "w") as log:
        running = Server(folder, ["--port", str(port), "--data-dir", str(folder / "data"),
                                  "--ServeApp.local_executor=False"], env, port, log)
        yield running
        running.proc.kill()
        running.proc.wait()


def login(server: Server, email: str, password: str, client: str) -> int:
    body = json.dumps({"email": email, "password": password}).encode()
    req = urllib.request.Request(f"{server.url}/api/auth/login", data=body, headers={
        "Content-Type": "application/json", "X-Forwarded-For": client})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def flood(server: Server, stop: threading.Event, worker: int,
          credentials: tuple[str, str] | None = None) -> list[int]:
    """Sign in from a new address every time until ``stop``: as ``credentials`` (email, password), or for
    unknown emails."""
    statuses = []
    n = 0
    while not stop.is_set():
        n += 1
        client = f"198.51.{worker}.{n % 250 + 1}"  # a new address on every request
        email, password = credentials or (f"{uuid.uuid4().hex}@example.com", "wrong")
        statuses.append(login(server, email, password, client))
    return statuses


def test_a_flood_for_unknown_emails_leaves_real_sign_ins_alone(proxied):
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as threads:
        workers = [threads.submit(flood, proxied, stop, i) for i in range(WORKERS)]
        try:
            alice = [login(proxied, ADMIN_EMAIL, ADMIN_PASSWORD, "203.0.113.7") for _ in range(ALICE_LOGINS)]
        finally:
            stop.set()
        flooded = [status for worker in workers for status in worker.result()]
    assert len(flooded) > 3 * WORKERS, "the flood did not run"
    assert set(flooded) <= {401, 429}, sorted(set(flooded))
    assert alice == [200] * ALICE_LOGINS, f"alice's sign-ins: {alice}; the flood got {flooded.count(429)} 429s"


def test_one_address_gets_a_few_checks_at_a_time(proxied):
    """Many sign-ins at once from one address: a few are checked, the rest are told to retry, and another
    address's sign-in goes through meanwhile."""
    with concurrent.futures.ThreadPoolExecutor(WORKERS + 1) as threads:
        burst = [threads.submit(login, proxied, f"{uuid.uuid4().hex}@example.com", "wrong", "192.0.2.9")
                 for _ in range(WORKERS)]
        other = threads.submit(login, proxied, ADMIN_EMAIL, ADMIN_PASSWORD, "203.0.113.8")
        statuses = sorted(future.result() for future in burst)
    assert other.result() == 200
    assert statuses.count(429) >= WORKERS - 4, statuses


def test_a_flood_for_known_accounts_leaves_the_victims_own_address_alone(proxied):
    """The victim's email with wrong passwords and the attacker's own account with its right one, from a
    new address each time: the victim, from the address they signed in from before, gets in at once."""
    admin = request(proxied.port, "/api/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})[1]
    status, body = request(proxied.port, "/api/users", {"email": ATTACKER_EMAIL, "name": "mallory",
                                                        "password": ATTACKER_PASSWORD}, admin["access_token"])
    assert status == 201, body
    assert login(proxied, ADMIN_EMAIL, ADMIN_PASSWORD, VICTIM_ADDRESS) == 200  # where the victim signs in
    aims = [(ADMIN_EMAIL, "wrong"), (ATTACKER_EMAIL, ATTACKER_PASSWORD)]
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as threads:
        workers = [threads.submit(flood, proxied, stop, 100 + i, aims[i % 2]) for i in range(WORKERS)]
        victim = []
        try:
            time.sleep(0.5)  # the flood is under way
            for _ in range(VICTIM_LOGINS):
                started = time.monotonic()
                victim.append((login(proxied, ADMIN_EMAIL, ADMIN_PASSWORD, VICTIM_ADDRESS),
                               round(time.monotonic() - started, 2)))
        finally:
            stop.set()
        flooded = [status for worker in workers for status in worker.result()]
    assert [status for status, _ in victim] == [200] * VICTIM_LOGINS, f"the victim's sign-ins: {victim}"
    assert max(seconds for _, seconds in victim) < VICTIM_WAIT, f"the victim waited: {victim}"
    assert flooded.count(200) + flooded.count(401) > WORKERS, "the flood did not reach the password checks"
