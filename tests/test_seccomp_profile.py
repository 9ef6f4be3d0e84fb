"""The executor container's seccomp profile (``ops/seccomp/executor_profile.py``): Docker's default plus exactly
what ``--user-namespaces`` needs, and with it (not with Docker's default alone) a non-root process without
capabilities builds a kernel's every layer.

The profile is loaded here as Docker loads it for a container with ``cap_drop: ALL`` on x86_64 (rules that
need a capability or another architecture left out), by libseccomp in a child as uid 65534. Docker's default
comes from Debian's ``golang-github-docker-docker-dev`` (the daemon's own source package), installed or, in CI,
extracted (``apt-get download`` + ``dpkg-deb -x``) with ``BI_DOCKER_SECCOMP_DEFAULT`` naming the file: without
it the tests skip.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.kernels.unprivileged import REPO, as_nobody, nobody_directory

sys.path.insert(0, str(REPO / "ops" / "seccomp"))
import executor_profile  # noqa: E402

DEFAULT = Path(os.environ.get("BI_DOCKER_SECCOMP_DEFAULT", executor_profile.DEBIAN_DEFAULT))
NEEDS = json.loads(executor_profile.NEEDS.read_text())

# Runs in the child: load the profile (as Docker would for cap_drop ALL), then build a kernel's sandbox.
LOAD_AND_PROBE = '''
import dataclasses, errno, json, os, sys
import pyseccomp as seccomp
from kernels.sandbox import SandboxConfig
from kernels.sandbox.inside import holds, probe_kernel

profile = json.load(open(sys.argv[1]))
f = seccomp.SyscallFilter(seccomp.ERRNO(profile.get("defaultErrnoRet", errno.EPERM)))
ops = {"SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ, "SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_NE": seccomp.NE,
       "SCMP_CMP_GE": seccomp.GE, "SCMP_CMP_GT": seccomp.GT, "SCMP_CMP_LE": seccomp.LE, "SCMP_CMP_LT": seccomp.LT}
for rule in profile["syscalls"]:
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if includes.get("caps") or "amd64" not in includes.get("arches", ["amd64"]) or "amd64" in excludes.get("arches", []):
        continue  # cap_drop ALL on x86_64
    action = seccomp.ALLOW if rule["action"] == "SCMP_ACT_ALLOW" else seccomp.ERRNO(rule.get("errnoRet", errno.EPERM))
    args = [seccomp.Arg(a["index"], ops[a["op"]], a["value"], a.get("valueTwo", 0)) for a in rule.get("args") or []]
    for name in rule["names"]:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        if number >= 0:
            f.add_rule(action, number, *args)
f.load()
report = probe_kernel(dataclasses.asdict(SandboxConfig(uid=os.getuid(), gid=os.getgid(), user_namespace=True,
                                                       skip=("cgroup",))))
print(json.dumps({"holds": holds(report), "report": report}))
'''


@pytest.fixture(scope="module")
def docker_default() -> dict[str, Any]:
    if not DEFAULT.is_file():
        pytest.skip(f"Docker's default seccomp profile is not installed ({DEFAULT}: Debian's "
                    "golang-github-docker-docker-dev)")
    if platform.machine() != "x86_64":
        pytest.skip("the profile is loaded as on x86_64")
    return json.loads(DEFAULT.read_text())


def test_the_profile_is_the_default_plus_one_rule(docker_default):
    """Every rule of Docker's default stays as it is; one rule allows the agent's needs to every process, and
    each of them the default allowed only with CAP_SYS_ADMIN (or not at all)."""
    out = subprocess.run([sys.executable, str(REPO / "ops/seccomp/executor_profile.py"), str(DEFAULT)],
                         capture_output=True, text=True, check=True)
    profile = json.loads(out.stdout)
    assert profile["syscalls"][:-1] == docker_default["syscalls"]
    assert {k: v for k, v in profile.items() if k != "syscalls"} == {k: v for k, v in docker_default.items()
                                                                   if k != "syscalls"}
    added = profile["syscalls"][-1]
    assert (added["names"], added["action"], added["args"], added["includes"]) == (
        sorted(NEEDS["names"]), "SCMP_ACT_ALLOW", [], {})
    unconditional = {name for rule in docker_default["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
                     and not rule.get("includes") and not rule.get("args") for name in rule["names"]}
    assert not unconditional & set(NEEDS["names"])


def probe_under(profile: dict[str, Any]) -> dict[str, Any]:
    """What a kernel's sandbox gets in a child of uid 65534 under seccomp ``profile``."""
    with nobody_directory() as directory:
        path = directory / "profile.json"
        path.write_text(json.dumps(profile))
        out = subprocess.run(as_nobody([sys.executable, "-c", LOAD_AND_PROBE, str(path)]), capture_output=True,
                             text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_with_the_profile_every_layer_is_built_and_not_with_the_default(docker_default):
    """As uid 65534: under Docker's default the user namespace is refused (unshare: EPERM), under the
    executor's profile a sandboxed child shows every layer, and its own filter denies unshare again."""
    refused = probe_under(docker_default)
    assert refused["holds"] is False and "EPERM" in refused["report"]["error"]
    allowed = probe_under(executor_profile.profile(docker_default, NEEDS))
    assert allowed["holds"] is True, allowed
    assert allowed["report"]["unshare"] == errno.errorcode[errno.EPERM]
