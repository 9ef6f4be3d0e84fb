"""The system calls of the executor container, recorded with ``strace -f``, against its seccomp profile
(``ops/seccomp/executor.json``).

The executor agent runs as compose and ECS start it (``--user-namespaces``, the relay, a key file), as uid
65534 without capabilities beneath a ``/proc`` masked as Docker masks it, under ``strace -f``; ``work`` drives
it: health checks (and the image's HEALTHCHECK command), kernels of two tenants, a dataset, cards with
pandas, pyarrow tables (fetched as the server fetches them), matplotlib and Bokeh, threads and files,
interrupts of a sleeping and of a busy cell, deletions, then SIGTERM (drain). ``--attacks`` records the kernel
attack suites too, as the executor container runs them (tests/containers/test_executor_attacks.py).

A call counts as needed when some call of it ended otherwise than the profile would end it: one that
failed with EPERM (a kernel's own filter, or the kernel's permission checks) fails alike under the
profile's default. ``clone`` with a namespace flag is told apart (``clone+namespaces``): the profile allows
``clone`` without one only.

    python -m tests.kernels.syscalls [--attacks] [--write]

prints the needed calls (``--write``: into the profile's recorded rule, with their aarch64 forms).
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jupyter_client import BlockingKernelClient

from tests.kernels.agent_process import AgentProcess, free_port, public_pem
from tests.kernels.test_agent import token
from tests.kernels.test_agent_user_namespaces import masking_proc
from tests.kernels.unprivileged import REPO, as_nobody, nobody_directory

PROFILE = REPO / "ops" / "seccomp" / "executor.json"
RECORDED = "recorded"  # the comment's first word of the profile's rule of recorded calls
EPERM, ENOSYS = 1, 38
# Never allowed, whatever a recording finds: what reaches beyond the container's own processes and files, or
# into the host kernel's riskiest interfaces. None has a legitimate use in the agent, its template or a kernel.
FORBIDDEN = frozenset({
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "open_by_handle_at", "name_to_handle_at", "mount_setattr", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "setns", "chroot", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "swapon", "swapoff", "reboot", "acct", "syslog", "quotactl", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "iopl", "ioperm", "personality", "lookup_dcookie", "uselib", "vhangup",
    "nfsservctl", "memfd_secret", "fanotify_init", "setdomainname", "sysfs", "_sysctl", "ustat",
})
# The x86_64-only calls and what aarch64 (which has only the generic table) calls in their place.
AARCH64_FORMS = {
    "open": "openat", "creat": "openat", "stat": "newfstatat", "lstat": "newfstatat", "access": "faccessat",
    "readlink": "readlinkat", "mkdir": "mkdirat", "rmdir": "unlinkat", "unlink": "unlinkat", "rename": "renameat",
    "link": "linkat", "symlink": "symlinkat", "chmod": "fchmodat", "chown": "fchownat", "lchown": "fchownat",
    "mknod": "mknodat", "utimes": "utimensat", "futimesat": "utimensat", "getdents": "getdents64",
    "pipe": "pipe2", "dup2": "dup3", "poll": "ppoll", "select": "pselect6", "epoll_wait": "epoll_pwait",
    "epoll_create": "epoll_create1", "inotify_init": "inotify_init1", "eventfd": "eventfd2",
    "signalfd": "signalfd4", "fork": "clone", "vfork": "clone", "alarm": "setitimer", "pause": "rt_sigsuspend",
    "time": "clock_gettime", "getpgrp": "getpgid",
}
# The Python that runs the agent: recording starts at its execve (before it: the wrappers dropping to uid 65534).
LINE = re.compile(r"^(\d+) +(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")
RESULT = re.compile(r"\) += (?:(-1) (E\w+)|[^ ]+)")


def strace(argv: list[str], output: Path) -> list[str]:
    """``argv`` under ``strace -f``, its calls written to ``output``."""
    return ["strace", "-f", "-qq", "-s", "0", "-o", str(output), *argv]


def outcomes(trace: Iterable[str], executable: str = sys.executable) -> dict[str, set[str]]:
    """Each call's name and how its calls ended (``ok`` or the errno's name), from the program's execve on."""
    seen: dict[str, set[str]] = defaultdict(set)
    started = False
    for line in trace:
        match = LINE.match(line)
        if match is None or line.endswith("<unfinished ...>"):
            continue
        name, rest = match.group(2) or match.group(3), match.group(4)
        if not started:
            started = name == "execve" and rest.startswith(f'"{executable}"') and rest.rstrip().endswith("= 0")
            continue
        if name == "clone" and "CLONE_NEW" in rest:
            name = "clone+namespaces"
        result = RESULT.search(rest)
        seen[name].add(result.group(2) if result and result.group(1) else "ok")
    return dict(seen)


def merged(*recorded: dict[str, set[str]]) -> dict[str, set[str]]:
    total: dict[str, set[str]] = defaultdict(set)
    for one in recorded:
        for name, ends in one.items():
            total[name] |= ends
    return dict(total)


def load_profile(path: Path = PROFILE) -> dict[str, Any]:
    return json.loads(path.read_text())


def denial(profile: dict[str, Any], name: str) -> str | None:
    """The errno's name with which ``profile`` fails every call ``name`` (whatever its arguments), or None if it
    allows some. ``clone+namespaces`` is ``clone`` with a namespace flag, which the conditional rule does not allow."""
    for rule in profile["syscalls"]:
        if name.split("+")[0] in rule["names"] and not (name == "clone+namespaces" and rule.get("args")):
            return None if rule["action"] == "SCMP_ACT_ALLOW" else errno.errorcode[rule.get("errnoRet", EPERM)]
    return errno.errorcode[profile.get("defaultErrnoRet", EPERM)]


def needed(recorded: dict[str, set[str]], profile: dict[str, Any]) -> set[str]:
    """The calls some of whose calls ended otherwise than the profile's default errno would end them. A call a
    rule of ``profile`` fails on purpose (``clone3``: ENOSYS, and glibc falls back to ``clone``) is not needed."""
    failed = {name for rule in profile["syscalls"] if rule["action"] != "SCMP_ACT_ALLOW" for name in rule["names"]}
    default = errno.errorcode[profile.get("defaultErrnoRet", EPERM)]
    return {name for name, ends in recorded.items() if ends - {default} and name not in failed}


def refused(recorded: dict[str, set[str]], profile: dict[str, Any]) -> dict[str, set[str]]:
    """The needed calls that ``profile`` fails, with how they ended in the recording."""
    return {name: recorded[name] for name in sorted(needed(recorded, profile)) if denial(profile, name)}


def allowed(profile: dict[str, Any]) -> set[str]:
    """Every call some rule of ``profile`` allows (conditionally or not)."""
    return {name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}


# ---- the work recorded ----

CARDS = {
    "pandas and a table": '''
import pandas as pd, numpy as np
sales = load_dataset("sales")
sales["day"] = pd.to_datetime(sales["day"])
summary = sales.groupby("region").agg(total=("amount", "sum"), days=("day", "nunique"))
display(summary)
pd.DataFrame({"n": np.arange(5000), "x": np.random.default_rng(1).normal(size=5000)})
''',
    "matplotlib": '''
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([1, 2, 3], [3, 1, 2])
ax.set_title("売上")
plt.show()
''',
    "bokeh": '''
from bokeh.plotting import figure
p = figure(title="t", width=400)
p.line([1, 2, 3], [3, 1, 2])
p
''',
    "numpy, arrow and the standard library": '''
import datetime, decimal, hashlib, json, math, random, statistics, time, zoneinfo
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.compute as pc
m = np.random.default_rng(2).normal(size=(300, 300))
u, s, vt = np.linalg.svd(m @ m.T)
t = pa.table({"k": pa.array(["a", "b"] * 50000), "v": pa.array(np.arange(100000.0))})
grouped = t.group_by("k").aggregate([("v", "sum")])
frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=500, freq="h", tz="Asia/Tokyo"), "v": range(500)})
weekly = frame.resample("W", on="when").sum()
print(float(s[0]) > 0, pc.sum(t["v"]).as_py(), grouped.num_rows, len(weekly), frame.to_csv()[:10],
      datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo")).year > 2000, hashlib.sha256(b"x").hexdigest()[:8],
      json.dumps({"d": str(decimal.Decimal("1.1") * 3)}), statistics.mean([1, 2, 3]), math.pi > 3,
      random.random() < 1, time.time() > 0)
weekly''',
}


def run_card(agent: AgentProcess, created: dict[str, Any], name: str) -> None:
    result = agent.run(created, CARDS[name])
    assert result.status == "ok", (name, result.outputs)
    for bundle in result.bundles("execute_result") + result.bundles("display_data"):
        table = bundle.get("application/vnd.bi.table-file.v1+json")
        if table:
            status, _ = fetch_table(agent, created, table["name"])
            assert status == 200, (name, status)


def fetch_table(agent: AgentProcess, created: dict[str, Any], table: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{agent.base_url}/kernels/{created['kernel_id']}/tables/{table}",
                                     headers={"Authorization": f"Bearer {token(key=agent.key)}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def interrupt(agent: AgentProcess, created: dict[str, Any], code: str) -> None:
    """Run ``code`` (which would not end by itself), interrupt it through the agent, see it end."""
    client = BlockingKernelClient()
    client.load_connection_info(created["connection"])
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        msg_id = client.execute(code)
        time.sleep(1)
        assert agent.call("POST", f"/kernels/{created['kernel_id']}/interrupt")[0] == 204
        while True:
            reply = client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                assert reply["content"]["status"] == "error", reply["content"]
                return
    finally:
        client.stop_channels()


def health_check(port: int, output: Path) -> None:
    """The image's HEALTHCHECK command (kernel_image/Dockerfile), as uid 65534 under strace."""
    code = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=2)"
    subprocess.run(strace(as_nobody([sys.executable, "-c", code]), output), check=True, timeout=60)


def work(agent: AgentProcess, port: int, folder: Path) -> None:
    """What an executor does in a day, in small."""
    status, health = agent.call("GET", "/health")
    assert status == 200 and health["tenancy"] == "multi", health
    health_check(port, folder / "healthcheck.trace")
    alice = agent.call("POST", "/kernels", {"tenant": "alice"})[1]
    bob = agent.call("POST", "/kernels", {"tenant": "bob"})[1]
    sales = io.BytesIO()
    pd.DataFrame({"region": ["east", "west", "north"] * 40, "amount": range(120),
                  "day": [f"2024-01-{n % 28 + 1:02d}" for n in range(120)]}).to_parquet(sales)
    assert agent.call("PUT", f"/kernels/{alice['kernel_id']}/datasets/sales", raw=sales.getvalue())[0] == 204
    for name in CARDS:
        run_card(agent, alice, name)
    run_card(agent, bob, "bokeh")
    interrupt(agent, alice, "import time\ntime.sleep(120)")
    interrupt(agent, bob, "while True:\n    pass")
    run_card(agent, alice, "matplotlib")
    for created in (alice, bob):
        assert agent.call("DELETE", f"/kernels/{created['kernel_id']}")[0] == 204
    assert agent.call("GET", "/usage")[0] == 200


def as_container(argv: list[str]) -> list[str]:
    """``argv`` as the executor container runs its processes: uid 65534 without capabilities (none to gain
    either), beneath a ``/proc`` masked as Docker's."""
    command = as_nobody(argv)
    at = command.index("setpriv") + 1
    command[at:at] = ["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"]
    return masking_proc(command)


@contextmanager
def traced_agent(folder: Path) -> Iterator[tuple[AgentProcess, int]]:
    """The agent as the executor container starts it, under strace, its trace in ``folder/agent.trace``."""
    key, port = Ed25519PrivateKey.generate(), free_port()
    relay = 20000 + os.getpid() % 400 * 100
    with nobody_directory() as home:
        (home / "key.pub.pem").write_text(public_pem(key))
        command = as_container([sys.executable, "-m", "kernels", "--ip=127.0.0.1", f"--port={port}",
                                f"--run-dir={home}/run", "--relay", f"--relay-ports={relay}-{relay + 99}",
                                "--max-kernels=4", "--user-namespaces", "--allow-weaker-sandbox",
                                f"--public-key={home}/key.pub.pem"])
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home), "PYTHONPATH": str(REPO),
               "PYTHONDONTWRITEBYTECODE": "1"}
        agent = AgentProcess(strace(command, folder / "agent.trace"), env, port, key,
                             folder / "agent.log", home)
        try:
            yield agent, port
        finally:  # SIGTERM to the agent itself (strace would only detach from it), and strace ends with it
            pid = int(Path(f"/proc/{agent.process.pid}/task/{agent.process.pid}/children").read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            try:
                code = agent.process.wait(120)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                code = agent.process.wait()
            assert code == 0, (code, agent.logs()[-3000:])


def record_agent(folder: Path) -> dict[str, set[str]]:
    with traced_agent(folder) as (agent, port):
        work(agent, port, folder)
    return merged(*(outcomes(path.read_text().splitlines()) for path in folder.glob("*.trace")))


def record_attacks(folder: Path) -> dict[str, set[str]]:
    """The kernel attack suites as tests/containers/test_executor_attacks.py runs them in the container."""
    from tests.containers.test_executor_attacks import ONE_LOOP_PER_MODULE, SUITES
    compose = ["--ip=127.0.0.1", "--relay", "--max-kernels=4", "--user-namespaces", "--allow-weaker-sandbox"]
    with nobody_directory() as home:
        command = as_container([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *SUITES,
                                *ONE_LOOP_PER_MODULE, "--timeout=600", "-x"])
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(REPO), "TMPDIR": str(home),
               "HOME": str(home), "BI_TEST_EXECUTOR_COMMAND": json.dumps(compose)}
        trace = folder / "attacks.trace"
        done = subprocess.run(strace(command, trace), cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=3600)
        assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    return outcomes(trace.read_text().splitlines())


def write(profile: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """``profile`` with its recorded rule holding ``names`` (those no other rule names) and their aarch64 forms."""
    others = {name for rule in profile["syscalls"] if not rule.get("comment", "").startswith(RECORDED)
              for name in rule["names"]}
    plain = {name for name in names if "+" not in name}
    plain |= {AARCH64_FORMS[name] for name in plain if name in AARCH64_FORMS}
    for rule in profile["syscalls"]:
        if rule.get("comment", "").startswith(RECORDED):
            rule["names"] = sorted(plain - others)
    return profile


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", action="store_true", help="record the kernel attack suites too")
    parser.add_argument("--write", action="store_true", help=f"write the needed calls into {PROFILE.name}")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bi-strace-") as folder:
        recorded = record_agent(Path(folder))
        if args.attacks:
            recorded = merged(recorded, record_attacks(Path(folder)))
    profile = load_profile()
    print(json.dumps({name: sorted(ends) for name, ends in sorted(recorded.items())}))
    missing = refused(recorded, profile)
    print(f"needed: {len(needed(recorded, profile))}; refused by the profile: {missing}", file=sys.stderr)
    if args.write:
        PROFILE.write_text(json.dumps(write(profile, needed(recorded, profile)), indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
