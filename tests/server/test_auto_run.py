"""Auto-run on the card socket: a run still going is interrupted, only the newest pending auto-run runs,
code that does not parse is not run, and the runs are audited in aggregate."""

from __future__ import annotations

import asyncio

from .test_card_socket import connect
from .test_sessions import root, start_cards  # noqa: F401 - fixtures


async def dones(socket, count: int) -> dict[str, dict]:
    """The ``done`` messages of the next ``count`` runs, by run id."""
    got: dict[str, dict] = {}
    while len(got) < count:
        message = await socket.receive()
        if message["type"] == "done":
            got[message["run_id"]] = message
    return got


async def test_an_auto_run_interrupts_the_run_still_going(start_cards):
    api = await start_cards()
    token = await api.login()
    socket = await connect(api, token)
    assert (await socket.receive())["type"] == "session"
    socket.send(type="execute", run_id="slow", code="import time\nx = 1\ntime.sleep(8)\nx = 2")
    await socket.until("status")
    socket.send(type="execute", run_id="typed", code="x", auto=True)
    done = await dones(socket, 2)
    assert done["slow"]["status"] == "error" and done["slow"]["execution_time_ms"] < 6000  # interrupted, not waited for
    outputs = [m for m in socket.seen if m["type"] == "output" and m["run_id"] == "typed"]
    assert done["typed"]["status"] == "ok" and outputs[-1]["output"]["data"]["text/plain"] == "1"
    socket.close()


async def test_only_the_newest_pending_auto_run_runs(start_cards):
    api = await start_cards()
    token = await api.login()
    socket = await connect(api, token)
    assert (await socket.receive())["type"] == "session"
    socket.send(type="execute", run_id="a1", code="import time\ntime.sleep(8)", auto=True)
    await socket.until("status")
    for n in range(2, 6):
        socket.send(type="execute", run_id=f"a{n}", code=f"{n} * 10", auto=True)
    done = await dones(socket, 2)
    assert set(done) == {"a1", "a5"}  # a2-a4 were superseded before they started
    results = [m["output"]["data"]["text/plain"] for m in socket.seen if m["type"] == "output" and m["run_id"] == "a5"]
    assert results == ["50"]
    socket.close()


async def test_code_that_does_not_parse_is_not_run_and_runs_are_audited_in_aggregate(start_cards):
    api = await start_cards()
    token = await api.login()
    socket = await connect(api, token)
    assert (await socket.receive())["type"] == "session"
    socket.send(type="execute", run_id="r1", code="n = 1", auto=True)
    socket.send(type="execute", run_id="r1b", code="n = 1", auto=False)  # busy: a manual run never interrupts
    await dones(socket, 1)
    socket.send(type="execute", run_id="r2", code="n = 2\ndf.head(\nprint(n)", auto=True)
    [bad] = (await dones(socket, 1)).values()
    assert bad["status"] == "syntax_error" and bad["syntax"]["line"] == 2 and "never closed" in bad["syntax"]["message"]
    socket.send(type="execute", run_id="r3", code="n", auto=True)
    done = (await dones(socket, 1))["r3"]
    result = [m["output"]["data"]["text/plain"] for m in socket.seen if m["type"] == "output" and m["run_id"] == "r3"]
    assert result == ["1"] and done["execution_count"] == 2  # the bad code never reached the kernel
    assert [m["code"] for m in socket.seen if m["type"] == "error"] == ["busy"]
    socket.close()
    for _ in range(50):
        events = (await api.fetch("GET", "/api/audit?event=card_auto_runs", token=token)).json()["events"]
        if events:
            break
        await asyncio.sleep(0.1)
    assert [(e["event"], e["runs"], e["interrupted"]) for e in events] == [("card_auto_runs", 3, 0)]
