"""The executor agent started as a non-root user (as in its container): a weaker sandbox, one tenant."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernels.agent import CACHE_DIRECTORY
from kernels.agent_app import PUBLIC_KEY_VARIABLE, RELAY_DIRECTORY
from tests.kernels.agent_process import AgentProcess, free_port, public_pem
from tests.kernels.sandbox.helpers import require
from tests.kernels.test_attacks import EACCES, EPERM, MARKER, PRELUDE, REPORT
from tests.kernels.unprivileged import NOBODY, as_nobody, nobody_directory

MAX_KERNELS = 2


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> Iterator[AgentProcess]:
    """``python -m kernels --allow-weaker-sandbox`` as uid 65534, the key in the environment."""
    key, port = Ed25519PrivateKey.generate(), free_port()
    with nobody_directory() as home:
        command = as_nobody([sys.executable, "-m", "kernels", f"--port={port}", f"--run-dir={home}/run",
                             "--pool-size=1", f"--max-kernels={MAX_KERNELS}", "--allow-weaker-sandbox"])
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", PUBLIC_KEY_VARIABLE: public_pem(key)}
        process = AgentProcess(command, env, port, key, tmp_path_factory.mktemp("agent") / "agent.log", home)
        yield process
        process.stop()


def card(agent: AgentProcess, created: dict[str, Any], code: str, **args: Any) -> dict[str, Any]:
    """Run ``PRELUDE`` + ``code`` in the kernel ``created`` by the agent; return its ``RESULTS``."""
    result = agent.run(created, PRELUDE + f"ARGS = json.loads({json.dumps(json.dumps(args))})\n" + code + REPORT)
    assert result.status == "ok", result.outputs
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0][len(MARKER):])


def test_single_tenant_capacity_and_health(agent):
    """Without the uid layer the agent holds one tenant's kernels at a time, up to its capacity; the
    next tenant gets no warm kernel that lived beside the previous one's."""
    status, health = agent.call("GET", "/health")
    assert status == 200 and "uid" in health["weaker_sandbox"] and health["sandbox"]["root"] is False
    assert (health["tenancy"], health["capacity"], health["in_use"], health["tenant"], health["draining"]) == \
        ("single", MAX_KERNELS, 0, None, False)
    assert agent.call("POST", "/kernels")[0] == 400
    assert agent.call("POST", "/kernels", {"tenant": "not ok!"})[0] == 400
    assert agent.call("POST", "/kernels", raw=b"{")[0] == 400
    first = agent.call("POST", "/kernels", {"tenant": "alice"})
    assert first[0] == 201
    refused = agent.call("POST", "/kernels", {"tenant": "bob"})
    assert refused == (409, {"error": {"code": 409, "message": "this executor holds another user's kernels"}})
    second = agent.call("POST", "/kernels", {"tenant": "alice"})
    full = agent.call("POST", "/kernels", {"tenant": "alice"})
    assert second[0] == 201 and full[0] == 503 and full[1]["error"]["message"] == "this executor is full (2 kernels)"
    health = agent.call("GET", "/health")[1]
    assert (health["in_use"], health["tenant"], health["status"]) == (2, "alice", "ok")
    for created in (first[1], second[1]):
        assert agent.call("DELETE", f"/kernels/{created['kernel_id']}")[0] == 204
    warm = {path.name for path in (agent.cwd / "run").iterdir()} - {RELAY_DIRECTORY, CACHE_DIRECTORY}
    assert len(warm) == 1  # lived beside alice's kernels
    other = agent.call("POST", "/kernels", {"tenant": "bob"})
    assert other[0] == 201 and agent.call("GET", "/health")[1]["tenant"] == "bob"
    assert other[1]["kernel_id"][:12] not in warm
    assert agent.call("DELETE", f"/kernels/{other[1]['kernel_id']}")[0] == 204


def test_a_cached_dataset_reaches_a_kernel_of_the_agents_uid_as_a_copy(agent):
    """A kernel running as the agent's own uid could chmod and write a linked file: it gets a copy of the cached
    version, never the cached file itself."""
    version = "cd" * 32
    first = agent.call("POST", "/kernels", {"tenant": "alice"})[1]["kernel_id"]
    assert agent.call("PUT", f"/kernels/{first}/datasets/sales?version={version}", raw=b"PAR1 sales")[0] == 204
    second = agent.call("POST", "/kernels", {"tenant": "alice"})[1]["kernel_id"]
    assert agent.call("POST", f"/kernels/{second}/datasets/sales/link", {"version": version}) == (
        200, {"placed": True, "mechanism": "copy", "bytes_copied": 10})
    cached = agent.cwd / "run" / CACHE_DIRECTORY / f"{version}.parquet"
    placed = [agent.cwd / "run" / kernel_id[:12] / "datasets" / "sales.parquet" for kernel_id in (first, second)]
    assert len({cached.stat().st_ino, *(path.stat().st_ino for path in placed)}) == 3
    assert cached.read_bytes() == b"PAR1 sales"
    for kernel_id in (first, second):
        assert agent.call("DELETE", f"/kernels/{kernel_id}")[0] == 204


def test_kernels_run_as_the_agent_uid_and_stay_apart(agent):
    """Kernels run code as the agent's uid with seccomp (no AF_INET) and an allowlisted environment
    (not the agent's public key variable), read datasets, and Landlock keeps each kernel's writes in
    its own workdir: a sibling's is out of reach."""
    require(agent.call("GET", "/health")[1]["sandbox"]["landlock_abi"] > 0, "needs Landlock")
    a = agent.call("POST", "/kernels", {"tenant": "alice"})[1]
    b = agent.call("POST", "/kernels", {"tenant": "alice"})[1]
    try:
        parquet = io.BytesIO()
        pd.DataFrame({"n": [1, 2, 3]}).to_parquet(parquet)
        assert agent.call("PUT", f"/kernels/{a['kernel_id']}/datasets/sales", raw=parquet.getvalue())[0] == 204
        seen = card(agent, a, '''
attempt("inet", lambda: sys.modules["socket"].socket(sys.modules["socket"].AF_INET))
attempt("write workdir", lambda: builtins.open("mine.txt", "w").close())
RESULTS.update(uid=os.getuid(), cwd=os.getcwd(), home=os.environ["HOME"], environ=sorted(os.environ),
               sales=int(load_dataset("sales")["n"].sum()))
''')
        workdir = seen.pop("cwd")
        kernel_dir = str((agent.cwd / "run" / a["kernel_id"][:12]).resolve())
        assert workdir.startswith(kernel_dir) and seen.pop("home") == workdir
        assert PUBLIC_KEY_VARIABLE not in seen.pop("environ")
        assert seen == {"inet": EPERM, "write workdir": "ok", "uid": NOBODY, "sales": 6}
        assert card(agent, b, '''
attempt("write sibling", lambda: builtins.open(ARGS["sibling"] + "/planted", "w").close())
attempt("write own", lambda: builtins.open("own.txt", "w").close())
''', sibling=workdir) == {"write sibling": EACCES, "write own": "ok"}
    finally:
        for created in (a, b):
            agent.call("DELETE", f"/kernels/{created['kernel_id']}")
