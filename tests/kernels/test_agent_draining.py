"""Stopping a real agent: the first SIGTERM drains, a second one (or the drain timeout) ends it."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from typing import Callable, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernels.agent_app import PUBLIC_KEY_VARIABLE
from tests.kernels.agent_process import AgentProcess, free_port, public_pem
from tests.kernels.unprivileged import nobody_directory, unprivileged

TENANT = {"tenant": "alice"}


@pytest.fixture
def start_agent(tmp_path) -> Iterator[Callable[..., AgentProcess]]:
    """Start ``python -m kernels`` (unprivileged, weaker sandbox, one warm kernel) with extra flags."""
    started: list[AgentProcess] = []

    def start(*flags: str) -> AgentProcess:
        key, home, port = Ed25519PrivateKey.generate(), homes.enter_context(nobody_directory()), free_port()
        command = unprivileged([sys.executable, "-m", "kernels", f"--port={port}", f"--run-dir={home}/run",
                                "--pool-size=1", "--allow-weaker-sandbox", *flags])
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", PUBLIC_KEY_VARIABLE: public_pem(key)}
        started.append(AgentProcess(command, env, port, key, tmp_path / f"agent-{len(started)}.log", home))
        return started[-1]

    with contextlib.ExitStack() as homes:
        yield start
        for agent in started:
            agent.stop(signal.SIGKILL)


def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def draining(agent: AgentProcess) -> dict:
    """SIGTERM the agent and return its /health once it says it is draining with an empty pool."""
    agent.process.send_signal(signal.SIGTERM)
    until(lambda: agent.call("GET", "/health")[1]["draining"])
    until(lambda: agent.call("GET", "/health")[1]["pool"]["ready"] == 0)
    return agent.call("GET", "/health")[1]


def test_sigterm_drains_until_the_last_kernel_is_gone(start_agent):
    """While draining no kernel is handed out (503) and the warm pool is emptied, but a kernel
    handed out before keeps running code; once it is deleted the agent exits."""
    agent = start_agent()
    status, created = agent.call("POST", "/kernels", TENANT)
    assert status == 201
    health = draining(agent)
    assert (health["status"], health["in_use"], health["tenant"]) == ("draining", 1, "alice")
    assert agent.call("POST", "/kernels", TENANT) == (503, {"error": {"code": 503,
                                                                      "message": "this executor is draining"}})
    assert agent.run(created, "6 * 7").bundles("execute_result") == [{"text/plain": "42"}]
    assert agent.process.poll() is None
    assert agent.call("DELETE", f"/kernels/{created['kernel_id']}")[0] == 204
    assert agent.process.wait(30) == 0
    assert [e["in_use"] for e in agent.events("executor_draining")] == [1]
    assert [e["reason"] for e in agent.events("executor_stopped")] == ["drained"]


def test_drain_timeout_ends_the_wait(start_agent):
    """A kernel still held when the drain timeout passes does not keep the agent up."""
    agent = start_agent("--drain-timeout=1")
    assert agent.call("POST", "/kernels", TENANT)[0] == 201
    draining(agent)
    assert agent.process.wait(30) == 0
    assert [e["reason"] for e in agent.events("executor_stopped")] == ["drain_timeout"]


def test_second_sigterm_stops_at_once(start_agent):
    """A second SIGTERM while draining stops the agent without waiting for its kernels."""
    agent = start_agent()
    assert agent.call("POST", "/kernels", TENANT)[0] == 201
    draining(agent)
    agent.process.send_signal(signal.SIGTERM)
    assert agent.process.wait(30) == 0
    assert [e["reason"] for e in agent.events("executor_stopped")] == ["SIGTERM"]
