"""All layers together, as a kernel gets them: attacks from inside, an ipykernel serving through it."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Iterator

import pytest

from kernels.sandbox import LAYERS, SandboxConfig, SandboxError, enter, namespaces, probe, unavailable
from kernels.sandbox.cgroups import Cgroup
from kernels.sandbox.mounts import MS_BIND, MS_REMOUNT
from tests.kernels.sandbox.bombs import fork_bomb, heap_hog, memfd_hog
from tests.kernels.sandbox.helpers import LIBC, TEMPLATE, attempt, errno_of, report_fd, require, run, start

CANARY = "BI_SANDBOX_CANARY_" + uuid.uuid4().hex
MB = 1024 * 1024
PTRACE_ATTACH = 16


@pytest.fixture(scope="module")
def report() -> dict:
    return probe()


@pytest.fixture
def full(root, report, kernel_uid, ipc_dir) -> Iterator[SandboxConfig]:
    """Every layer, for a kernel with its own uid, ipc directory and cgroup (removed after the test)."""
    require(unavailable(report) == (), f"layers unavailable here: {unavailable(report)} ({report})")
    config = SandboxConfig(uid=kernel_uid, gid=kernel_uid, ipc_dir=ipc_dir,
                           name=f"test-{uuid.uuid4().hex[:12]}", workdir_size_mb=16, memory_mb=512)
    yield config
    config.cgroup().remove()


def _enter(config: SandboxConfig, *keep: Connection) -> None:
    """Enter the sandbox from a test child, keeping the result pipe and ``keep`` open."""
    enter(dataclasses.replace(config, keep_fds=(report_fd(), *(c.fileno() for c in keep))))


def test_probe_reports_every_layer(report):
    """probe() answers for every layer; without root, the root-only layers are unavailable."""
    assert {"root", "uid", "netns", "mountns", "pidns", "ipcns", "utsns", "mounts", "rlimits",
            "environment", "nnp", "cgroup", "landlock_abi", "landlock_abi_offered", "seccomp"} == set(report)
    assert set(unavailable(report)) <= set(LAYERS)
    if os.geteuid() != 0:
        assert {"uid", "namespaces", "mounts"} <= set(unavailable(report))


def test_probe_reports_the_landlock_abi_kernels_get_under_a_cap(report):
    """An agent capped to an older Landlock ABI (``--landlock-abi``) says so beside the ABI offered."""
    offered = report["landlock_abi_offered"]
    require(offered >= 2, f"Landlock ABI {offered} here")
    assert report["landlock_abi"] == offered
    capped = probe(landlock_cap=1)
    assert (capped["landlock_abi"], capped["landlock_abi_offered"]) == (1, offered)
    assert probe(landlock_cap=offered + 5)["landlock_abi"] == offered


def test_config_travels_as_json():
    """The template gets its config as JSON: asdict → json → from_dict gives the same config."""
    config = SandboxConfig(uid=61000, gid=61000, ipc_dir="/run/bi/k1", name="k1", skip=("cgroup",))
    assert SandboxConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(config)))) == config


def test_config_refuses_inconsistent_layers():
    """Unknown layer names, and a mount view without its PID namespace, are refused."""
    with pytest.raises(ValueError, match="unknown sandbox layers"):
        SandboxConfig(uid=61000, gid=61000, name="x", skip=("selinux",))
    with pytest.raises(ValueError, match="new PID namespace"):
        SandboxConfig(uid=61000, gid=61000, name="x", namespaces=namespaces.CLONE_NEWNET)


def _attacks(config: SandboxConfig, host_pid: int, tcp_port: int, host_file: Path) -> dict[str, object]:
    import numpy as np
    import pandas as pd

    _enter(config)
    df = pd.DataFrame({"k": np.arange(100_000) % 7, "v": np.ones(100_000)})
    return {
        "pid": os.getpid(),
        "ids": (os.getresuid(), os.getgroups()),
        "environ": dict(os.environ),
        "hostname": socket.gethostname(),
        "groupby": float(df.groupby("k")["v"].sum().sum()),
        "shadow": attempt(lambda: open("/etc/shadow").read()),
        "host tmp file": attempt(host_file.read_text),
        "proc": sorted(p for p in os.listdir("/proc") if p.isdigit()),
        "environ of pid 1": attempt(lambda: open("/proc/1/environ").read()),
        "tcp to host": attempt(lambda: socket.create_connection(("127.0.0.1", tcp_port), timeout=2)),
        "metadata": attempt(lambda: socket.create_connection(("169.254.169.254", 80), timeout=2)),
        "write /": attempt(lambda: open("/planted", "w")),
        "write /usr": attempt(lambda: open("/usr/planted", "w")),
        "write /tmp": attempt(lambda: open("/tmp/planted", "w")),
        "write workdir": attempt(lambda: open("/tmp/workdir/ok", "w").close()),
        "write /dev/null": attempt(lambda: open("/dev/null", "w").write("x")),
        "remount rw": errno_of(LIBC.mount(None, b"/", None, MS_REMOUNT | MS_BIND, None)),
        "fork bomb": fork_bomb(200),
        "4 GiB": attempt(lambda: bytearray(4096 * MB)),
        "memfd 3 GiB": attempt(lambda: memfd_hog(3072)),
        "dev shm": attempt(lambda: open("/dev/shm/hog", "wb")),
        "kill host pid": attempt(lambda: os.kill(host_pid, signal.SIGKILL)),
        "kill all": attempt(lambda: os.kill(-1, signal.SIGKILL)),
        "unshare user": errno_of(LIBC.unshare(namespaces.CLONE_NEWUSER)),
        "ptrace host pid": errno_of(LIBC.ptrace(PTRACE_ATTACH, host_pid, None, None)),
        "setuid 0": attempt(lambda: os.setuid(0)),
    }


def test_attacks_from_inside_fail(full, tcp_port, tmp_path, monkeypatch):
    """The escapes of the research corpus, tried from inside the full sandbox, all fail."""
    monkeypatch.setenv("BI_SECRET", CANARY)  # the parent's environment must not reach the kernel
    host_file = tmp_path / "secret"
    host_file.write_text(CANARY)
    seen = run(_attacks, full, os.getpid(), tcp_port, host_file, timeout=30).ok()
    assert seen.pop("ids") == ((full.uid,) * 3, [])
    assert seen.pop("environ") == full.environment
    assert seen.pop("fork bomb") == {"started": 0, "EPERM": 200}
    assert seen == {
        "pid": 1,
        "hostname": "kernel",
        "groupby": 100_000.0,
        "shadow": "FileNotFoundError:ENOENT",
        "host tmp file": "FileNotFoundError:ENOENT",
        "proc": ["1"],
        "environ of pid 1": "PermissionError:EACCES",
        "tcp to host": "PermissionError:EPERM",
        "metadata": "PermissionError:EPERM",
        "write /": "OSError:EROFS",
        "write /usr": "OSError:EROFS",
        "write /tmp": "OSError:EROFS",
        "write workdir": "ok",
        "write /dev/null": "ok",
        "remount rw": "EPERM",
        "4 GiB": "MemoryError",
        "memfd 3 GiB": "PermissionError:EPERM",
        "dev shm": "FileNotFoundError:ENOENT",
        "kill host pid": "PermissionError:EPERM",
        "kill all": "PermissionError:EPERM",
        "unshare user": "EPERM",
        "ptrace host pid": "EPERM",
        "setuid 0": "PermissionError:EPERM",
    }
    assert CANARY not in repr(seen)


def _leave_a_secret(config: SandboxConfig, go: Connection) -> str:
    _enter(config, go)
    with open("/tmp/workdir/secret-a", "w") as f:
        f.write(CANARY)
    ready = socket.socket(socket.AF_UNIX)  # the ipc directory takes sockets only (Landlock)
    ready.bind(os.path.join(config.ipc_dir or "", "ready"))
    return go.recv()


def _look_for_sibling(config: SandboxConfig, sibling_ipc_dir: str) -> dict[str, object]:
    _enter(config)
    return {
        "workdir": os.listdir("/tmp/workdir"),
        "ipc of first": attempt(lambda: os.listdir(sibling_ipc_dir)),
        "proc": sorted(p for p in os.listdir("/proc") if p.isdigit()),
        "files under /tmp": _files_under_tmp(config),
    }


def _files_under_tmp(config: SandboxConfig) -> list[str]:
    """Files under /tmp except in what the sandbox binds on purpose (the code, its own ipc dir)."""
    bound = tuple(os.path.join(path, "") for path in (*config.readable, config.ipc_dir or ""))
    return [os.path.join(root, name) for root, _, files in os.walk("/tmp")
            if not os.path.join(root, "").startswith(bound) for name in files]


def test_sibling_kernels_cannot_see_each_other(full, second_uid, tmp_path):
    """A second kernel sees neither the first one's workdir, nor its ipc directory, nor its process."""
    ipc_b = tmp_path / "ipc-b"
    ipc_b.mkdir()
    sibling = dataclasses.replace(full, uid=second_uid, gid=second_uid, ipc_dir=str(ipc_b),
                                  name=f"test-{uuid.uuid4().hex[:12]}")
    go_r, go_w = TEMPLATE.Pipe(duplex=False)
    first = start(_leave_a_secret, full, go_r)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(full.ipc_dir or "", "ready")):
            assert time.monotonic() < deadline, "the first kernel did not start"
            time.sleep(0.01)
        seen = run(_look_for_sibling, sibling, full.ipc_dir).ok()
    finally:
        go_w.send("done")
        sibling.cgroup().remove()
    assert first.result().ok() == "done"
    assert seen == {"workdir": [], "ipc of first": "FileNotFoundError:ENOENT", "proc": ["1"],
                    "files under /tmp": []}


CELL = """\
import os, threading, numpy as np, pandas as pd
out = []
def work():
    df = pd.DataFrame({'k': np.arange(7000) % 7, 'v': 1.0})
    out.append(float(df.groupby('k')['v'].sum().sum()))
ts = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sorted(out), os.getuid(), os.getpid())
"""


def _serve_ipykernel(config: SandboxConfig, connection_file: str) -> None:
    import zmq
    from ipykernel.iostream import IOPubThread
    from ipykernel.kernelapp import IPKernelApp
    from traitlets.config import Config

    class App(IPKernelApp):
        def init_iopub(self, context: zmq.Context) -> None:
            """As ipykernel's, without the TCP pipe for subprocess output (TCP is denied)."""
            self.iopub_socket = context.socket(zmq.XPUB)
            self.iopub_port = self._bind_socket(self.iopub_socket, self.iopub_port)
            self.iopub_thread = IOPubThread(self.iopub_socket, pipe=False, session=self.session)
            self.iopub_thread.start()
            self.iopub_socket = self.iopub_thread.background_socket

    _enter(config)
    app = App.instance(config=Config({"HistoryManager": {"enabled": False}}))
    app.initialize(["-f", connection_file])
    app.start()


def test_ipykernel_serves_through_the_sandbox(full):
    """A real ipykernel behind every layer answers over ipc and runs pandas with threads."""
    from jupyter_client import BlockingKernelClient
    from jupyter_client.connect import write_connection_file

    connection_file = os.path.join(full.ipc_dir or "", "kernel.json")
    write_connection_file(connection_file, transport="ipc", ip=os.path.join(full.ipc_dir or "", "k"))
    os.chown(connection_file, full.uid, full.gid)
    kernel = start(_serve_ipykernel, full, connection_file)
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    streams: list[str] = []
    try:
        client.wait_for_ready(timeout=20)
        reply = client.execute_interactive(CELL, timeout=20, output_hook=_collect(streams))
    finally:
        client.stop_channels()
        os.kill(kernel.pid, signal.SIGTERM)  # the reaper turns it into SIGKILL for the kernel
    assert reply["content"]["status"] == "ok", reply["content"]
    assert "".join(streams) == f"[7000.0, 7000.0, 7000.0, 7000.0] {full.uid} 1\n"
    assert kernel.result().exitcode == -signal.SIGKILL


def _collect(streams: list[str]) -> Callable[[dict], None]:
    """An iopub hook that keeps the text of stream messages."""

    def hook(message: dict) -> None:
        if message["msg_type"] == "stream":
            streams.append(message["content"]["text"])

    return hook


def _wait_forever(config: SandboxConfig, ready: Connection) -> str:
    _enter(config, ready)
    try:
        ready.send("ready")
        time.sleep(30)
    except KeyboardInterrupt:
        return "interrupted"
    return "slept"


def test_kernel_dies_with_its_reaper(full):
    """SIGKILL of the process the template knows ends the sandboxed kernel too (PR_SET_PDEATHSIG)."""
    ready_r, ready_w = TEMPLATE.Pipe(duplex=False)
    cgroup = full.cgroup()
    child = start(_wait_forever, full, ready_w)
    assert ready_r.recv() == "ready"
    assert len(cgroup.pids()) == 2  # the reaper and the kernel
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while cgroup.pids():
        assert time.monotonic() < deadline, f"kernel survived its reaper: {cgroup.pids()}"
        time.sleep(0.01)
    assert child.result().exitcode == -signal.SIGKILL


def _reaper_cannot_move_the_kernel(config: SandboxConfig, past: Connection) -> None:
    def refuse(self: Cgroup, pid: int) -> None:
        raise SandboxError("cgroup", f"cannot add pid {pid}")

    Cgroup.add = refuse  # type: ignore[method-assign]  # in this test child only
    _enter(config, past)
    past.send("past the sandbox")  # only the kernel would get here


def test_a_kernel_goes_no_further_than_its_reaper_moved_it(full):
    """The reaper moves the kernel into its cgroup while the kernel builds its sandbox; where the reaper cannot, the
    kernel exits before it drops its privileges rather than run outside its cgroup."""
    past_r, past_w = TEMPLATE.Pipe(duplex=False)
    outcome = start(_reaper_cannot_move_the_kernel, full, past_w).result()
    assert outcome.error is not None and "cannot add pid" in outcome.error
    assert not past_r.poll(2)
    assert full.cgroup().pids() == set()


def test_interrupt_reaches_the_kernel(full):
    """SIGINT sent to the reaper arrives in the kernel as KeyboardInterrupt."""
    ready_r, ready_w = TEMPLATE.Pipe(duplex=False)
    child = start(_wait_forever, full, ready_w)
    assert ready_r.recv() == "ready"
    os.kill(child.pid, signal.SIGINT)
    assert child.result().ok() == "interrupted"


def _wait_forever_with_sigint_blocked(config: SandboxConfig, ready: Connection) -> str:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # as inherited from a thread that blocks it
    return _wait_forever(config, ready)


def test_interrupt_reaches_the_kernel_whatever_mask_it_inherited(full):
    """A process that enters the sandbox with SIGINT blocked (a mask is inherited through fork and exec) still
    relays it to the kernel as KeyboardInterrupt: the reaper and the kernel unblock what is relayed."""
    ready_r, ready_w = TEMPLATE.Pipe(duplex=False)
    child = start(_wait_forever_with_sigint_blocked, full, ready_w)
    assert ready_r.recv() == "ready"
    os.kill(child.pid, signal.SIGINT)
    assert child.result().ok() == "interrupted"


def _hog(config: SandboxConfig) -> int:
    _enter(config)
    return heap_hog(3072)


def test_memory_hog_is_killed_by_the_cgroup(full):
    """Heap beyond the cgroup's limit (below RLIMIT_AS) gets the kernel OOM-killed, visibly."""
    outcome = run(_hog, full, timeout=30)
    assert outcome.value is None and outcome.exitcode == -signal.SIGKILL
    assert full.cgroup().oom_killed()


def _weaker(config: SandboxConfig, outside: Path) -> dict[str, str]:
    _enter(config)
    return {
        "pid": "1" if os.getpid() == 1 else "host",
        "inet": attempt(lambda: socket.socket(socket.AF_INET)),
        "write outside": attempt(lambda: open(outside, "w")),
        "write workdir": attempt(lambda: open(os.path.join(config.workdir, "ok"), "w").close()),
        "fork": attempt(os.fork),
    }


def test_weaker_sandbox_without_root_layers(full, tmp_path):
    """Skipping what needs root (cgroup, namespaces, mounts, uid), the rest still holds."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    weaker = dataclasses.replace(full, skip=("cgroup", "namespaces", "mounts", "uid"), workdir=str(workdir),
                                 ipc_dir=None)
    assert run(_weaker, weaker, tmp_path / "planted").ok() == {
        "pid": "host", "inet": "PermissionError:EPERM", "write outside": "PermissionError:EACCES",
        "write workdir": "ok", "fork": "PermissionError:EPERM"}
