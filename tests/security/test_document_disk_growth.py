"""Saving documents does not store them twice: the answer a save's ``Idempotency-Key`` keeps is small.

The web UI sends an ``Idempotency-Key`` with every create and save, and the answer is kept 24 hours for
the key's retries. Before, that answer was the whole document again: 20 creates of a 1 MB dashboard
grew the store by 36 MB, 18.9 MB of it kept answers. Now an answer larger than
``IDEMPOTENT_ANSWER_BYTES`` that names its resource (``Content-Location``) is kept without its body, and
a retry reads the card or dashboard again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from server.limits import IDEMPOTENT_ANSWER_BYTES
from tests.server.conftest import api, start_server  # noqa: F401 - fixtures

CHOICE = "\u0001" * 80  # six bytes each in JSON
DOCUMENT = {"schemaVersion": 1, "title": "v", "description": "d" * 5000, "cards": [], "layout": [],
            "parameters": [{"name": f"p{i}", "type": "choice", "default": "000" + CHOICE, "label": "l" * 200,
                            "choices": [f"{j:03d}" + CHOICE for j in range(100)]} for i in range(20)]}


def kept_answers(api) -> list[int]:
    """The sizes of the answers kept for idempotency keys."""
    with sqlite3.connect(f"file:{Path(api.app.data_dir) / 'bi.sqlite3'}?mode=ro", uri=True) as connection:
        return [size for (size,) in connection.execute("SELECT length(body) FROM idempotent_answers")]


async def test_kept_answers_of_large_saves_are_small_and_replay_the_resource(api):
    token = await api.add_user("saver@example.com")
    created = []
    for n in range(3):
        answer = await api.fetch("POST", "/api/dashboards", token=token, json_body=DOCUMENT,
                                 headers={"Idempotency-Key": f"create-{n}"})
        assert answer.code == 201, answer.body
        assert len(answer.body) > 500_000
        created.append(answer)
    card = await api.fetch("POST", "/api/cards", token=token, headers={"Idempotency-Key": "card"}, json_body={
        "title": "big", "code": "print(1)\n" + "#" + "x" * 90_000, "datasets": []})
    assert card.code == 201, card.body
    for _ in range(50):  # an answer is kept just after it is sent
        if len(kept_answers(api)) == 4:
            break
        await asyncio.sleep(0.05)
    assert len(kept_answers(api)) == 4 and max(kept_answers(api)) <= IDEMPOTENT_ANSWER_BYTES

    again = await api.fetch("POST", "/api/dashboards", token=token, json_body=DOCUMENT,
                            headers={"Idempotency-Key": "create-1"})
    assert (again.code, again.headers["Idempotent-Replayed"]) == (201, "true")
    assert again.json() == created[1].json() and again.headers["Location"] == created[1].headers["Location"]
    card_again = await api.fetch("POST", "/api/cards", token=token, headers={"Idempotency-Key": "card"}, json_body={
        "title": "big", "code": "print(1)\n" + "#" + "x" * 90_000, "datasets": []})
    assert (card_again.code, card_again.json()) == (201, card.json())
    listed = await api.fetch("GET", "/api/dashboards", token=token)
    assert len(listed.json()["dashboards"]) == 3, "a retry made no new dashboard"
