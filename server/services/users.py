"""Users: validated creation (API, CLI, first-start admin) and lookups."""

from __future__ import annotations

import re
import uuid

from ..errors import InvalidRequestError, PermissionDeniedError
from .audit import record
from ..models import LOCALES, ROLES, User, normalise_email, utcnow
from ..storage.base import Store
from .auth import AuthService

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = 200


class UserService:
    def __init__(self, store: Store, auth: AuthService):
        self.store = store
        self.auth = auth

    async def create(self, email: str, name: str, role: str, password: str,
                     created_by: str | None = None) -> User:
        """Validate and add a user; ``ConflictError`` if the email is taken."""
        email = normalise_email(email)
        if not EMAIL_PATTERN.match(email) or len(email) > 254:
            raise InvalidRequestError(f"{email!r} is not an email address.", {"field": "email"})
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise InvalidRequestError(
                f"The name must have 1 to {MAX_NAME_LENGTH} characters.", {"field": "name"})
        if role not in ROLES:
            raise InvalidRequestError(f"The role must be one of {', '.join(ROLES)}.", {"field": "role"})
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise InvalidRequestError(
                f"The password must have at least {MIN_PASSWORD_LENGTH} characters.", {"field": "password"})
        user = User(id=uuid.uuid4().hex, email=email, name=name, role=role,
                    password_hash=await self.auth.hash_password(password), created_at=utcnow())
        await self.store.create_user(user)
        await record(self.store, "user_created", user_id=user.id, email=email, role=role, created_by=created_by)
        return user

    async def update_profile(self, caller: User, name: str | None = None, locale: str | None = None) -> User:
        """Change the caller's own name or UI language; the user as stored afterwards."""
        changes: dict[str, str] = {}
        if name is not None:
            name = name.strip()
            if not name or len(name) > MAX_NAME_LENGTH:
                raise InvalidRequestError(
                    f"The name must have 1 to {MAX_NAME_LENGTH} characters.", {"field": "name"})
            changes["name"] = name
        if locale is not None:
            if locale not in LOCALES:
                raise InvalidRequestError(f"The locale must be one of {', '.join(LOCALES)}.", {"field": "locale"})
            changes["locale"] = locale
        await self.store.update_profile(caller.id, changes)
        await record(self.store, "user_updated", user_id=caller.id, fields=sorted(changes))
        return await self.store.get_user(caller.id) or caller

    async def create_by(self, caller: User, **fields: str) -> User:
        """``create`` on behalf of ``caller``, who must be an admin."""
        if caller.role != "admin":
            raise PermissionDeniedError("Only admins can add users.")
        return await self.create(created_by=caller.id, **fields)

    async def ensure_first_admin(self, email: str, password: str) -> User | None:
        """Create the admin named by the environment if the store has no user yet."""
        if not email or not password or await self.store.list_users():
            return None
        return await self.create(email, email.split("@")[0], "admin", password)

    async def list_by(self, caller: User) -> list[User]:
        """Every user, for an admin."""
        if caller.role != "admin":
            raise PermissionDeniedError("Only admins can list users.")
        return await self.store.list_users()
