"""The executor container's seccomp profile (``ops/seccomp/executor.json``): an allowlist of what the agent, its
template and its kernels call (recorded: tests/kernels/syscalls.py), none of the calls no legitimate path needs,
and with it a process without capabilities builds a kernel's every layer.

The recording test runs the agent as the executor container does (uid 65534, no capabilities, ``/proc`` masked,
``--user-namespaces``, the relay) under ``strace -f`` through a small day's work: a call the profile would refuse
fails it. In CI (``CI=true``) a missing strace fails; .ci/run installs it.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.kernels import syscalls
from tests.kernels.unprivileged import REPO, as_nobody, nobody_directory

PROFILE = syscalls.load_profile()
SANDBOX_CALLS = {"unshare", "mount", "umount2", "pivot_root", "sethostname"}

# Runs in the child: load the profile as runc does on this architecture, then build a kernel's sandbox.
LOAD_AND_PROBE = '''
import dataclasses, errno, json, os, sys
import pyseccomp as seccomp
from kernels.sandbox import SandboxConfig
from kernels.sandbox.inside import holds, probe_kernel

profile = json.load(open(sys.argv[1]))
f = seccomp.SyscallFilter(seccomp.ERRNO(profile["defaultErrnoRet"]))
ops = {"SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ, "SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_NE": seccomp.NE}
for rule in profile["syscalls"]:
    action = seccomp.ALLOW if rule["action"] == "SCMP_ACT_ALLOW" else seccomp.ERRNO(rule["errnoRet"])
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


def test_an_allowlist_for_x86_64_and_aarch64_without_the_forbidden_calls():
    """Everything not listed fails (EPERM); only the two 64-bit ABIs (32-bit calls are refused); no call of the
    forbidden list is allowed; every name is a call of one of the two architectures."""
    import pyseccomp as seccomp
    assert (PROFILE["defaultAction"], PROFILE["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", errno.EPERM)
    assert PROFILE["archMap"] == [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []},
                                  {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []}]
    assert not syscalls.allowed(PROFILE) & syscalls.FORBIDDEN
    names = [name for rule in PROFILE["syscalls"] for name in rule["names"]]
    assert len(names) == len(set(names)), "a call in two rules"
    unknown = [name for name in names if all(seccomp.resolve_syscall(arch, name) < 0
                                             for arch in (seccomp.Arch.X86_64, seccomp.Arch.AARCH64))]
    assert unknown == []
    conditional = [rule for rule in PROFILE["syscalls"] if rule.get("args")]
    assert [(rule["names"], rule["args"]) for rule in conditional] == [
        (["clone"], [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])]
    recorded = next(rule for rule in PROFILE["syscalls"] if rule["comment"].startswith(syscalls.RECORDED))
    aarch64 = {syscalls.AARCH64_FORMS[name] for name in recorded["names"] if name in syscalls.AARCH64_FORMS}
    assert aarch64 <= syscalls.allowed(PROFILE), "an x86_64-only call without its aarch64 form"


def test_the_profile_allows_what_the_agent_and_its_kernels_call(tmp_path):
    """strace -f over the agent as the executor container runs it: kernels of two tenants, cards with pandas,
    pyarrow tables, matplotlib and Bokeh, interrupts, deletions, drain. Every call that did not fail with the
    profile's own errno is allowed (and clone never took a namespace flag)."""
    if shutil.which("strace") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no strace (.ci/run installs it)")
        pytest.skip("no strace (apt-get install strace)")
    recorded = syscalls.record_agent(tmp_path)
    assert SANDBOX_CALLS | {"landlock_restrict_self", "seccomp", "accept4"} <= set(recorded), sorted(recorded)
    assert syscalls.refused(recorded, PROFILE) == {}


def probe_under(profile: dict[str, Any]) -> dict[str, Any]:
    """What a kernel's sandbox gets in a child of uid 65534 under seccomp ``profile``."""
    with nobody_directory() as directory:
        path = directory / "profile.json"
        path.write_text(json.dumps(profile))
        out = subprocess.run(as_nobody([sys.executable, "-c", LOAD_AND_PROBE, str(path)]), capture_output=True,
                             text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_with_the_profile_every_layer_is_built_and_not_without_its_sandbox_rule():
    """As uid 65534: under the profile a sandboxed child shows every layer, and its own filter denies unshare
    again; without the rule of the five sandbox calls the user namespace is refused (unshare: EPERM)."""
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("the profile is for x86_64 and aarch64")
    allowed = probe_under(PROFILE)
    assert allowed["holds"] is True, allowed
    assert allowed["report"]["unshare"] == errno.errorcode[errno.EPERM]
    without = {**PROFILE, "syscalls": [rule for rule in PROFILE["syscalls"] if set(rule["names"]) != SANDBOX_CALLS]}
    assert len(without["syscalls"]) == len(PROFILE["syscalls"]) - 1
    refused = probe_under(without)
    assert refused["holds"] is False and "EPERM" in refused["report"]["error"]


def test_the_recording_reads_strace_output():
    """The parser: calls start at the program's execve; unfinished calls end on their resumed line; clone with
    a namespace flag is told apart; a call that failed only with the profile's errno is not needed."""
    trace = f'''10 execve("/bin/sh", ["sh"], 0x0 /* 1 var */) = 0
10 unshare(CLONE_NEWNS) = 0
10 execve("{sys.executable}", ["python"], 0x0 /* 1 var */) = 0
10 openat(AT_FDCWD, "", O_RDONLY) = -1 ENOENT (No such file or directory)
11 read(3,  <unfinished ...>
10 ptrace(PTRACE_ATTACH, 1) = -1 EPERM (Operation not permitted)
11 <... read resumed>"", 0) = 0
12 clone(child_stack=NULL, flags=CLONE_NEWUSER|SIGCHLD) = -1 EPERM (Operation not permitted)
12 clone3({{flags=CLONE_VM, exit_signal=0}}, 88) = 13
12 +++ exited with 0 +++
'''.splitlines()
    recorded = syscalls.outcomes(trace)
    assert recorded == {"openat": {"ENOENT"}, "read": {"ok"}, "ptrace": {"EPERM"}, "clone+namespaces": {"EPERM"},
                        "clone3": {"ok"}}
    assert syscalls.needed(recorded, PROFILE) == {"openat", "read"}
    assert syscalls.refused(recorded, {**PROFILE, "syscalls": []}) == {"openat": {"ENOENT"}, "read": {"ok"},
                                                                       "clone3": {"ok"}}
    assert syscalls.denial(PROFILE, "clone+namespaces") == "EPERM" and syscalls.denial(PROFILE, "clone") is None
    assert Path(syscalls.PROFILE).is_file()
