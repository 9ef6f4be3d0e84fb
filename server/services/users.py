"""Users: validated creation (API, CLI, first-start admin), lookups, what admins change about a user,
and passwords (a user's change, an admin's reset to a one-time password)."""

from __future__ import annotations

import re
import secrets
from typing import Any, cast

from ..errors import ConflictError, InvalidRequestError, NotFoundError, PermissionDeniedError
from ..models import LOCALES, ROLES, Role, User, normalise_email, utcnow
from ..paging import ListQuery, Page
from .audit import record
from ..storage.base import Store
from .auth import AuthService, SignIn
from .idempotency import new_id, replayed
from .revocations import Revocation

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = 200
ONE_TIME_PASSWORD_BYTES = 12  # 16 characters of base64url: 96 random bits


class UserService:
    def __init__(self, store: Store, auth: AuthService):
        self.store = store
        self.auth = auth

    async def create(self, email: str, name: str, role: str, password: str,
                     created_by: str | None = None) -> User:
        """Validate and add a user; ``ConflictError`` if the email is taken."""
        email = normalise_email(email)
        if not EMAIL_PATTERN.match(email) or len(email) > 254:
            raise InvalidRequestError(f"{email!r} is not an email address.", {"field": "email"}, code="invalid_email")
        name, checked_role = _check_name(name.strip()), _check_role(role)
        _check_password(password, "password")
        user = User(id=new_id("user"), email=email, name=name, role=checked_role,
                    password_hash=await self.auth.hash_password(password), created_at=utcnow())
        try:
            await self.store.create_user(user)
        except ConflictError as exc:
            first = await self.store.get_user(user.id) if replayed() else None
            if first is None or first.email != email:
                raise ConflictError(f"A user with the email {email} already exists.", {"field": "email", "email": email},
                                    code="email_taken") from exc
            return first  # created by an earlier attempt of this keyed request (``idempotency.new_id``)
        await record(self.store, "user_created", user_id=user.id, email=email, role=role, created_by=created_by)
        return user

    async def update_profile(self, caller: User, name: str | None = None, locale: str | None = None) -> User:
        """Change the caller's own name or UI language; the user as stored afterwards."""
        changes: dict[str, str] = {}
        if name is not None:
            changes["name"] = _check_name(name.strip())
        if locale is not None:
            if locale not in LOCALES:
                raise InvalidRequestError(f"The locale must be one of {', '.join(LOCALES)}.", {"field": "locale"})
            changes["locale"] = locale
        try:
            await self.store.update_profile(caller.id, changes)
        finally:
            await self.auth.user_changed(caller.id)
        await record(self.store, "profile_updated", user_id=caller.id, fields=sorted(changes))
        return await self.store.get_user(caller.id) or caller

    async def create_by(self, caller: User, **fields: str) -> User:
        """``create`` on behalf of ``caller``, who must be an admin."""
        if caller.role != "admin":
            raise PermissionDeniedError("Only admins can add users.")
        return await self.create(created_by=caller.id, **fields)

    async def ensure_first_admin(self, email: str, password: str) -> User | None:
        """Create the admin named by the environment if the store has no user yet (None when it has one, or when
        another API task starting at the same time created this admin first)."""
        if not email or not password or await self.any_user():
            return None
        try:
            return await self.create(email, email.split("@")[0], "admin", password)
        except ConflictError as exc:
            if exc.code != "email_taken":
                raise
            return None

    async def any_user(self) -> bool:
        """Whether the store has a user (one record read)."""
        return bool((await self.store.page_users(ListQuery((), limit=1))).items)

    async def page_by(self, caller: User, query: ListQuery) -> Page[User]:
        """A page of the users, newest first, for an admin."""
        if caller.role != "admin":
            raise PermissionDeniedError("Only admins can list users.")
        return await self.store.page_users(query)

    async def update_by(self, caller: User, user_id: str, name: str | None = None, role: str | None = None,
                        active: bool | None = None) -> User:
        """An admin changes a user's name, role or whether they may sign in; deactivating one cuts
        every token they have at once. Admins cannot demote or deactivate themselves (someone must
        stay who can undo it)."""
        target = await self._target(caller, user_id, "change users")
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = _check_name(name.strip())
        if role is not None:
            changes["role"] = _check_role(role)
        if active is not None:
            changes["active"] = active
        if target.id == caller.id and (changes.get("role", "admin") != "admin" or changes.get("active") is False):
            raise PermissionDeniedError("You cannot demote or deactivate yourself; ask another admin.",
                                        code="own_account_change")
        updated = await self._update(target.id, changes, revoke_tokens=active is False)
        if updated is None:
            raise NotFoundError("There is no such user.")
        await record(self.store, "user_updated", user_id=target.id, by=caller.id, fields=sorted(changes), **_changes_logged(changes))
        if active is False:
            await self.auth.tell_revoked(Revocation(target.id, "the account was deactivated",
                                                    generation=updated.token_generation))
        elif updated.role != target.role:  # no token is revoked; what the user has open is checked again
            await self.auth.tell_revoked(Revocation(target.id, "the role changed"))
        return updated

    async def reset_password_by(self, caller: User, user_id: str) -> str:
        """An admin gives a user a one-time password (returned, shown once): every token of theirs is
        cut, and signing in with it only lets them choose a new password."""
        target = await self._target(caller, user_id, "reset passwords")
        password = secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)
        changes = {"password_hash": await self.auth.hash_password(password), "password_change_required": True}
        updated = await self._update(target.id, changes, revoke_tokens=True)
        if updated is None:
            raise NotFoundError("There is no such user.")
        await record(self.store, "password_reset", user_id=target.id, by=caller.id)
        await self.auth.tell_revoked(Revocation(target.id, "an admin reset the password",
                                                generation=updated.token_generation))
        return password

    async def change_password(self, caller: User, current: str, new: str, ip: str) -> SignIn:
        """The caller (at client address ``ip``) changes their password: every other token of theirs is cut,
        and the caller gets a new sign-in."""
        if not await self.auth.check_password(caller, current, ip):
            raise PermissionDeniedError("The current password is wrong.", {"field": "current_password"},
                                        code="wrong_password")
        _check_password(new, "new_password")
        if new == current:
            raise InvalidRequestError("The new password must differ from the current one.",
                                      {"field": "new_password"}, code="password_unchanged")
        changes = {"password_hash": await self.auth.hash_password(new), "password_change_required": False}
        updated = await self._update(caller.id, changes, revoke_tokens=True)
        if updated is None:
            raise NotFoundError("There is no such user.")
        await record(self.store, "password_changed", user_id=caller.id)
        await self.auth.tell_revoked(Revocation(caller.id, "the password was changed",
                                                generation=updated.token_generation))
        return await self.auth.start_session(updated)

    async def _update(self, user_id: str, changes: dict[str, Any], revoke_tokens: bool = False) -> User | None:
        """``store.update_user``; whatever its outcome, no task serves the user as cached before it."""
        try:
            return await self.store.update_user(user_id, changes, revoke_tokens)
        finally:
            await self.auth.user_changed(user_id)

    async def _target(self, caller: User, user_id: str, action: str) -> User:
        """The user an admin acts on; 403 for anyone but an admin, 404 for an unknown id."""
        if caller.role != "admin":
            raise PermissionDeniedError(f"Only admins can {action}.")
        target = await self.store.get_user(user_id)
        if target is None:
            raise NotFoundError("There is no such user.")
        return target


def _changes_logged(changes: dict[str, Any]) -> dict[str, Any]:
    """The new values of an admin's change that the audit event shows (role, active; not the name)."""
    return {name: changes[name] for name in ("role", "active") if name in changes}


def _check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidRequestError(f"The name must have 1 to {MAX_NAME_LENGTH} characters.", {"field": "name"})
    return name


def _check_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidRequestError(f"The role must be one of {', '.join(ROLES)}.", {"field": "role"})
    return cast(Role, role)


def _check_password(password: str, field: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidRequestError(
            f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
            {"field": field, "min": MIN_PASSWORD_LENGTH}, code="password_too_short")
