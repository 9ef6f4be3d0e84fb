"""Sign-in: password checks with argon2id, the sign-in throttle (``throttle.py``), and every kind of token.

- An **access token** (HS256 JWT, ``typ`` ``access``) lives ``token_lifetime`` seconds (15 minutes).
- A **refresh token** (HS256 JWT, ``typ`` ``refresh``) names a sign-in session kept in the store and
  the session's rotation; each refresh rotates it, and a token of an earlier rotation coming back
  (someone kept a copy) ends the session, so neither copy works any more.
- A **personal access token** (``bi_pat_<id>_<secret>``, stored as a hash) lets Jupyter clients in,
  on the Jupyter API only.

Every token carries the user's ``token_generation`` from when it was issued; a request checks it
against the user it loads anyway, so raising the generation (sign out everywhere, a changed or reset
password, deactivation) cuts every earlier token at once, at no extra cost. An access token also dies
with its sign-in session (signing out this browser, a reused refresh token): ``live_sign_ins.py``. The user is loaded through a
short-lived cache (``user_cache.py``) that every change of a user (``user_changed``) clears on every task.

A failed sign-in is logged (``login_failed``) with the email only when it names an account: what was
typed for an unknown one may be a password in the wrong field, so it is logged as ``email_hash``, a
keyed hash (HMAC-SHA256 under a key derived from the signing key) that matches the same typed text
in other lines without revealing it.

The password-check threads are shared fairly: each client address may have
``password_checks_per_address`` sign-ins in progress, only accounts that exist take a turn at the
threads, and accounts take turns, a sign-in from an address its account signed in from before going
first (``check_queue.py``), so no flood from other addresses holds a user up at their usual address.
A sign-in for an unknown email hashes nothing: it waits as long as a recent real check took (one
of the last ``CHECK_SAMPLES``, queueing included), so its answer comes no sooner and no later than a
wrong password's would, and a flood of them neither costs CPU and memory nor starves real sign-ins. It
is refused only when a real one from a new address would be (its address's limit, or its account's
bound), so neither its timing nor its refusals tell which accounts exist.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import hashlib
import hmac
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal, TypeVar, cast

import argon2
import jwt
from traitlets import Float, Integer, Type, Unicode, default
from traitlets.config import LoggingConfigurable

from ..environment import setting
from ..errors import AuthenticationError, PasswordChangeRequiredError, PermissionDeniedError, RateLimitedError
from ..limits import (LOGIN_THROTTLED_AUDIT_WINDOW, LOGIN_THROTTLED_AUDITS, PASSWORD_CHECK_OTHER_LANE, PASSWORD_CHECK_QUEUE, PASSWORD_CHECK_WORKERS,
                      PASSWORD_CHECKS_PER_ADDRESS, USER_CACHE_ENTRIES)
from ..models import SignInSession, User, epoch_seconds, iso_time, normalise_email, utcnow
from ..storage.base import Store
from .audit import record
from .check_queue import CheckQueue
from .live_sign_ins import LiveSignIns
from .personal_tokens import PersonalTokens
from .revocations import Credential, Revocation
from .throttle import LoginThrottle, MemoryLoginThrottle, Outcome
from .throttled_audit import ThrottledSignIns
from .user_cache import UserCache

MIN_KEY_LENGTH = 32
ALGORITHM = "HS256"
ISSUER = "bi"
BUSY_RETRY_AFTER = 1  # seconds: a password check takes tens of milliseconds
SIGNED_IN = "signed-in"  # the check queue's account for signed-in callers' hashing
CHECK_SAMPLES = 32  # recent password check durations an unknown email's sign-in imitates

T = TypeVar("T")

# What a credential is good for: an ``access`` token of a full sign-in, one that may only change
# the password (after an admin's reset), or a personal access token (the Jupyter API).
Scope = Literal["session", "password_change", "personal"]
SESSION_ONLY: frozenset[Scope] = frozenset({"session"})
RESET_MESSAGE = "Your password was reset: choose a new one (POST /api/me/password) before anything else."


@dataclasses.dataclass(frozen=True)
class SignIn:
    """The tokens of a sign-in or a refresh."""

    user: User
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: str


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
    token_lifetime = Integer(15 * 60, help="Seconds an access token stays valid.").tag(config=True)
    refresh_token_lifetime = Integer(14 * 24 * 3600, help=(
        "Seconds a sign-in may be refreshed for before the user signs in again.")).tag(config=True)
    personal_token_max_days = Integer(365, help="The longest lifetime, in days, a personal access token may have."
                                      ).tag(config=True)
    throttle_class = Type(MemoryLoginThrottle, klass=LoginThrottle, help="Where sign-in attempts are counted "
                          "(configure its limits as LoginThrottle.*).").tag(config=True)
    password_time_cost = Integer(argon2.DEFAULT_TIME_COST, min=1, help=(
        "argon2id passes per password hash (a stored hash of other parameters is redone at its next sign-in)."
    )).tag(config=True)
    password_memory_kib = Integer(argon2.DEFAULT_MEMORY_COST, min=64, help=(
        "KiB of memory per password hash (argon2id); tests lower it, production keeps the default.")).tag(config=True)
    password_check_workers = Integer(PASSWORD_CHECK_WORKERS, help=(
        "Threads that hash and verify passwords (64 MiB each while they work).")).tag(config=True)
    password_check_queue = Integer(PASSWORD_CHECK_QUEUE, help=(
        "Sign-ins of one account from addresses it has not signed in from, in progress at once; more are "
        "answered 429 (services/check_queue.py).")).tag(config=True)
    throttled_audit_window = Float(LOGIN_THROTTLED_AUDIT_WINDOW, help=(
        "Seconds over which refused (429) sign-ins of one account and address make one login_throttled "
        "audit event.")).tag(config=True)
    throttled_audits_per_window = Integer(LOGIN_THROTTLED_AUDITS, help=(
        "login_throttled events written per window over all accounts and addresses; the refusals past them "
        "make one aggregated event.")).tag(config=True)
    password_check_other_lane = Integer(PASSWORD_CHECK_OTHER_LANE, help=(
        "The same over all accounts.")).tag(config=True)
    password_checks_per_address = Integer(PASSWORD_CHECKS_PER_ADDRESS, help=(
        "Sign-ins from one client address checked at once; more from it at once are answered 429.")).tag(config=True)

    user_cache_seconds = Float(5.0, min=0.0, help=(
        "Seconds a request's user record is kept for the next requests of the same token generation (0: "
        "read it every time); a change to the user clears it on every task at once.")).tag(config=True)

    @default("jwt_secret_key")
    def _default_key(self) -> str:
        return setting("JWT_SECRET_KEY")

    def __init__(self, store: Store, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.hasher = argon2.PasswordHasher(time_cost=self.password_time_cost, memory_cost=self.password_memory_kib)
        started = time.perf_counter()  # the first sample: one hash costs what one check does
        self.hasher.hash(uuid.uuid4().hex)
        self._check_seconds = collections.deque([time.perf_counter() - started], CHECK_SAMPLES)
        self._signing_in: collections.Counter[str] = collections.Counter()  # sign-ins in progress by address
        self.throttle = cast(Callable[..., LoginThrottle], self.throttle_class)(parent=self)
        self._checks = concurrent.futures.ThreadPoolExecutor(self.password_check_workers,
                                                             thread_name_prefix="bi-password")
        self.throttled = ThrottledSignIns(self.throttled_audit_window, self.throttled_audits_per_window)
        self.check_queue = CheckQueue(self.password_check_workers, self.password_check_queue,
                                      self.password_check_other_lane)
        self.revoked: list[Callable[[Revocation], Awaitable[None]]] = []  # told of every revocation (revocations.py)
        self.personal_tokens = PersonalTokens(store, self.personal_token_max_days, self.tell_revoked)
        self.live_sign_ins = LiveSignIns(store)
        self.user_cache = UserCache(store, self.user_cache_seconds, USER_CACHE_ENTRIES)

    async def tell_revoked(self, revocation: Revocation) -> None:
        """What ``revocation`` ends (open sockets, sessions) is ended: tell ``revoked``."""
        for callback in self.revoked:
            await callback(revocation)

    async def _in_check_pool(self, account: str, known: bool, fn: Callable[..., T], *args: object) -> T:
        """Run a password hash/verify for ``account`` on the check threads when its turn comes
        (``check_queue.py``; ``known``: in the known lane, never refused)."""
        started = time.perf_counter()
        try:
            async with self.check_queue.turn(account, known):
                return await asyncio.get_running_loop().run_in_executor(self._checks, fn, *args)
        finally:
            self._check_seconds.append(time.perf_counter() - started)

    async def _imitate_check(self, account: str) -> None:
        """Take as long as a password check of an account that exists, without one (see the module's notes)."""
        with self.check_queue.imitation(account):
            await asyncio.sleep(random.choice(self._check_seconds))  # noqa: S311 - a duration, not a secret

    async def hash_password(self, password: str) -> str:
        """Hash for a signed-in caller (account creation, password change): waits its turn, never refused."""
        return await self._in_check_pool(SIGNED_IN, True, self.hasher.hash, password)

    async def login(self, email: str, password: str, ip: str) -> SignIn:
        """Start a sign-in session, or raise ``AuthenticationError``/``RateLimitedError``, or
        ``PasswordChangeRequiredError`` for a one-time password.

        The attempt is counted by the throttle (account and client address ``ip``) before its password
        is checked, and ended with what the check found.
        """
        email = normalise_email(email)
        email_key = self.email_key(email)
        try:
            return await self._login(email, email_key, password, ip)
        except RateLimitedError as refused:
            await self._audit_refused(email, email_key, ip, refused)
            raise

    async def _audit_refused(self, email: str, email_key: str, ip: str, refused: RateLimitedError) -> None:
        """Audit a refused sign-in (``login_throttled``), as ``throttled_audit.py`` aggregates them."""
        for row in self.throttled.refused(email_key, ip):
            if row.get("aggregated"):
                await record(self.store, "login_throttled", user_id=None, **row)
                continue
            user = await self.store.get_user_by_email(email)
            named = {"email": email} if user is not None else {"email_hash": email_key}
            await record(self.store, "login_throttled", user_id=user.id if user else None, ip=ip,
                         repeats=row["repeats"], retry_after=refused.retry_after, **named)

    async def _login(self, email: str, email_key: str, password: str, ip: str) -> SignIn:
        if self._signing_in[ip] >= self.password_checks_per_address:
            raise RateLimitedError("Sign-ins from your address are already being checked; wait for them, "
                                   "then try again.", retry_after=BUSY_RETRY_AFTER)
        self._signing_in[ip] += 1
        try:
            user, verified = await self._check_sign_in(email, email_key, password, ip)
        finally:
            self._signing_in[ip] -= 1
            if not self._signing_in[ip]:
                del self._signing_in[ip]
        if user is None:
            await record(self.store, "login_failed", email_hash=email_key, user_id=None, ip=ip)
            raise AuthenticationError("The email or password is wrong.")
        if not verified:
            await record(self.store, "login_failed", email=email, user_id=user.id, ip=ip)
            raise AuthenticationError("The email or password is wrong.")
        if self.hasher.check_needs_rehash(user.password_hash):
            await self.store.update_password_hash(user.id, await self.hash_password(password))
            await self.user_changed(user.id)
        if not user.active:
            await record(self.store, "login_failed", email=email, user_id=user.id, ip=ip, reason="deactivated")
            raise AuthenticationError("This account is deactivated; ask an admin.", code="account_deactivated")
        await record(self.store, "login_success", email=email, user_id=user.id, ip=ip)
        if user.password_change_required:
            raise PasswordChangeRequiredError(RESET_MESSAGE, {
                "access_token": self._access_token(user, "password_change"), "token_type": "bearer",
                "expires_in": self.token_lifetime})
        return await self.start_session(user)

    async def _check_sign_in(self, email: str, email_key: str, password: str, ip: str) -> tuple[User | None, bool]:
        """The account ``email`` names (if any) and whether ``password`` is its, counted by the throttle."""
        attempt = await self.throttle.begin(email_key, ip)
        outcome: Outcome = "unchecked"
        try:
            user = await self.store.get_user_by_email(email)
            if user is None:
                await self._imitate_check(email_key)
                verified = False
            else:
                verified = await self._verify(email_key, attempt.known, user.password_hash, password)
            outcome = "success" if verified else "failure"
        finally:
            await self.throttle.end(attempt, outcome)
        return user, verified

    async def check_password(self, user: User, password: str, ip: str) -> bool:
        """Whether ``password`` is ``user``'s (a signed-in caller confirming it, from the client address ``ip``),
        counted by the throttle as a sign-in of the account from ``ip`` (``RateLimitedError``): whoever holds an
        access token guesses the password no faster than the sign-in route lets them."""
        _, verified = await self._check_sign_in(user.email, self.email_key(user.email), password, ip)
        return verified

    def email_key(self, email: str) -> str:
        """A keyed hash of a typed email: what is logged for unknown accounts, and the throttle's key."""
        key = hmac.new(self.jwt_secret_key.encode(), b"bi/email-hash/v1", hashlib.sha256).digest()
        return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()[:32]

    async def _verify(self, account: str, known: bool, password_hash: str, password: str) -> bool:
        """Check a password against an account's hash (a sign-in of ``account``, from a ``known`` address)."""
        try:
            return await self._in_check_pool(account, known, self.hasher.verify, password_hash, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            self.log.error("invalid_password_hash")
            return False

    # sessions ----------------------------------------------------------------
    async def start_session(self, user: User) -> SignIn:
        """A new sign-in session for ``user`` and its first tokens."""
        now = time.time()
        session = SignInSession(id=uuid.uuid4().hex, user_id=user.id, rotation=0, generation=user.token_generation,
                                created_at=utcnow(), expires_at=iso_time(now + self.refresh_token_lifetime))
        await self.store.put_sign_in_session(session)
        return self._sign_in(user, session)

    async def refresh(self, refresh_token: str) -> SignIn:
        """New tokens for a sign-in session, rotating its refresh token.

        A refresh token of an earlier rotation ends the session: the token was copied, and whoever
        refreshed first (the user or the thief) is cut off with the other.
        """
        claims = self._decode(refresh_token, "refresh", ("sid", "rot"))
        session = await self.store.get_sign_in_session(str(claims["sid"]))
        if session is None or session.expires_at <= utcnow():
            raise AuthenticationError("This sign-in has ended; sign in again.", code="session_ended")
        if claims["rot"] != session.rotation or not await self.store.rotate_sign_in_session(session.id,
                                                                                          session.rotation):
            await self._end_session(session.id)
            await record(self.store, "refresh_token_reused", user_id=session.user_id, session_id=session.id)
            await self.tell_revoked(Revocation(session.user_id, "its refresh token was used twice",
                                               session_id=session.id))
            raise AuthenticationError("This refresh token was already used, so the sign-in was ended to be safe; "
                                      "sign in again.", code="refresh_token_reused")
        user = await self._valid_user(session.user_id, session.generation)
        return self._sign_in(user, dataclasses.replace(session, rotation=session.rotation + 1))

    async def logout(self, refresh_token: str | None, access_token: str | None) -> None:
        """End the sign-in session a refresh token or access token belongs to; bad tokens end nothing."""
        for token, typ in ((refresh_token, "refresh"), (access_token, "access")):
            if not token:
                continue
            try:
                claims = self._decode(token, typ, ("sid",))
            except AuthenticationError:
                continue
            await self._end_session(str(claims["sid"]))
            await record(self.store, "logout", user_id=str(claims["sub"]), session_id=str(claims["sid"]))
            await self.tell_revoked(Revocation(str(claims["sub"]), "signed out", session_id=str(claims["sid"])))
            return

    async def _end_session(self, session_id: str) -> None:
        """Delete a sign-in session: its refresh token and its access tokens stop working."""
        await self.store.delete_sign_in_session(session_id)
        self.live_sign_ins.forget(session_id)

    async def confirm_sign_in(self, access_token: str) -> None:
        """Check in the store, not in what this server remembers, that the sign-in of ``access_token`` (an
        authenticated one) is live: for what outlives it (a personal access token)."""
        claims = self._decode(access_token, "access", ("sid",))
        await self.live_sign_ins.check(str(claims["sid"]), fresh=True)

    async def logout_everywhere(self, user: User) -> None:
        """Cut every token ``user`` has: every sign-in's, and their personal access tokens."""
        try:
            updated = await self.store.update_user(user.id, {}, revoke_tokens=True)
        finally:
            await self.user_changed(user.id)
        await record(self.store, "logout_everywhere", user_id=user.id)
        generation = updated.token_generation if updated is not None else user.token_generation + 1
        await self.tell_revoked(Revocation(user.id, "signed out everywhere", generation=generation))

    async def lost(self, user_id: str, credentials: Collection[Credential]) -> dict[Credential, str]:
        """Which of ``user_id``'s ``credentials`` were revoked, and why, read from the store (not from what this
        task remembers): for a task that may have missed revocations on the bus (``revocations.py``)."""
        user = await self.store.get_user(user_id)
        if user is None or not user.active:
            return dict.fromkeys(credentials, "the account was deactivated")
        lost: dict[Credential, str] = {}
        now = utcnow()
        for credential in credentials:  # distinct: each sign-in and token read once
            if credential.generation < user.token_generation:
                lost[credential] = "signed out everywhere, or the password changed"
            elif credential.session_id is not None:
                session = await self.store.get_sign_in_session(credential.session_id)
                if session is None or session.expires_at <= now:
                    self.live_sign_ins.forget(credential.session_id)
                    lost[credential] = "signed out"
            elif credential.token_id is not None:
                token = await self.store.get_personal_token(credential.token_id)
                if token is None or token.expires_at <= now:
                    lost[credential] = "the personal access token was revoked"
        return lost

    async def user_changed(self, user_id: str) -> None:
        """Call after every change to a user's record: no task serves the record from before it."""
        await self.user_cache.changed(user_id)

    def _sign_in(self, user: User, session: SignInSession) -> SignIn:
        """An access token, and a refresh token for the session's current rotation that lasts as long as it."""
        now, expires = int(time.time()), epoch_seconds(session.expires_at)
        refresh_claims = {"sub": user.id, "iat": now, "exp": expires, "iss": ISSUER, "typ": "refresh",
                          "sid": session.id, "rot": session.rotation}
        return SignIn(user=user, access_token=self._access_token(user, "session", session.id),
                      expires_in=self.token_lifetime,
                      refresh_token=jwt.encode(refresh_claims, self.jwt_secret_key, algorithm=ALGORITHM),
                      refresh_expires_in=max(0, expires - now), session_id=session.id)

    def _access_token(self, user: User, scope: Scope, session_id: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": user.id, "iat": now, "exp": now + self.token_lifetime, "iss": ISSUER,
                                  "jti": uuid.uuid4().hex, "typ": "access", "scp": scope,
                                  "gen": user.token_generation}
        if session_id:
            claims["sid"] = session_id
        return jwt.encode(claims, self.jwt_secret_key, algorithm=ALGORITHM)

    # requests ----------------------------------------------------------------
    async def authenticate(self, token: str, accept: Collection[Scope] = SESSION_ONLY) -> User:
        """The user a request's token speaks for: ``AuthenticationError`` (401) for any bad, expired or
        revoked token, ``PermissionDeniedError`` (403) for a good one used where ``accept`` does not
        allow its scope."""
        return (await self.authenticate_credential(token, accept))[0]

    async def authenticate_credential(self, token: str,
                                      accept: Collection[Scope] = SESSION_ONLY) -> tuple[User, Credential]:
        """``authenticate``, and the credential the token is (what a socket is closed by when it is revoked)."""
        scope: Scope
        if self.personal_tokens.is_one(token):
            record = await self.personal_tokens.verify(token)
            user, scope = await self._valid_user(record.user_id, record.generation), "personal"
            credential = Credential(user.id, record.generation, token_id=record.id)
        else:
            claims = self._decode(token, "access", ("scp", "gen"))
            if claims["scp"] not in ("session", "password_change"):
                raise AuthenticationError("The token is not valid; sign in again.")
            user, scope = await self._valid_user(str(claims["sub"]), claims["gen"]), claims["scp"]
            if scope == "session":  # a sign-in's token: only while the sign-in lasts
                await self.live_sign_ins.check(str(claims.get("sid", "")))
            credential = Credential(user.id, user.token_generation, session_id=claims.get("sid"))
        restricted = scope == "password_change" or user.password_change_required
        if restricted and not (scope == "password_change" and scope in accept):
            raise PasswordChangeRequiredError(RESET_MESSAGE)
        if scope not in accept:
            raise PermissionDeniedError(
                "A personal access token works on the Jupyter API only (/api/kernels, /api/kernelspecs, "
                "/api/sessions); sign in for the rest.", code="personal_token_not_allowed")
        return user, credential

    def _decode(self, token: str, typ: str, required: tuple[str, ...]) -> dict[str, Any]:
        """The claims of a JWT of type ``typ`` that we signed; ``AuthenticationError`` otherwise."""
        try:
            claims = jwt.decode(token, self.jwt_secret_key, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["sub", "exp", "iat", "iss", "typ", *required]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("Your session has expired; sign in again.") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("The token is not valid; sign in again.") from exc
        if claims["typ"] != typ:
            raise AuthenticationError("The token is not valid here; sign in again.")
        return claims

    async def _valid_user(self, user_id: str, generation: object) -> User:
        """The user a token of ``generation`` was issued to, while it is active and the token unrevoked."""
        user = await self.user_cache.get(user_id, generation)
        if user is None:
            raise AuthenticationError("The token's user no longer exists; sign in again.")
        if not user.active:
            raise AuthenticationError("This account is deactivated; ask an admin.", code="account_deactivated")
        if generation != user.token_generation:
            raise AuthenticationError("This token was revoked (signed out everywhere, or the password or account "
                                      "changed); sign in again.", code="token_revoked")
        return user

