"""Checks of a secret a person or an operator chose (a signed-in caller's current password, the metrics
scrape token), counted by the sign-in throttle (``throttle.py``) so that no route guesses faster than
sign-in does.

Each check counts for its ``subject`` (``password/<user id>``, ``metrics-token``) at the caller's client
address, where the address's failures also count towards its sign-in limit, and optionally for the
subject over every address (a stolen token works from anywhere). A failure makes the next check of the
subject wait 1 s, doubling up to the throttle's ``max_delay``; a refused check is a 429
``secret_check_throttled`` with ``Retry-After``. Tokens the server generates (access, refresh and
personal access tokens: 256-bit keys or secrets) cannot be guessed and are not counted here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..errors import RateLimitedError
from .throttle import Attempt, LoginThrottle, Outcome

THROTTLED = "secret_check_throttled"


class SecretChecks:
    """Run secret checks through the sign-in throttle."""

    def __init__(self, throttle: LoginThrottle):
        self.throttle = throttle

    async def check(self, subject: str, ip: str, check: Callable[[], Awaitable[bool]], *,
                    anywhere: bool = False) -> bool:
        """``await check()`` (whether the secret was right) once the throttle allows a check of ``subject``
        from ``ip`` (and, with ``anywhere``, of ``subject`` from any address); 429 while it must wait."""
        attempts: list[Attempt] = []
        outcome: Outcome = "unchecked"
        try:
            for address in (ip, f"anywhere/{subject}")[:2 if anywhere else 1]:
                try:
                    attempts.append(await self.throttle.begin(subject, address))
                except RateLimitedError as refused:
                    wait = refused.retry_after
                    raise RateLimitedError(f"Too many wrong tries; wait {wait} seconds before trying again.",
                                           retry_after=wait, details={"retry_after": wait}, code=THROTTLED) from None
            right = await check()
            outcome = "success" if right else "failure"
            return right
        finally:
            for attempt in attempts:
                await self.throttle.end(attempt, outcome)
