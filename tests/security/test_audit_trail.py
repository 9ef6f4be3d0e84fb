"""Card code can neither erase nor forge the audit trail.

The trail lives in the store, which only the server writes, through ``services/audit.record``. Here a
card prints audit events of its own (to stdout and stderr, as the JSON lines the server logs), and tries
to delete the trail from the SQLite file and to write into it; afterwards every earlier event is still
there, the card's run is recorded as ``card_executed``, and no forged event is in the trail or among the
server's audit log lines.
"""

from __future__ import annotations

import json

from structlog.testing import capture_logs

from tests.server.test_datasets import upload

MARK = "forged-by-card-7f3a"


def attack(db: str) -> str:
    forged = json.dumps({"event": "login_success", "audit": True, "email": MARK, "user_id": MARK, "ip": "1.2.3.4"})
    return f"""
import sys
print({forged!r})
print({forged!r}, file=sys.stderr)
for attempt in ("DELETE FROM audit_events",
                "INSERT INTO audit_events VALUES ('9999#{MARK}', '{MARK}', '9999', 'login_success', '{MARK}', '{{}}', 9999999999)"):
    try:
        import sqlite3
        with sqlite3.connect({db!r}) as conn:
            conn.execute(attempt)
        print('wrote the trail:', attempt)
    except BaseException as exc:
        print('refused:', type(exc).__name__)
"""


async def test_card_code_cannot_erase_or_forge_the_trail(start_cards, tmp_path):
    api = await start_cards()
    admin = await api.login()
    member = await api.add_user("ana@example.com")
    assert (await upload(api, "sales", b"a,b\n1,2\n", member)).code == 201
    before = (await api.fetch("GET", "/api/audit?limit=1000", token=admin)).json()["events"]
    assert {"login_success", "user_created", "dataset_created"} <= {e["event"] for e in before}

    created = await api.fetch("POST", "/api/cards", token=member, json_body={
        "title": "attack", "code": attack(str(tmp_path / "data0" / "bi.sqlite3")), "datasets": [], "parameters": []})
    assert created.code == 201, created.body
    with capture_logs() as logs:
        ran = await api.fetch("POST", f"/api/cards/{created.json()['id']}/run", token=member, json_body={})
    assert ran.code == 200, ran.body
    assert "wrote the trail" not in ran.body.decode(), ran.body

    after = (await api.fetch("GET", "/api/audit?limit=1000", token=admin)).json()["events"]
    assert after[-len(before):] == before, "card code erased or changed the trail"
    assert MARK not in json.dumps(after), "card code forged an event"
    assert [e["event"] for e in after[:-len(before)]][-1:] == ["card_created"]
    assert "card_executed" in [e["event"] for e in after[:-len(before)]]
    assert not [e for e in logs if e.get("audit") and MARK in json.dumps(e, default=str)]
