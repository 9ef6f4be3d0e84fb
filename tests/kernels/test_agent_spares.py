"""Spare kernels on the executor agent: relayed ahead of need, held by no tenant, claimed as they are."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kernels.admission import Admission
from kernels.pool import WarmPool
from tests.kernels.kernel_fixtures import run, texts
from tests.kernels.test_agent import Agent, serve_agent


@pytest.fixture
def pool_size() -> int:
    return 1


@pytest.fixture
def admission_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def agent(pool: WarmPool, admission_options: dict[str, Any]) -> AsyncIterator[Agent]:
    admission = Admission(pool.launcher.is_alive, **{"single_tenant": False, **admission_options})
    async for client in serve_agent(pool, admission=admission):
        yield client


async def post(agent: Agent, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    response = await agent.call("POST", path, body=json.dumps(body).encode() if body is not None else None)
    return response.code, json.loads(response.body)


async def health(agent: Agent) -> dict[str, Any]:
    return json.loads((await agent.call("GET", "/health")).body)


async def place(agent: Agent, kernel_id: str) -> int:
    return (await agent.call("PUT", f"/kernels/{kernel_id}/datasets/sales", body=b"PAR1")).code


async def test_a_spare_is_held_by_no_tenant_until_claimed_as_it_is(agent):
    """A spare is relayed (code runs through it) but counts against no capacity and takes no dataset; a claim
    hands out that very kernel, on the same relay, and only then may datasets reach it."""
    code, spare = await post(agent, "/kernels/spare")
    assert code == 201 and spare["connection"]["transport"] == "ipc"
    kernel = agent.launcher.kernels[spare["kernel_id"]]
    assert kernel.connection["ip"] != spare["connection"]["ip"]  # the relay's, not the kernel's own sockets
    assert ((await health(agent))["in_use"], (await health(agent))["spares"]) == (0, 1)
    assert await place(agent, spare["kernel_id"]) == 409
    code, claimed = await post(agent, "/kernels", {"tenant": "t1", "spare": spare["kernel_id"]})
    assert code == 201 and claimed == spare
    assert ((await health(agent))["in_use"], (await health(agent))["spares"]) == (1, 0)
    assert await place(agent, spare["kernel_id"]) == 204
    relayed = dataclasses.replace(kernel, connection=claimed["connection"])
    status, outputs = await run(agent.launcher, relayed, "print(6 * 7)")
    assert status == "ok" and texts(outputs) == "42\n"


async def test_a_claim_of_what_is_no_spare_gets_a_fresh_kernel(agent, pool):
    """Naming another tenant's kernel, a warm kernel or an unknown id as the spare hands out a fresh kernel and
    leaves the one named alone; a spare that died is destroyed with its relay, and a fresh kernel comes."""
    _, theirs = await post(agent, "/kernels", {"tenant": "them"})
    await pool.start()  # refilled
    warm = next(k for k in agent.launcher.kernels if k != theirs["kernel_id"])
    for named in (theirs["kernel_id"], warm, "0" * 32):
        code, mine = await post(agent, "/kernels", {"tenant": "me", "spare": named})
        assert code == 201 and mine["kernel_id"] != named
    assert agent.launcher.is_alive(theirs["kernel_id"]) and agent.launcher.is_alive(warm)
    assert await place(agent, theirs["kernel_id"]) == 204  # still theirs
    _, spare = await post(agent, "/kernels/spare")
    agent.launcher.kill(spare["kernel_id"], "test")
    await agent.launcher.exited[spare["kernel_id"]]
    code, mine = await post(agent, "/kernels", {"tenant": "me", "spare": spare["kernel_id"]})
    assert code == 201 and mine["kernel_id"] != spare["kernel_id"]
    assert agent.settings["relays"].connection(spare["kernel_id"]) is None
    assert (await health(agent))["spares"] == 0


@pytest.mark.parametrize("body", [{"spare": 7}, {"spare": "../etc"}, {"spare": "A" * 32}])
async def test_a_malformed_spare_is_refused(agent, body):
    code, answer = await post(agent, "/kernels", {"tenant": "me", **body})
    assert code == 400 and "spare" in answer["error"]["message"]


@pytest.mark.parametrize("admission_options", [{"single_tenant": True}])
async def test_a_spare_never_serves_the_next_tenant_of_a_single_tenant_agent(agent):
    """A spare relayed while one tenant's kernels shared its uid is destroyed, not handed out, when the agent
    turns to another tenant (as its warm kernels are)."""
    _, first = await post(agent, "/kernels", {"tenant": "first"})
    _, spare = await post(agent, "/kernels/spare")
    assert (await agent.call("DELETE", f"/kernels/{first['kernel_id']}")).code == 204
    code, second = await post(agent, "/kernels", {"tenant": "second", "spare": spare["kernel_id"]})
    assert code == 201 and second["kernel_id"] != spare["kernel_id"]
    assert not agent.launcher.is_alive(spare["kernel_id"])
    assert agent.settings["relays"].connection(spare["kernel_id"]) is None


@pytest.mark.parametrize("admission_options", [{"max_kernels": 2}])
async def test_spares_are_bounded_and_none_come_from_a_draining_agent(agent):
    """At most the agent's capacity of spares at once; a draining agent makes none (503)."""
    assert [(await post(agent, "/kernels/spare"))[0] for _ in range(3)] == [201, 201, 503]
    agent.settings["admission"].draining = True
    code, answer = await post(agent, "/kernels/spare")
    assert code == 503 and "draining" in answer["error"]["message"]


@pytest.mark.parametrize("admission_options", [{"max_kernels": 2}])
async def test_spares_asked_for_at_once_stay_within_the_bound(agent):
    """Spares being started count against the bound: four asked for at once make two, not four."""
    answers = await asyncio.gather(*(post(agent, "/kernels/spare") for _ in range(4)))
    assert sorted(code for code, _ in answers) == [201, 201, 503, 503]
    assert (await health(agent))["spares"] == 2
    assert len(agent.launcher.kernels) <= 2 + 1  # and the warm one refilled


@pytest.mark.parametrize("admission_options", [{"single_tenant": True}])
async def test_a_spare_started_across_a_tenant_switch_never_serves_the_next_tenant(agent, monkeypatch):
    """A spare whose relay was still opening while a single-tenant agent turned to another tenant lived beside the
    last tenant's kernel: it is destroyed, not kept as a spare the new tenant could claim."""
    relays = agent.settings["relays"]
    open_relay, held, gate = relays.open, [], asyncio.Event()

    async def opened(kernel_id, connection):
        if not held:  # the spare's, beside the first tenant's kernel
            held.append(kernel_id)
            await gate.wait()
        return await open_relay(kernel_id, connection)

    _, first = await post(agent, "/kernels", {"tenant": "first"})
    monkeypatch.setattr(relays, "open", opened)
    making = asyncio.ensure_future(post(agent, "/kernels/spare"))
    while not held:
        await asyncio.sleep(0.01)
    assert (await agent.call("DELETE", f"/kernels/{first['kernel_id']}")).code == 204
    assert (await post(agent, "/kernels", {"tenant": "second"}))[0] == 201
    gate.set()
    code, _ = await making
    assert code == 409
    code, second = await post(agent, "/kernels", {"tenant": "second", "spare": held[0]})
    assert code == 201 and second["kernel_id"] != held[0]
    assert not agent.launcher.is_alive(held[0]) and relays.connection(held[0]) is None


@pytest.mark.parametrize("path", ["/kernels", "/kernels/{kernel}/datasets/sales/link"])
async def test_a_body_nested_too_deep_is_refused(agent, path):
    """JSON nested past the parser's depth is a bad body (400), not an error of the agent's (500)."""
    _, kernel = await post(agent, "/kernels", {"tenant": "me"})
    response = await agent.call("POST", path.format(kernel=kernel["kernel_id"]), body=b"[" * 100_000)
    assert response.code == 400 and "JSON" in json.loads(response.body)["error"]["message"]


@pytest.mark.parametrize("pool_size", [2])
@pytest.mark.parametrize("admission_options", [{"single_tenant": True}])
async def test_a_spare_taken_from_a_pool_being_flushed_never_serves_the_next_tenant(agent, pool, monkeypatch):
    """While a single-tenant agent flushes its warm kernels for the next tenant, a spare asked for meanwhile gets
    none of them: each lived beside the last tenant's kernel."""
    relays, launcher = agent.settings["relays"], agent.launcher
    _, first = await post(agent, "/kernels", {"tenant": "first"})
    await pool.start()
    warm = set(launcher.kernels) - {first["kernel_id"]}
    assert len(warm) == 2
    assert (await agent.call("DELETE", f"/kernels/{first['kernel_id']}")).code == 204
    stop, open_relay = launcher.stop, relays.open
    stopping, flushing, held, opening = asyncio.Event(), asyncio.Event(), [], asyncio.Event()

    async def held_stop(kernel_id):
        if kernel_id in warm and not stopping.is_set():  # the flush stops the first, the second still in the pool
            stopping.set()
            await flushing.wait()
        await stop(kernel_id)

    async def held_open(kernel_id, connection):
        if not held:  # the spare's: it opens once the next tenant has its kernel
            held.append(kernel_id)
            await opening.wait()
        return await open_relay(kernel_id, connection)

    monkeypatch.setattr(launcher, "stop", held_stop)
    switching = asyncio.ensure_future(post(agent, "/kernels", {"tenant": "second"}))
    await stopping.wait()
    monkeypatch.setattr(relays, "open", held_open)
    making = asyncio.ensure_future(post(agent, "/kernels/spare"))
    while not held:
        await asyncio.sleep(0.01)
    flushing.set()
    assert (await switching)[0] == 201
    opening.set()
    code, spare = await making
    assert code == 201 and spare["kernel_id"] not in warm  # a fresh one
    code, second = await post(agent, "/kernels", {"tenant": "second", "spare": spare["kernel_id"]})
    assert code == 201 and second["kernel_id"] == spare["kernel_id"]
    assert not any(launcher.is_alive(kernel_id) for kernel_id in warm)
