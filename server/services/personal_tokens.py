"""Personal access tokens: what Jupyter clients (JupyterLab's gateway, papermill, nbclient) sign in with.

A token is ``bi_pat_<id>_<secret>``; the store keeps its id, owner, name, expiry and the SHA-256 of
the secret (256 random bits need no slow hash), so the secret is shown once, when it is made.
``AuthService`` checks one on each request and lets it in on the Jupyter API only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable

from ..errors import AuthenticationError, ConflictError, InvalidRequestError, NotFoundError
from ..limits import PERSONAL_TOKENS_PER_USER
from ..models import PersonalToken, User, iso_time, utcnow
from ..storage.base import Store
from .audit import record
from .revocations import Revocation

PREFIX = "bi_pat_"
TOKEN_PATTERN = re.compile(r"bi_pat_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")
MAX_NAME_LENGTH = 100


class PersonalTokens:
    """Create, list, revoke and verify personal access tokens."""

    def __init__(self, store: Store, max_days: int,
                 revoked: Callable[[Revocation], Awaitable[None]] | None = None):
        self.store = store
        self.max_days = max_days
        self.revoked = revoked  # told of each revoked token (``AuthService.tell_revoked``)

    @staticmethod
    def is_one(token: str) -> bool:
        """Whether ``token`` is meant as a personal access token (not a JWT)."""
        return token.startswith(PREFIX)

    async def verify(self, token: str) -> PersonalToken:
        """The stored record of a well-formed, known, unexpired token whose secret matches; 401 otherwise."""
        match = TOKEN_PATTERN.fullmatch(token)
        stored = await self.store.get_personal_token(match.group(1)) if match else None
        if match is None or stored is None or not hmac.compare_digest(stored.secret_hash, _hash(match.group(2))):
            raise AuthenticationError("The personal access token is not valid; it may have been revoked.")
        if stored.expires_at <= utcnow():
            raise AuthenticationError("The personal access token has expired; make a new one.")
        return stored

    async def create(self, owner: User, name: str, days: int) -> tuple[PersonalToken, str]:
        """A new token of ``owner``'s that expires in ``days``; its stored record and the token (shown once)."""
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise InvalidRequestError(f"The name must have 1 to {MAX_NAME_LENGTH} characters.", {"field": "name"})
        if not 1 <= days <= self.max_days:
            raise InvalidRequestError(f"A token may last 1 to {self.max_days} days.",
                                      {"field": "expires_in_days", "max": self.max_days},
                                      code="token_lifetime_too_long")
        if len(await self.list(owner)) >= PERSONAL_TOKENS_PER_USER:
            raise ConflictError(f"You have {PERSONAL_TOKENS_PER_USER} tokens already; revoke one you no longer use.",
                                {"limit": PERSONAL_TOKENS_PER_USER}, code="too_many_tokens")
        secret = secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        token = PersonalToken(id=uuid.uuid4().hex, user_id=owner.id, name=name, secret_hash=_hash(secret),
                              generation=owner.token_generation, created_at=utcnow(),
                              expires_at=iso_time((now + dt.timedelta(days=days)).timestamp()))
        await self.store.put_personal_token(token)
        await record(self.store, "token_created", user_id=owner.id, token_id=token.id, expires_at=token.expires_at)
        return token, f"{PREFIX}{token.id}_{secret}"

    async def list(self, owner: User) -> list[PersonalToken]:
        """``owner``'s tokens that still work, oldest first."""
        now = utcnow()
        return [token for token in await self.store.list_personal_tokens(owner.id)
                if token.expires_at > now and token.generation == owner.token_generation]

    async def revoke(self, owner: User, token_id: str) -> None:
        """Revoke one of ``owner``'s tokens; anyone else's is 404, as if it did not exist."""
        token = await self.store.get_personal_token(token_id)
        if token is None or token.user_id != owner.id:
            raise NotFoundError("There is no such token of yours.")
        await self.store.delete_personal_token(token_id)
        await record(self.store, "token_revoked", user_id=owner.id, token_id=token_id)
        if self.revoked is not None:
            await self.revoked(Revocation(owner.id, "its personal access token was revoked", token_id=token_id))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
