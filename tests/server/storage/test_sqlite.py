"""What only the SQLite store has: its schema migrations."""

from __future__ import annotations

import sqlite3

from server.storage.sqlite import DB_FILE, MIGRATIONS, SQLiteStore
from tests.server.storage.test_contract import make_card, make_user


async def test_cards_migration_keeps_existing_data(tmp_path):
    """A database made before cards existed gains the card tables and keeps its users."""
    data = tmp_path / "data"
    data.mkdir()
    user = make_user()
    conn = sqlite3.connect(data / DB_FILE)
    conn.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version = 1;\nCOMMIT;")
    conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                 (user.id, user.email, user.name, user.role, user.password_hash, user.created_at))
    conn.commit()
    conn.close()
    store = SQLiteStore(data_dir=str(data))
    await store.open()
    try:
        assert await store.get_user(user.id) == user
        card, version = make_card(user)
        await store.create_card(card, version)
        assert await store.list_cards(user.id) == [card]
    finally:
        await store.close()
    conn = sqlite3.connect(data / DB_FILE)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
