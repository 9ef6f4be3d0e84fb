"""Kernels forked from the template into the full sandbox, end to end over ZeroMQ ipc."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import structlog

from kernels.launcher import KernelLauncher, KernelStartError
from kernels.sandbox import UidAllocator, mounts
from tests.kernels.conftest import uid_slice
from tests.kernels.kernel_fixtures import connected, run, texts
from tests.kernels.sandbox.helpers import require


async def test_run_dir_too_long_for_sockets(tmp_path):
    """A run directory whose socket paths would not fit is refused with the reason."""
    with pytest.raises(ValueError, match="too long for unix socket paths"):
        await KernelLauncher(tmp_path / ("x" * 100), UidAllocator(62000, 10)).start()


async def test_forked_kernel_runs_pandas_in_sandbox(launcher):
    """A forked kernel answers over ipc, runs pandas, and sees itself as an unprivileged pid 1."""
    kernel = await launcher.launch()
    status, outputs = await run(launcher, kernel, (
        "import pandas as pd\n"
        "print(pd.DataFrame({'k': ['a', 'b', 'a'], 'v': [1, 2, 3]}).groupby('k').v.sum().to_dict())\n"
        "real_os = pd.io.common.os  # the policy layer is not a boundary; the OS layers are\n"
        "print('pid', real_os.getpid(), 'uid', real_os.getuid())\n"))
    assert status == "ok", texts(outputs)
    assert "{'a': 4, 'b': 2}" in texts(outputs)
    assert f"pid 1 uid {kernel.uid}" in texts(outputs)
    status, outputs = await run(launcher, kernel, "import os")
    assert status == "error" and "blocked" in texts(outputs)


async def test_each_kernel_has_its_own_uid_and_directory(launcher):
    """Two kernels get distinct uids and private 0700 directories owned by those uids."""
    first, second = await launcher.launch(), await launcher.launch()
    assert first.uid != second.uid
    for kernel in (first, second):
        info = kernel.directory.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (kernel.uid, 0o700)


async def test_kernels_of_one_template_share_no_state(launcher):
    """Every kernel serves the shell the template built before it forked (``kernel.prepare``), each its own copy:
    what one kernel defines, changes or counts, the next one does not see."""
    first = await launcher.launch()
    async with connected(launcher, first) as client:
        for code in ("leak = 1", "import math\nmath.leak = 2", "get_ipython().user_ns['leak2'] = 3"):
            reply = await client.execute_interactive(code, timeout=60)
            assert reply["content"]["status"] == "ok", reply["content"]
        assert reply["content"]["execution_count"] == 3
    second = await launcher.launch()
    async with connected(launcher, second) as client:
        outputs: list[dict] = []
        reply = await client.execute_interactive(
            "import math\nprint(sorted(name for name in ('leak', 'leak2') if name in globals()), "
            "hasattr(math, 'leak'), len(In))", timeout=60, output_hook=outputs.append)
    assert reply["content"]["status"] == "ok", texts(outputs)
    assert reply["content"]["execution_count"] == 1
    assert texts(outputs) == "[] False 2\n"


async def test_stop_kills_kernel_and_cleans_up(launcher):
    """Stopping a kernel kills its reaper and the kernel, both reaped (no zombie left to host init),
    and removes its directory."""
    kernel = await launcher.launch()
    status, _ = await run(launcher, kernel, "1 + 1")
    assert status == "ok"
    (kernel_pid,) = map(int, Path(f"/proc/{kernel.pid}/task/{kernel.pid}/children").read_text().split())
    await launcher.stop(kernel.kernel_id)
    assert not kernel.directory.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(kernel.pid, 0)
    for _ in range(100):
        if not Path(f"/proc/{kernel_pid}").exists():
            break
        await asyncio.sleep(0.02)
    assert not Path(f"/proc/{kernel_pid}").exists(), "the orphaned kernel was not reaped by the template"


async def test_a_kernel_shut_down_by_its_client_logs_no_traceback(launcher):
    """A ``shutdown_request`` (how ``jupyter console`` and nbclient end a kernel) ends the kernel quietly:
    ipykernel's search for child processes needs ``/proc/stat``, which kernels do not see."""
    kernel = await launcher.launch()
    with structlog.testing.capture_logs() as logs:
        async with connected(launcher, kernel) as client:
            client.shutdown()
            reply = await client.control_channel.get_msg(timeout=30)
            assert reply["msg_type"] == "shutdown_reply"
        children = Path(f"/proc/{kernel.pid}/task/{kernel.pid}/children")
        for _ in range(200):  # the kernel gone: its reaper has no child, or has exited too
            if not children.exists() or not children.read_text().strip():
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the last lines of the kernel's stderr reach the agent's reader
    lines = [entry["line"] for entry in logs if entry["event"] == "kernel_output"]
    assert not any("Traceback" in line for line in lines), lines


async def test_kernel_dying_at_start_is_reported():
    """A kernel whose sandbox cannot be applied is reported as a start error, its traceback logged as
    its output, and leaves nothing behind (its ipc tmpfs unmounted)."""
    require(os.geteuid() == 0, "needs root (per-kernel uids, namespaces, mounts, cgroups)")
    run_dir = Path(tempfile.mkdtemp(prefix="bi-run-"))
    broken = KernelLauncher(run_dir, uid_slice(), sandbox_defaults={"readable": ("/nonexistent-prefix",)})
    await broken.start()
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(KernelStartError, match="exited while starting"):
            await broken.launch()
        assert any("/nonexistent-prefix" in entry["line"] for entry in logs if entry["event"] == "kernel_output")
        assert list(run_dir.iterdir()) == []
        assert mounts.mounts_beneath(str(run_dir)) == []
    finally:
        await broken.close()
        shutil.rmtree(run_dir, ignore_errors=True)


async def test_start_unmounts_what_a_killed_agent_left():
    """An ipc tmpfs left in the run directory (its agent was killed) is unmounted when a launcher starts there."""
    require(os.geteuid() == 0, "needs root (mounts)")
    run_dir = Path(tempfile.mkdtemp(prefix="bi-run-"))
    stale = run_dir / "0123456789ab" / "ipc"
    stale.mkdir(parents=True)
    mounts.mount_tmpfs(str(stale), 1 << 16, 16, (0, 0))
    launcher = KernelLauncher(run_dir, uid_slice())
    try:
        await launcher.start()
        assert mounts.mounts_beneath(str(run_dir)) == []
    finally:
        await launcher.close()
        shutil.rmtree(run_dir, ignore_errors=True)
