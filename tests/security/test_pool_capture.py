"""Two ordinary users take every kernel: the executors must stay shared, and a full pool is not an unready API.

mallory and bob each open their allowed sessions (card sessions, Jupyter kernels) until the agent's 8 kernels are taken. alice, who holds
none, used to wait 90 s for a 503, and ``/api/ready`` answered 503 (compose marked the API unhealthy)
although everything but new kernels worked. Now the user over their fair share gives up their least
recently used idle session to alice at once; a user at or over it is refused at once with ``no_capacity``
and ``Retry-After``; readiness reports the full pool as ``degraded``, with a 200.
"""

from __future__ import annotations

import time

import pytest

from ..server.test_jupyter_api import start_kernel
from ..server.test_sessions import open_session

FAST_SECONDS = 15  # a kernel start on a loaded CI machine, not a wait for room

pytestmark = pytest.mark.timeout(300)


async def test_hoarded_kernels_make_room_for_a_user_who_holds_none(start_cards):
    api = await start_cards()
    tokens = {name: await api.add_user(f"{name}@example.com") for name in ("mallory", "bob", "alice")}
    mallory = [await open_session(api, tokens["mallory"]) for _ in range(4)]
    bob = [(await start_kernel(api, tokens["bob"]))["id"] for _ in range(4)]  # Jupyter kernels count alike

    started = time.monotonic()
    opened = await api.fetch("POST", "/api/card-sessions", token=tokens["alice"], json_body={"datasets": []})
    waited = time.monotonic() - started
    assert opened.code == 201, (opened.code, opened.body, f"after {waited:.1f} s")
    assert waited < FAST_SECONDS, f"alice waited {waited:.1f} s for a kernel"
    # the least recently used idle session of those who hold the most beyond their share
    gone = await api.fetch("GET", f"/api/card-sessions/{mallory[0]}", token=tokens["mallory"])
    assert gone.code == 404, gone.body
    ran = await api.fetch("POST", f"/api/card-sessions/{opened.json()['id']}/execute", token=tokens["alice"],
                          json_body={"code": "6 * 7"})
    assert ran.json()["outputs"][-1]["data"]["text/plain"] == "42", ran.body

    await start_kernel(api, tokens["alice"])  # alice: 1 of a fair share of 8 // 3; bob now holds the most
    gone = await api.fetch("GET", f"/api/kernels/{bob[0]}", token=tokens["bob"])
    assert gone.code == 404, gone.body

    ready = await api.fetch("GET", "/api/ready", token="")
    assert ready.code == 200, ready.body
    executors = ready.json()["checks"]["executors"]
    assert executors["ok"] and executors["degraded"] and "full" in executors["reason"], executors

    started = time.monotonic()
    refused = await api.fetch("POST", "/api/card-sessions", token=tokens["mallory"], json_body={"datasets": []})
    waited = time.monotonic() - started
    assert refused.code == 503, refused.body
    assert waited < FAST_SECONDS, f"mallory waited {waited:.1f} s for a refusal"
    assert refused.headers["Retry-After"].isdigit()
    error = refused.json()["error"]
    assert error["code"] == "no_capacity" and "fair share" in error["message"], error
