"""The first admin (``BI_ADMIN_EMAIL``) when several API tasks start at once on an empty store (compose's two api
replicas, the stack's two ECS tasks): one creates it, the others find it made, and none fails to start."""

from __future__ import annotations

import asyncio
import secrets

from server.paging import ListQuery
from server.services.auth import AuthService
from server.services.users import UserService

EMAIL, PASSWORD = "admin@example.com", "first admin password"


def task_users(store) -> UserService:
    """The user service of one API task on ``store`` (a fast password hash)."""
    auth = AuthService(store, jwt_secret_key=secrets.token_urlsafe(32), password_time_cost=1, password_memory_kib=64)
    return UserService(store, auth)


async def test_tasks_starting_together_make_one_admin(store):
    made = await asyncio.gather(*(task_users(store).ensure_first_admin(EMAIL, PASSWORD) for _ in range(3)))
    assert [user.email for user in made if user is not None] == [EMAIL]
    users = (await store.page_users(ListQuery((), limit=10))).items
    assert [(user.email, user.role) for user in users] == [(EMAIL, "admin")]
