"""The executor agent as a non-root uid without capabilities, with ``--user-namespaces``: every kernel in
namespaces of its own inside a user namespace of the agent's uid (issue 18, point 3).

The attacks that reach a kernel's neighbours in the weaker single-tenant mode (``test_agent_unprivileged``;
the "point 3" differences of ``test_attacks``) must fail here: the container's /etc and processes, the
agent's files, sibling kernels of the same tenant and of others, their ``/proc`` files, the network.
``BI_TEST_LANDLOCK_ABI`` caps the Landlock ABI the agent uses (the suite as an older host kernel runs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jupyter_client import BlockingKernelClient

from kernels import disk_bounds
from kernels.agent_app import PUBLIC_KEY_VARIABLE
from kernels.sandbox.inside import EXPECTED
from tests.kernels.conftest import LANDLOCK_ABI_VARIABLE
from tests.kernels.agent_process import AgentProcess, free_port, public_pem
from tests.kernels.test_agent_unprivileged import card
from tests.kernels.test_attacks import ENOENT, EPERM, EROFS, INJECT
from tests.kernels.unprivileged import NOBODY, as_nobody, nobody_directory

MAX_KERNELS = 4
LANDLOCK_ABI = int(os.environ.get(LANDLOCK_ABI_VARIABLE) or 0)


def masking_proc(argv: list[str]) -> list[str]:
    """``argv`` in a private mount namespace where, as Docker masks parts of ``/proc``, ``/dev/null`` covers
    ``/proc/timer_list``: the kernel then refuses a fresh procfs in a user namespace (it would reveal what is
    covered), so the kernels get none."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind /dev/null /proc/timer_list && exec "$@"', "sh", *argv]


@pytest.fixture(scope="module", params=["host /proc", "masked /proc"])
def agent(request, tmp_path_factory) -> Iterator[AgentProcess]:
    """``python -m kernels --user-namespaces`` as uid 65534 with no capabilities at all, beneath the host's
    /proc and beneath one masked as Docker's is."""
    key, port = Ed25519PrivateKey.generate(), free_port()
    with nobody_directory() as home:
        command = as_nobody([sys.executable, "-m", "kernels", f"--port={port}", f"--run-dir={home}/run",
                             "--pool-size=1", f"--max-kernels={MAX_KERNELS}", "--user-namespaces",
                             f"--landlock-abi={LANDLOCK_ABI}"])
        at = command.index("setpriv") + 1
        command[at:at] = ["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"]
        if request.param == "masked /proc":
            command = masking_proc(command)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", PUBLIC_KEY_VARIABLE: public_pem(key)}
        process = AgentProcess(command, env, port, key, tmp_path_factory.mktemp("agent") / "agent.log", home)
        process.masked_proc = request.param == "masked /proc"  # type: ignore[attr-defined]
        yield process
        process.stop()


def kernel(agent: AgentProcess, tenant: str) -> dict:
    status, created = agent.call("POST", "/kernels", {"tenant": tenant})
    assert status == 201, created
    return created


def nobody_pids() -> list[int]:
    """Host pids of every process of uid 65534: the agent, its template and every kernel (and reaper)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == NOBODY:
                pids.append(int(pid))
        except FileNotFoundError:
            continue
    return pids


def test_health_reports_every_layer_from_inside_a_kernel(agent):
    """A sandboxed child reported every layer, so the agent is multi-tenant and misses only cgroups."""
    health = agent.call("GET", "/health")[1]
    layers = health["kernel_layers"]
    assert {key: layers[key] for key in EXPECTED} == EXPECTED
    assert layers["proc"] == ("none" if agent.masked_proc else "fresh") and layers["uid"] == NOBODY
    assert (health["tenancy"], health["weaker_sandbox"], health["sandbox"]["root"]) == ("multi", ["cgroup"], False)


def test_kernels_per_tenant_are_capped(agent):
    """Without cgroups tenants share the agent's limits: a tenant past its cap (2) gets 409 (the server
    places that kernel elsewhere), another tenant still gets a kernel."""
    held = [kernel(agent, "alice"), kernel(agent, "alice")]
    try:
        assert agent.call("POST", "/kernels", {"tenant": "alice"}) == (
            409, {"error": {"code": 409, "message": "this user holds 2 kernels on this executor"}})
        held.append(kernel(agent, "bob"))
    finally:
        for created in held:
            agent.call("DELETE", f"/kernels/{created['kernel_id']}")


def test_container_files_processes_and_agent_files_are_out_of_view(agent):
    """/etc holds only the bound files, /etc/shadow is not in the view (ENOENT), of the agent's directory
    only the way to the kernel's own directory is, the kernel is pid 1 and sees no other process, none of the host's pids has a /proc entry."""
    created = kernel(agent, "alice")
    try:
        seen = card(agent, created, '''
attempt("read /etc/shadow", read(lambda: builtins.open("/etc/shadow").read()))
attempt("list the agent's directory", lambda: os.listdir(ARGS["home"]))
attempt("list the run directory", lambda: os.listdir(ARGS["run"]))
for pid in ARGS["pids"]:
    for name in ("environ", "mem", "fd", "cmdline"):
        attempt(f"{name} of a host process", lambda: builtins.open(f"/proc/{pid}/{name}", "rb").read())
RESULTS["/etc"] = sorted(os.listdir("/etc"))
RESULTS["pid"] = os.getpid()
RESULTS["processes"] = sorted(name for name in os.listdir("/proc") if name.isdigit())
attempt("write /", lambda: builtins.open("/planted", "w").close())
attempt("write the workdir", lambda: builtins.open("planted", "w").close())
''', home=str(agent.cwd), run=str(agent.cwd / "run"), pids=[pid for pid in nobody_pids() if pid != 1])
    finally:
        agent.call("DELETE", f"/kernels/{created['kernel_id']}")
    assert set(seen.pop("/etc")) <= {"ld.so.cache", "localtime"}
    assert seen.pop("processes") in (["1"], [])  # a fresh /proc of its PID namespace, or none
    assert seen == {"read /etc/shadow": ENOENT, "list the agent's directory": ["run"],
                    "list the run directory": [created["kernel_id"][:12]],  # the way to its own directory only
                    "environ of a host process": ENOENT, "mem of a host process": ENOENT,
                    "fd of a host process": ENOENT, "cmdline of a host process": ENOENT,
                    "pid": 1, "write /": EROFS, "write the workdir": "ok"}


def test_sibling_kernels_of_one_tenant_are_out_of_reach(agent):
    """Kernel A of alice, given B's full connection info, sees neither B's directory nor B's sockets
    (ENOENT: the mount view shows A its own only); injecting into A itself works (positive control)."""
    a, b = kernel(agent, "alice"), kernel(agent, "alice")
    own, sibling = (ipc_connection(agent, created) for created in (a, b))
    try:
        seen = card(agent, a, INJECT, own=own, sibling=sibling, run_dir=str(agent.cwd / "run"),
                    sibling_dir=str(agent.cwd / "run" / b["kernel_id"][:12]),
                    sibling_shell=f"{sibling['ip']}-{sibling['shell_port']}", own_shell=f"{own['ip']}-{own['shell_port']}")
    finally:
        for created in (a, b):
            agent.call("DELETE", f"/kernels/{created['kernel_id']}")
    assert seen == {"run dir": [a["kernel_id"][:12]], "list the sibling's directory": ENOENT,
                    "read the sibling's connection file": ENOENT, "connect to the sibling's shell": ENOENT,
                    "connect to the own shell": "ok", "inject into the sibling": "no reply",
                    "inject into the own kernel": "no reply"}


def ipc_connection(agent: AgentProcess, created: dict) -> dict:
    """The kernel's own ipc sockets (the agent hands out its relay's), with its key: what a leaked
    connection file holds."""
    return json.loads((agent.cwd / "run" / created["kernel_id"][:12] / "connection.json").read_text())


def test_a_kernels_proc_files_are_closed_to_its_own_uid(agent):
    """Behind the PID namespace: a kernel is not dumpable, so even a process of the same uid outside every
    namespace (here: a shell as uid 65534) cannot open its environ, mem or fds (EACCES)."""
    before = set(nobody_pids())
    created = kernel(agent, "bob")
    try:
        card(agent, created, "RESULTS['pid'] = os.getpid()")
        kernels = [pid for pid in set(nobody_pids()) - before
                   if Path(f"/proc/{pid}/status").read_text().count("NSpid") and
                   Path(f"/proc/{pid}/status").read_text().split("NSpid:")[1].split("\n")[0].split()[-1] == "1"]
        assert kernels, "the new kernel (pid 1 of its namespace) is among the host's processes"
        for pid in kernels:
            for name, command in (("environ", "cat"), ("mem", "cat"), ("fd", "ls")):
                probe = subprocess.run(as_nobody([command, f"/proc/{pid}/{name}"]), capture_output=True, text=True,
                                       timeout=30)
                assert probe.returncode != 0 and "Permission denied" in probe.stderr, (name, probe)
    finally:
        agent.call("DELETE", f"/kernels/{created['kernel_id']}")


def test_no_network_no_namespaces_no_mounts(agent):
    """AF_INET is denied (seccomp), and the loopback is down; after its own setup the kernel can make no
    namespace and no mount (seccomp denies what the user namespace would allow)."""
    created = kernel(agent, "carol")
    try:
        seen = card(agent, created, '''
socket = sys.modules["socket"]
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", 80), timeout=2))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
call("unshare user", libc.unshare(0x10000000))
call("unshare net", libc.unshare(0x40000000))
call("mount tmpfs", libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None))
call("setns", libc.setns(0, 0))
''')
    finally:
        agent.call("DELETE", f"/kernels/{created['kernel_id']}")
    assert seen == {"tcp": EPERM, "udp": EPERM, "unshare user": "EPERM", "unshare net": "EPERM",
                    "mount tmpfs": "EPERM", "setns": "EPERM"}


def test_tenants_write_only_their_own_workdir(agent):
    """Kernels of two tenants at once (multi-tenant): neither can write the other's workdir, nor its datasets."""
    a, b = kernel(agent, "alice"), kernel(agent, "bob")
    try:
        cwd = card(agent, a, 'builtins.open("alice.txt", "w").close()\nRESULTS["cwd"] = os.getcwd()')["cwd"]
        seen = card(agent, b, '''
attempt("write the other's datasets", lambda: builtins.open(ARGS["datasets"] + "/x.parquet", "w").close())
RESULTS["same workdir path, own tmpfs"] = os.getcwd() == ARGS["cwd"] and not os.path.exists("alice.txt")
''', cwd=cwd, datasets=str(agent.cwd / "run" / a["kernel_id"][:12] / "datasets"))
    finally:
        for created in (a, b):
            agent.call("DELETE", f"/kernels/{created['kernel_id']}")
    assert seen == {"write the other's datasets": ENOENT, "same workdir path, own tmpfs": True}



def test_the_agent_interrupts_and_stops_its_kernels(agent):
    """The agent, outside the kernels' user namespaces, still signals them: an endless loop stops on
    ``POST /interrupt`` (SIGINT relayed by the reaper), and ``DELETE`` ends the kernel (its directory goes)."""
    created = kernel(agent, "dave")
    client = BlockingKernelClient()
    client.load_connection_info(created["connection"])
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        msg_id = client.execute("while True:\n    pass\n")
        time.sleep(0.5)
        assert agent.call("POST", f"/kernels/{created['kernel_id']}/interrupt")[0] == 204
        reply = client.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert (reply["content"]["status"], reply["content"]["ename"]) == ("error", "KeyboardInterrupt")
    finally:
        client.stop_channels()
    assert agent.call("DELETE", f"/kernels/{created['kernel_id']}")[0] == 204
    assert not (agent.cwd / "run" / created["kernel_id"][:12]).exists()


def test_a_kernel_past_its_disk_bounds_is_stopped(agent):
    """Here a kernel's tables folder is on the agent's disk, not a tmpfs of its own: a card that fills it with
    files (past ``disk_bounds.MAX_ENTRIES``) has its kernel stopped within seconds, its exit saying why."""
    created = kernel(agent, "erin")
    tables = agent.cwd / "run" / created["kernel_id"][:12] / "tables"
    try:
        try:
            seen = card(agent, created, '''
for number in range(ARGS["files"]):
    builtins.open(f"{ARGS['tables']}/planted-{number}", "w").close()
RESULTS["written"] = len(os.listdir(ARGS["tables"]))
''', tables=str(tables), files=disk_bounds.MAX_ENTRIES + 10)
            assert seen == {"written": disk_bounds.MAX_ENTRIES + 10}
        except TimeoutError:
            pass  # stopped before the card could report (a loaded machine wrote slower than the checks): see why below
        deadline = time.monotonic() + 30
        while (state := agent.call("GET", f"/kernels/{created['kernel_id']}")[1])["alive"]:
            assert time.monotonic() < deadline, "the kernel past its bounds still runs"
            time.sleep(0.2)
        assert state["exit"]["code"] == disk_bounds.DISK_LIMIT and "tables folder" in state["exit"]["message"]
        assert [event["kernel_id"] for event in agent.events("kernel_over_disk")] == [created["kernel_id"]]
    finally:
        agent.call("DELETE", f"/kernels/{created['kernel_id']}")
    assert not tables.exists()
