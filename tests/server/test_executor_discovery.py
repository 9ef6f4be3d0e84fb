"""Finding executor agents: the ECS API (on a moto server), spreading, draining, a task that vanishes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from server.execution.discovery import DiscoveryError, EcsExecutors
from server.execution.local_agent import PUBLIC_KEY_FILE, LocalAgent
from server.execution.pool_metrics import EMF_DIMENSION, EMF_NAMESPACE
from tests.kernels.unprivileged import as_nobody, nobody_directory

from ..serve_process import ROOT, free_port

from .test_sessions import REAL_OS, open_session, root, run  # noqa: F401 (root is a fixture)

SERVICE = "bi-executor"


@pytest.fixture
def ecs(moto_endpoint):
    """An ECS cluster with an awsvpc Fargate task definition; tasks stay in the state they are put in."""
    request = urllib.request.Request(
        f"{moto_endpoint}/moto-api/state-manager/set-transition", method="POST",
        data=json.dumps({"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**6}}).encode())
    urllib.request.urlopen(request).close()
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    client = boto3.client("ecs", endpoint_url=moto_endpoint, region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"executor-{vpc}", Description="executor", VpcId=vpc)["GroupId"]
    cluster = client.create_cluster(clusterName=f"bi-{vpc}")["cluster"]["clusterName"]
    definition = client.register_task_definition(
        family="bi-executor", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1024", memory="4096",
        containerDefinitions=[{"name": "executor", "image": "bi-executor", "cpu": 1024, "memory": 4096}],
    )["taskDefinition"]["taskDefinitionArn"]

    def start_tasks(count: int, group_name: str = f"service:{SERVICE}") -> list[dict]:
        return client.run_task(
            cluster=cluster, taskDefinition=definition, count=count, launchType="FARGATE", group=group_name,
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}})["tasks"]

    client.start_tasks = start_tasks
    client.cluster = cluster
    return client


def address(task: dict) -> str:
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    return details["privateIPv4Address"]


async def test_ecs_discovery_finds_the_services_running_tasks_at_their_private_addresses(ecs):
    ours = ecs.start_tasks(3)
    ecs.start_tasks(1, group_name="service:another-service")
    ecs.stop_task(cluster=ecs.cluster, task=ours[0]["taskArn"], reason="scale-in")
    found = await EcsExecutors(ecs.cluster, SERVICE, port=8080, client=ecs).discover()
    assert found == {f"http://{address(task)}:8080": task["taskArn"] for task in ours[1:]}


async def test_ecs_discovery_failure_is_reported_not_raised_as_empty(ecs):
    with pytest.raises(DiscoveryError, match="ECS did not list the tasks of bi-executor"):
        await EcsExecutors("no-such-cluster", SERVICE, client=ecs).discover()


async def test_task_protection_requests_are_well_formed(ecs):
    """moto has no UpdateTaskProtection, so only the request is checked: botocore validated it and sent it."""
    task = ecs.start_tasks(1)[0]
    executors = EcsExecutors(ecs.cluster, SERVICE, client=ecs)
    with capture_logs() as logs:
        await executors.protect({task["taskArn"]: True})
    failed = [e for e in logs if e["event"] == "task_protection_failed"]
    assert failed and "UpdateTaskProtection operation" in failed[0]["error"]
    assert "Parameter validation" not in failed[0]["error"]


@pytest.fixture
async def start_agents(tmp_path, root):
    """Start executor agents relaying their kernels over TCP, as remote ones do; ``start(n)`` gives
    ``([(agent, url)], signing key PEM)``, one key for all."""
    key = Ed25519PrivateKey.generate()
    agents: list[tuple[LocalAgent, str]] = []

    async def start(count: int) -> tuple[list[tuple[LocalAgent, str]], str]:
        for _ in range(count):
            directory = tmp_path / f"agent{len(agents)}"
            directory.mkdir()
            (directory / PUBLIC_KEY_FILE).write_bytes(key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
            agent = LocalAgent(directory, pool_size=1, allow_weaker_sandbox=False, advertise_host="127.0.0.1")
            client = await agent.start(key)
            client.close()
            agents.append((agent, client.base_url))
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        return agents[-count:], pem

    yield start
    for agent, _ in agents:
        await agent.stop()


@pytest.fixture
async def two_agents(start_agents):
    """Two such agents and their signing key."""
    return await start_agents(2)


async def until(condition, seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not come true in time")


async def test_sessions_spread_a_vanished_task_drains_and_its_loss_moves_sessions(start_server, two_agents):
    [(agent_a, url_a), (_, url_b)], pem = two_agents
    api = await start_server(ServeApp__executor_urls=[url_a, url_b], ServeApp__executor_private_key=pem,
                             KernelPool__discovery_interval=0.2)
    pool = api.app.kernel_pool
    tokens = [await api.login()] + [await api.add_user(f"user{n}@example.com") for n in (1, 2)]

    first = await open_session(api, tokens[0])
    second = await open_session(api, tokens[1])
    placed = {pool.sessions[s].kernel.agent.base_url for s in (first, second)}
    assert placed == {url_a, url_b}  # spread over both
    on_a = first if pool.sessions[first].kernel.agent.base_url == url_a else second
    token_a = tokens[0] if on_a == first else tokens[1]

    pool.executors.urls.remove(url_a)  # the service no longer lists the task: it is being stopped
    await until(lambda: url_a in pool.vanished and pool.loads[url_a].draining)
    third = await open_session(api, tokens[2])
    assert pool.sessions[third].kernel.agent.base_url == url_b  # nothing new on a draining task
    assert (await run(api, token_a, on_a, "6 * 7")).json()["outputs"][-1]["data"]["text/plain"] == "42"

    session = pool.sessions[on_a]
    events: list[dict] = []
    session.listeners.add(events.append)
    running = asyncio.ensure_future(run(api, token_a, on_a, REAL_OS + "import time\ntime.sleep(8)"))
    await asyncio.sleep(1)
    with capture_logs() as logs:
        await agent_a.stop()
        died = (await running).json()
    assert died["kernel_restarted"] is True and died["outputs"][-1]["ename"] == "KernelDied"
    assert "its executor task stopped" in died["outputs"][-1]["evalue"]
    assert any(e["event"] == "executor_removed" and e["agent"] == url_a for e in logs)
    assert session.kernel.agent.base_url == url_b
    assert (await run(api, token_a, on_a, "1 + 1")).json()["outputs"][-1]["data"]["text/plain"] == "2"
    assert url_a not in pool.agents


async def test_the_pool_publishes_its_utilisation_as_cloudwatch_emf(start_server, two_agents):
    [(_, url_a), (_, url_b)], pem = two_agents
    api = await start_server(ServeApp__executor_urls=[url_a, url_b], ServeApp__executor_private_key=pem)
    token = await api.login()
    session_id = await open_session(api, token)
    await run(api, token, session_id, "1")
    pool = api.app.kernel_pool
    await pool.refresh()
    with capture_logs() as logs:
        pool.publish_utilisation()
        pool.publish_utilisation()
    first, second = [e for e in logs if e["event"] == "pool_utilisation"]
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == EMF_NAMESPACE and directive["Dimensions"] == [[EMF_DIMENSION]]
    for metric in directive["Metrics"]:
        assert isinstance(first[metric["Name"]], (int, float))  # every metric named has its value
    assert first[EMF_DIMENSION] == "static" and first["ExecutorTasks"] == 2
    assert first["KernelsInUse"] == pool.loads[url_a].in_use + pool.loads[url_b].in_use
    assert first["PoolUtilization"] == pytest.approx(100 * first["KernelsInUse"] / sum(
        load.capacity for load in pool.loads.values()), abs=0.1)
    assert (first["Executions"], second["Executions"]) == (1, 0)  # counts per record, not totals


async def test_a_single_tenant_agent_serves_one_user_and_the_next_waits_for_it(start_server, tmp_path):
    """A non-root agent holds one user's kernels: another user's open waits until they are gone."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    port = free_port()
    with nobody_directory() as workdir:
        (workdir / "key.pem").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        agent = subprocess.Popen(as_nobody([
            sys.executable, "-m", "kernels", "--ip=127.0.0.1", f"--port={port}", f"--run-dir={workdir}/run",
            "--relay", "--allow-weaker-sandbox", "--pool-size=1", f"--public-key={workdir}/key.pem"]),
            cwd=ROOT, env={"PATH": os.environ["PATH"]}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            api = await start_server(ServeApp__executor_urls=[url], ServeApp__executor_private_key=pem,
                                     KernelPool__discovery_interval=0.2)
            pool = api.app.kernel_pool
            await until(lambda: not pool.loads[url].draining, 60)
            assert pool.loads[url].single_tenant
            owner, other = await api.login(), await api.add_user("other@example.com")
            held = await open_session(api, owner)
            waiting = asyncio.ensure_future(open_session(api, other))
            await asyncio.sleep(3)
            assert not waiting.done()  # the agent answered 409 and the open waits for room
            assert (await api.fetch("DELETE", f"/api/card-sessions/{held}", token=owner)).code == 204
            second = await asyncio.wait_for(waiting, 30)
            assert (await run(api, other, second, "6 * 7")).json()["outputs"][-1]["data"]["text/plain"] == "42"
        finally:
            agent.send_signal(signal.SIGINT)  # at once: the server still holds a kernel there
            agent.wait(30)


async def test_when_no_agent_answers_an_open_fails_at_once(start_server, two_agents):
    """Full agents are waited for; agents that do not answer at all are not."""
    agents, pem = two_agents
    api = await start_server(ServeApp__executor_urls=[url for _, url in agents], ServeApp__executor_private_key=pem,
                             KernelPool__discovery_interval=0.2)
    for agent, _ in agents:
        await agent.stop()
    await until(lambda: api.app.kernel_pool.unreachable == set(api.app.kernel_pool.agents))
    token = await api.login()
    started = asyncio.get_running_loop().time()
    response = await api.fetch("POST", "/api/card-sessions", token=token, json_body={"datasets": []})
    assert response.code == 503 and "No executor answers" in response.json()["error"]["message"]
    assert asyncio.get_running_loop().time() - started < 10


async def test_an_agent_that_stops_answering_is_readmitted_as_soon_as_it_answers(start_server, start_agents):
    """A frozen agent is unreachable (and the server not ready); once it answers, the next open reads it
    again and places there at once, and the kernels it kept are still there."""
    [(agent, url)], pem = await start_agents(1)
    api = await start_server(ServeApp__executor_urls=[url], ServeApp__executor_private_key=pem,
                             KernelPool__discovery_interval=600)
    pool = api.app.kernel_pool
    token = await api.login()
    first = await open_session(api, token)
    assert (await run(api, token, first, "x = 6 * 7")).code == 200
    assert agent.process is not None
    agent.process.send_signal(signal.SIGSTOP)
    try:
        await pool.refresh()  # times out on the frozen agent
        assert url in pool.unreachable
        ready = await api.fetch("GET", "/api/ready")
        assert ready.code == 503 and ready.headers["Retry-After"]
        assert ready.json()["checks"]["executors"] == {"ok": False, "reason": "no executor agent answers"}
    finally:
        agent.process.send_signal(signal.SIGCONT)
    second = await open_session(api, token)  # not a 503 until the next reading, 10 minutes away
    assert url not in pool.unreachable and (await api.fetch("GET", "/api/ready")).code == 200
    assert (await run(api, token, first, "x")).json()["outputs"][-1]["data"]["text/plain"] == "42"
    assert (await run(api, token, second, "1 + 1")).json()["outputs"][-1]["data"]["text/plain"] == "2"
