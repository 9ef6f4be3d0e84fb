"""Who made each version, by name: version lists say ``created_by_name`` beside the ``created_by`` id."""

from __future__ import annotations

from typing import Any

from ..storage.base import Store


async def with_author_names(store: Store, versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``versions`` (public JSON with ``created_by``), each with its author's name (null for a removed user): one
    read of the distinct authors."""
    ids = list(dict.fromkeys(version["created_by"] for version in versions))
    names = {user.id: user.name for user in await store.get_users(ids) if user is not None}
    return [{**version, "created_by_name": names.get(version["created_by"])} for version in versions]
