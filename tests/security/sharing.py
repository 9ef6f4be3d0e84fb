"""A shared dashboard to attack: an owner's private dataset, a card that shows only its total, and
an editor, a viewer, a revoked viewer and a stranger beside the owner."""

from __future__ import annotations

import dataclasses

from tests.server.test_datasets import upload

SECRET = "4111111111111111"
PAYMENTS = f"card,amount\n{SECRET},9000\n5500000000000004,999\n"
TOTAL = "df = load_dataset('payments')\nprint('total', df['amount'].sum())"
LEAK = "print(load_dataset('payments').to_csv())"
TOTAL_OUTPUT = "total 9999\n"


@dataclasses.dataclass
class Scene:
    owner: str
    editor: str
    viewer: str
    revoked: str
    stranger: str
    dataset_id: str
    dashboard_id: str
    card_id: str

    def callers(self) -> dict[str, str]:
        return {"owner": self.owner, "editor": self.editor, "viewer": self.viewer, "revoked": self.revoked}


def card(key: str, code: str, datasets: list[str]) -> dict:
    return {"key": key, "title": key, "datasets": datasets, "code": code}


def dashboard_document(*cards: dict, refresh: dict | None = None) -> dict:
    return {"schemaVersion": 1, "title": "payments", "parameters": [], "refresh": refresh, "cards": list(cards),
            "layout": [{"card": c["key"], "x": 0, "y": 2 * n, "w": 6, "h": 2} for n, c in enumerate(cards)]}


async def share(api, owner: str, dashboard_id: str, email: str, permission: str) -> None:
    shared = await api.fetch("PUT", f"/api/dashboards/{dashboard_id}/shares", token=owner,
                             json_body={"email": email, "permission": permission})
    assert shared.code == 200, shared.body


async def revoke(api, owner: str, dashboard_id: str, email: str) -> None:
    revoked = await api.fetch("DELETE", f"/api/dashboards/{dashboard_id}/shares", token=owner,
                              json_body={"email": email})
    assert revoked.code == 204, revoked.body


async def shared_dashboard(api, *cards: dict, refresh: dict | None = None) -> Scene:
    """The owner's dashboard of ``cards`` (by default the total of the private ``payments``), shared
    for edit, for view, and for view then revoked."""
    tokens = {role: await api.add_user(f"{role}@example.com")
              for role in ("owner", "editor", "viewer", "revoked", "stranger")}
    uploaded = await upload(api, "payments", PAYMENTS.encode(), tokens["owner"])
    assert uploaded.code == 201, uploaded.body
    created = await api.fetch("POST", "/api/dashboards", token=tokens["owner"],
                              json_body=dashboard_document(*(cards or [card("pay", TOTAL, ["payments"])]), refresh=refresh))
    assert created.code == 201, created.body
    dashboard = created.json()
    for role, permission in (("editor", "edit"), ("viewer", "view"), ("revoked", "view")):
        await share(api, tokens["owner"], dashboard["id"], f"{role}@example.com", permission)
    await revoke(api, tokens["owner"], dashboard["id"], "revoked@example.com")
    return Scene(**tokens, dataset_id=uploaded.json()["id"], dashboard_id=dashboard["id"],
                 card_id=dashboard["document"]["cards"][0]["card"])


def printed(result: dict) -> str:
    """Everything a run's outputs show as text."""
    return "".join(o.get("text", "") + o.get("evalue", "") + str(o.get("data", {}).get("text/plain", ""))
                   for o in result["outputs"])
