"""Sign-in throttling that cannot be aimed at someone: per (account, client address), and per address
for failures only.

- A failed sign-in makes the same account from the same address wait, 1 s after the first failure and
  twice as long after each further one, up to ``max_delay`` (15 minutes); quiet for ``max_delay``, the
  pair starts again at 1 s. The right password from any other address is never held up by these
  failures, so nobody can lock an account's owner out by failing to sign in as them.
- An address with ``max_failures_per_address`` failures (100) within ``address_window`` (10 minutes)
  waits until the oldest of them ages out: one address may be a whole office behind one NAT, so the
  threshold is high, and only failures count.
- Attempts count before their password is checked (a right one is taken back), and a pair has at most
  one check under way, so a burst is refused once its share of the limits is under way.
- A pair that signed in successfully is ``known`` for ``known_pair_seconds`` (30 days): its sign-ins go
  first to the password checks (``check_queue.py``), so a flood from elsewhere never holds its owner up.

Accounts are keyed by a keyed hash of the email typed (``AuthService.email_key``), so that the
throttle's state never holds what someone typed. ``LoginThrottle`` is the one interface; this process's
counts are ``MemoryLoginThrottle`` (with several API tasks each counts alone, see the runbook), and a
shared implementation is configured with ``AuthService.throttle_class``.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any, Literal

from traitlets import Float, Integer, MetaHasTraits
from traitlets.config import LoggingConfigurable

from ..errors import RateLimitedError
from ..limits import (LOGIN_ADDRESS_FAILURES, LOGIN_ADDRESS_WINDOW, LOGIN_FIRST_DELAY, LOGIN_KNOWN_PAIR_SECONDS,
                      LOGIN_MAX_DELAY)

Outcome = Literal["success", "failure", "unchecked"]
PAIR_BUSY_RETRY = 1  # seconds: one check per account and address at a time


@dataclasses.dataclass(frozen=True)
class Attempt:
    """A sign-in under way, as ``begin`` counted it; hand it back to ``end``."""

    account: str
    address: str
    started: float
    known: bool = False  # the account signed in from the address before


class _Meta(abc.ABCMeta, MetaHasTraits):
    """Lets a traitlets configurable have abstract methods."""


class LoginThrottle(LoggingConfigurable, metaclass=_Meta):
    """Where sign-in attempts are counted. Coroutines, so that the counts may live in a shared store."""

    max_failures_per_address = Integer(LOGIN_ADDRESS_FAILURES, help="Failed sign-ins from one client address "
                                       "within address_window before it must wait (one address may be a whole "
                                       "office: keep it at 100 or more).").tag(config=True)
    address_window = Float(LOGIN_ADDRESS_WINDOW, help="Seconds over which an address's failed sign-ins are "
                                                      "counted.").tag(config=True)
    first_delay = Float(LOGIN_FIRST_DELAY, help="Seconds one account waits at one address after a failed "
                                                "sign-in there; doubled after each further one.").tag(config=True)
    max_delay = Float(LOGIN_MAX_DELAY, help="The longest wait of one account at one address (and the quiet "
                                            "time after a wait when its doubling starts again).").tag(config=True)
    known_pair_seconds = Float(LOGIN_KNOWN_PAIR_SECONDS, help="Seconds an account and address whose sign-in "
                               "succeeded count as known: their sign-ins are checked first.").tag(config=True)

    @abc.abstractmethod
    async def begin(self, account: str, address: str) -> Attempt:
        """Count a sign-in as under way, or raise ``RateLimitedError`` (with ``retry_after``) if it must wait."""

    @abc.abstractmethod
    async def end(self, attempt: Attempt, outcome: Outcome) -> None:
        """The attempt's password was right (``success``: its account and address start afresh), wrong
        (``failure``), or never checked (``unchecked``: as if it had not been made)."""


@dataclasses.dataclass
class _Pair:
    failures: int = 0
    wait_until: float = 0.0
    checking: bool = False


class MemoryLoginThrottle(LoginThrottle):
    """The counts in this process, at most ``max_keys`` pairs and addresses (least recently used go)."""

    max_keys = Integer(100_000, help="Account-address pairs and addresses remembered.").tag(config=True)

    def __init__(self, clock: Callable[[], float] = time.monotonic, **kwargs: Any):
        super().__init__(**kwargs)
        self._clock = clock
        self._pairs: collections.OrderedDict[tuple[str, str], _Pair] = collections.OrderedDict()
        self._addresses: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._known: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()  # pair -> until

    async def begin(self, account: str, address: str) -> Attempt:
        now = self._clock()
        failures = self._recent(address, now)
        if len(failures) >= self.max_failures_per_address:
            raise RateLimitedError("Too many failed sign-ins from your network address; try again later.",
                                   retry_after=math.ceil(failures[0] + self.address_window - now))
        pair = self._pair(account, address, now)
        if pair.wait_until > now:
            raise RateLimitedError("Too many failed sign-ins for this account; wait before trying again.",
                                   retry_after=math.ceil(pair.wait_until - now))
        if pair.checking:
            raise RateLimitedError("A sign-in for this account is being checked; wait for it.",
                                   retry_after=PAIR_BUSY_RETRY)
        pair.checking = True
        failures.append(now)  # counted until it turns out right
        return Attempt(account, address, now, self._known.get((account, address), -math.inf) > now)

    async def end(self, attempt: Attempt, outcome: Outcome) -> None:
        now = self._clock()
        pair = self._pair(attempt.account, attempt.address, now)
        pair.checking = False
        if outcome == "failure":
            pair.failures += 1
            pair.wait_until = now + min(self.first_delay * 2 ** (pair.failures - 1), self.max_delay)
            return
        if outcome == "success":
            del self._pairs[(attempt.account, attempt.address)]
            self._known[(attempt.account, attempt.address)] = now + self.known_pair_seconds
            self._known.move_to_end((attempt.account, attempt.address))
            _bound(self._known, self.max_keys)
        failures = self._recent(attempt.address, now)
        if attempt.started in failures:
            failures.remove(attempt.started)

    def _pair(self, account: str, address: str, now: float) -> _Pair:
        """The pair's record, starting afresh once quiet for ``max_delay`` after its wait."""
        key = (account, address)
        pair = self._pairs.get(key)
        if pair is None or (not pair.checking and now >= pair.wait_until + self.max_delay):
            pair = self._pairs[key] = _Pair()
        self._pairs.move_to_end(key)
        _bound(self._pairs, self.max_keys)
        return pair

    def _recent(self, address: str, now: float) -> collections.deque[float]:
        """The address's failures (and attempts under way) within the window."""
        failures = self._addresses.setdefault(address, collections.deque())
        self._addresses.move_to_end(address)
        while failures and failures[0] <= now - self.address_window:
            failures.popleft()
        _bound(self._addresses, self.max_keys)
        return failures


def _bound(records: collections.OrderedDict[Any, Any], size: int) -> None:
    while len(records) > size:
        records.popitem(last=False)
