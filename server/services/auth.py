"""Sign-in: password checks with argon2id, HS256 tokens, and the sign-in throttle (``throttle.py``).

A failed sign-in is logged (``login_failed``) with the email only when it names an account: what was
typed for an unknown one may be a password in the wrong field, so it is logged as ``email_hash``, a
keyed hash (HMAC-SHA256 under a key derived from the signing key) that matches the same typed text
in other lines without revealing it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from typing import TypeVar, cast

import argon2
import jwt
from traitlets import Integer, Type, Unicode, default
from traitlets.config import LoggingConfigurable

from ..environment import setting
from ..errors import AuthenticationError, RateLimitedError
from ..limits import PASSWORD_CHECK_QUEUE, PASSWORD_CHECK_WORKERS
from .audit import record
from ..models import User, normalise_email
from ..storage.base import Store
from .throttle import LoginThrottle, MemoryLoginThrottle, Outcome

MIN_KEY_LENGTH = 32
ALGORITHM = "HS256"
ISSUER = "bi"
BUSY_RETRY_AFTER = 1  # seconds: a password check takes tens of milliseconds

T = TypeVar("T")


class SecretKeyError(ValueError):
    """The configured signing key cannot be used; the server must not start."""


def check_signing_key(key: str) -> None:
    """Refuse keys too short to resist brute force."""
    if len(key) < MIN_KEY_LENGTH:
        raise SecretKeyError(
            f"JWT_SECRET_KEY has {len(key)} characters; it needs at least {MIN_KEY_LENGTH}. "
            "Generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'")


class AuthService(LoggingConfigurable):
    """Checks passwords, issues tokens and turns a token back into its user."""

    jwt_secret_key = Unicode(help="HS256 signing key for tokens (at least 32 characters).").tag(config=True)
    token_lifetime = Integer(8 * 3600, help="Seconds a sign-in token stays valid.").tag(config=True)
    throttle_class = Type(MemoryLoginThrottle, klass=LoginThrottle, help="Where sign-in attempts are counted "
                          "(configure its limits as LoginThrottle.*).").tag(config=True)
    password_check_workers = Integer(PASSWORD_CHECK_WORKERS, help=(
        "Threads that hash and verify passwords (64 MiB each while they work).")).tag(config=True)
    password_check_queue = Integer(PASSWORD_CHECK_QUEUE, help=(
        "Sign-ins that may wait for a password check; more at once are answered 429.")).tag(config=True)

    @default("jwt_secret_key")
    def _default_key(self) -> str:
        return setting("JWT_SECRET_KEY")

    def __init__(self, store: Store, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.hasher = argon2.PasswordHasher()
        self._dummy_hash = self.hasher.hash(uuid.uuid4().hex)
        self.throttle = cast(Callable[..., LoginThrottle], self.throttle_class)(parent=self)
        self._checks = concurrent.futures.ThreadPoolExecutor(self.password_check_workers,
                                                             thread_name_prefix="bi-password")
        self._checks_pending = 0

    async def _in_check_pool(self, fn: Callable[..., T], *args: object, bounded: bool = True) -> T:
        """Run a password hash/verify on its own threads; ``bounded``: refuse at once when too many wait."""
        if bounded and self._checks_pending >= self.password_check_workers + self.password_check_queue:
            raise RateLimitedError("Too many sign-ins are being checked right now; try again in a moment.",
                                   retry_after=BUSY_RETRY_AFTER)
        self._checks_pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._checks, fn, *args)
        finally:
            self._checks_pending -= 1

    async def hash_password(self, password: str) -> str:
        """Hash for a signed-in caller (account creation, password change): waits its turn, never refused."""
        return await self._in_check_pool(self.hasher.hash, password, bounded=False)

    async def login(self, email: str, password: str, ip: str) -> tuple[str, User]:
        """Return a token and the user, or raise ``AuthenticationError``/``RateLimitedError``.

        The attempt is counted by the throttle (account and client address ``ip``) before its password
        is checked, and ended with what the check found.
        """
        email = normalise_email(email)
        email_key = self.email_key(email)
        attempt = await self.throttle.begin(email_key, ip)
        outcome: Outcome = "unchecked"
        try:
            user = await self.store.get_user_by_email(email)
            verified = await self._verify(user.password_hash if user else None, password)
            outcome = "success" if user is not None and verified else "failure"
        finally:
            await self.throttle.end(attempt, outcome)
        if user is None:
            await record(self.store, "login_failed", email_hash=email_key, user_id=None, ip=ip)
            raise AuthenticationError("The email or password is wrong.")
        if not verified:
            await record(self.store, "login_failed", email=email, user_id=user.id, ip=ip)
            raise AuthenticationError("The email or password is wrong.")
        if self.hasher.check_needs_rehash(user.password_hash):
            await self.store.update_password_hash(user.id, await self.hash_password(password))
        await record(self.store, "login_success", email=email, user_id=user.id, ip=ip)
        return self.issue_token(user), user

    def email_key(self, email: str) -> str:
        """A keyed hash of a typed email: what is logged for unknown accounts, and the throttle's key."""
        key = hmac.new(self.jwt_secret_key.encode(), b"bi/email-hash/v1", hashlib.sha256).digest()
        return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()[:32]

    async def _verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; an unknown user costs the same time as a known one."""
        try:
            return await self._in_check_pool(self.hasher.verify, password_hash or self._dummy_hash, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            self.log.error("invalid_password_hash")
            return False

    def issue_token(self, user: User) -> str:
        now = int(time.time())
        claims = {"sub": user.id, "iat": now, "exp": now + self.token_lifetime, "iss": ISSUER,
                  "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self.jwt_secret_key, algorithm=ALGORITHM)

    async def authenticate(self, token: str) -> User:
        """The user a token was issued to; ``AuthenticationError`` for any bad token."""
        try:
            claims = jwt.decode(token, self.jwt_secret_key, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["sub", "exp", "iat", "iss"]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("Your session has expired; sign in again.") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("The token is not valid; sign in again.") from exc
        user = await self.store.get_user(str(claims["sub"]))
        if user is None:
            raise AuthenticationError("The token's user no longer exists; sign in again.")
        return user
