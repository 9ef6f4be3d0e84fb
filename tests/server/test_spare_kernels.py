"""Spare kernels (``execution/spares.py``): the next kernel on an agent is one connected ahead of need."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.execution.agent_client import AgentClient, AgentError
from server.execution.local_agent import PUBLIC_KEY_FILE, LocalAgent
from server.execution.session import Kernel

from .conftest import Client
from .test_datasets import JAPANESE_CSV, upload
from .test_sessions import open_session, root, run, text  # noqa: F401 - fixture


@pytest.fixture
async def start_on_agent(start_server, root, tmp_path) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Start servers (with extra traits) on one executor agent of this test's own: the spares and kernels that
    other tests' servers leave on the shared agent until it reaps them would blur its counts."""
    key = Ed25519PrivateKey.generate()
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / PUBLIC_KEY_FILE).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    agent = LocalAgent(tmp_path / "agent", pool_size=1, allow_weaker_sandbox=False)
    client = await agent.start(key)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    yield lambda **traits: start_server(ServeApp__executor_urls=[client.base_url],
                                        ServeApp__executor_private_key=pem, **traits)
    client.close()
    await agent.stop()


async def spares_on(agent: AgentClient, count: int) -> dict:
    """The agent's health once it holds ``count`` spares."""
    for _ in range(400):
        health = await agent.health()
        if health["spares"] == count:
            return health
        await asyncio.sleep(0.05)
    raise AssertionError(f"the agent never held {count} spares: {health}")


async def held_spare(pool, agent: AgentClient) -> Kernel:
    """The pool's spare on ``agent``, once it holds one (connected: after the agent counts it)."""
    for _ in range(400):
        if agent.base_url in pool.spares._spares:
            return pool.spares._spares[agent.base_url]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the pool never held a spare on {agent.base_url}")


def handed_out(pool) -> dict[str, float]:
    return {source: pool.metrics.registry.get_sample_value("bi_kernels_handed_out_total", {"source": source}) or 0
            for source in ("fresh", "spare")}


async def test_the_next_kernel_is_the_agents_spare_and_a_lost_spare_is_replaced(start_on_agent):
    """After a kernel is handed out, the agent gets a spare that no capacity counts; the next session gets it,
    with its datasets placed once it is theirs. A spare the agent no longer has is let go for a fresh kernel,
    and closing the pool destroys its spare."""
    api = await start_on_agent()
    pool = api.app.kernel_pool
    agent = next(iter(pool.agents.values()))
    token = await api.login()
    dataset = (await upload(api, "売上", JAPANESE_CSV.encode("cp932"), token)).json()
    await open_session(api, token, [dataset["id"]])
    assert handed_out(pool) == {"fresh": 1, "spare": 0}
    assert (await spares_on(agent, 1))["in_use"] == 1
    await held_spare(pool, agent)

    second = await open_session(api, token, [dataset["id"]])
    assert handed_out(pool) == {"fresh": 1, "spare": 1}
    ran = await run(api, token, second, 'load_dataset("売上")["店舗"].tolist()')
    assert ran.code == 200 and "'東京', '大阪', '名古屋'" in text(ran.json()["outputs"])
    assert (await spares_on(agent, 1))["in_use"] == 2

    spare = await held_spare(pool, agent)
    await agent.delete_kernel(spare.kernel_id)  # gone from the agent, and the pool has not heard
    third = await open_session(api, token, [dataset["id"]])
    assert handed_out(pool) == {"fresh": 2, "spare": 1}
    assert pool.sessions[third].kernel.kernel_id != spare.kernel_id
    assert (await run(api, token, third, "6 * 7")).json()["outputs"][-1]["data"]["text/plain"] == "42"

    await spares_on(agent, 1)
    await pool.spares.close()
    assert (await agent.health())["spares"] == 0


async def test_a_spare_outlives_a_claim_its_full_agent_refused(start_on_agent):
    """An open that the agent refuses as full gets 503 and leaves the server's spare as it was: the next kernel
    there is still that spare (not one destroyed and started again on every refusal while the agent is busy).
    Another server on the same agent fills it, so this one's reading of the agent still shows room."""
    traits = {"KernelPool__placement_timeout": 0.0, "KernelPool__sessions_per_user": 100,
              "KernelPool__discovery_interval": 3600.0}
    mine, other = await start_on_agent(**traits), await start_on_agent(**traits)
    pool = mine.app.kernel_pool
    (agent,) = pool.agents.values()
    token, other_token = await mine.login(), await other.login()
    first = await open_session(mine, token)
    assert (await mine.fetch("DELETE", f"/api/card-sessions/{first}", token=token)).code == 204
    capacity = (await agent.health())["capacity"]
    others = [await open_session(other, other_token) for _ in range(capacity)]
    await spares_on(agent, 2)  # one of each server
    await held_spare(pool, agent)
    before = handed_out(pool)
    refused = await mine.fetch("POST", "/api/card-sessions", token=token, json_body={"datasets": []})
    assert refused.code == 503, refused.body
    assert (await other.fetch("DELETE", f"/api/card-sessions/{others[0]}", token=other_token)).code == 204
    await pool.refresh()  # its next reading of the agent (a refusal leaves it unused until then)
    await open_session(mine, token)
    assert handed_out(pool) == {**before, "spare": before["spare"] + 1}


async def test_a_spare_the_agent_makes_while_the_pool_closes_is_destroyed(start_on_agent, monkeypatch):
    """Closing the pool while a spare is being made (the agent has made it, its answer is on the way) destroys
    that spare too: it is not left on the agent, held by no server, until the agent reaps it as an orphan."""
    api = await start_on_agent()
    pool = api.app.kernel_pool
    agent = next(iter(pool.agents.values()))
    create_spare, made = agent.create_spare, []

    async def answered_late():
        created = await create_spare()
        made.append(created["kernel_id"])
        await asyncio.sleep(0.5)  # the answer still on its way
        return created

    monkeypatch.setattr(agent, "create_spare", answered_late)
    await open_session(api, await api.login())
    while not made:
        await asyncio.sleep(0.01)
    await pool.spares.close()
    with pytest.raises(AgentError) as gone:
        await agent.kernel_status(made[0])
    assert gone.value.status == 404


async def test_a_spare_put_back_while_another_is_made_is_not_lost(start_on_agent):
    """A spare put back (the agent refused its claim) while a hand-out beside it has another made: one of the two
    is kept and the other destroyed, not dropped from the pool while it lives on, connected, on the agent."""
    api = await start_on_agent()
    pool = api.app.kernel_pool
    agent = next(iter(pool.agents.values()))
    await open_session(api, await api.login())
    await held_spare(pool, agent)
    taken = pool.spares.take(agent)  # a claim of it goes to the agent...
    pool.spares.fill(agent)  # ...while another hand-out there succeeds
    pool.spares.put_back(agent, taken)  # the claim was refused (the agent was full)
    await asyncio.gather(*pool.spares._filling.values())
    await asyncio.gather(*pool.spares._stopping)
    assert (await agent.health())["spares"] == 1
    await pool.spares.close()
    assert (await agent.health())["spares"] == 0
