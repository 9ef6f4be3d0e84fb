"""A kernel cannot exhaust the host's inodes (or a file system's entries) from card code.

The attack: bind AF_UNIX sockets by the thousand in the kernel's ipc directory (a host path: today
150,000 socket files in 5 s), in its workdir, ``mknod`` a socket, hard-link its own socket files,
and create files in the workdir until something stops it. Once the kernel has bound its own
sockets, seccomp denies ``bind``, ``mknod`` and ``link`` in every thread (EPERM); the ipc
directory is a tmpfs of a few inodes where the agent can mount one, and the workdir tmpfs has an
inode limit (ENOSPC). Without seccomp (a weaker sandbox by choice), Landlock lets the kernel make
sockets in that tmpfs only, so its few inodes still bound them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from kernels.launcher import KernelLauncher
from kernels.limits import IPC_DIR_INODES, WORKDIR_INODES
from tests.kernels import conftest as kernel_fixtures
from tests.kernels.sandbox.helpers import require
from tests.kernels.test_attacks import EACCES, EPERM, attack

launcher, started_launcher, sandbox_defaults = (kernel_fixtures.launcher, kernel_fixtures.started_launcher,
                                               kernel_fixtures.sandbox_defaults)
SOCKETS = 2000

MAKE = '''
socket, stat = sys.modules["socket"], sys.modules["stat"]


def many(make, count):
    """How many of ``count`` ``make(i)`` calls worked, and the errno that stopped them."""
    made = 0
    try:
        for i in range(count):
            make(i)
            made += 1
    except OSError as e:
        return f"{made}, then {errno.errorcode[e.errno]}"
    return f"{made}"


def bind(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)


def touch(path):
    builtins.open(path, "w").close()


ipc, work = ARGS["ipc"], os.getcwd()
RESULTS["sockets in the ipc dir"] = many(lambda i: bind(f"{ipc}/s{i}"), ARGS["sockets"])
RESULTS["sockets in the workdir"] = many(lambda i: bind(f"{work}/s{i}"), ARGS["sockets"])
attempt("mknod a socket", lambda: os.mknod(f"{ipc}/node", stat.S_IFSOCK | 0o600))
attempt("link a socket", lambda: os.link(ARGS["own_socket"], f"{ipc}/link"))
RESULTS["files in the workdir"] = many(lambda i: touch(f"{work}/f{i}"), ARGS["files"])
'''


async def test_no_socket_files_after_start_and_bounded_inodes(launcher):
    kernel = await launcher.launch()
    ipc = os.path.dirname(kernel.connection["ip"])
    before = sorted(os.listdir(ipc))
    seen = await attack(launcher, kernel, MAKE, ipc=ipc, sockets=SOCKETS, files=WORKDIR_INODES + 100,
                        own_socket=f"{kernel.connection['ip']}-1")
    files = seen.pop("files in the workdir")
    assert seen == {"sockets in the ipc dir": "0, then EPERM", "sockets in the workdir": "0, then EPERM",
                    "mknod a socket": EPERM, "link a socket": EPERM}
    made, _, error = files.partition(", then ")
    assert int(made) <= WORKDIR_INODES and error == "ENOSPC", files
    assert sorted(os.listdir(ipc)) == before


@pytest.mark.xfail(kernel_fixtures.IN_EXECUTOR_CONTAINER, strict=True,
                   reason="in a user namespace the agent mounts only in the kernel's own mount namespace: the ipc "
                          "directory is the container tmpfs's (the socket seal bounds what is bound there)")
async def test_ipc_dir_is_a_small_tmpfs(launcher):
    """Where the agent can mount (root), the kernel's ipc directory is a tmpfs of a few inodes."""
    kernel = await launcher.launch()
    ipc = os.path.dirname(kernel.connection["ip"])
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    assert [fields[2] for fields in mounts if fields[1] == ipc] == ["tmpfs"]
    assert os.statvfs(ipc).f_files == IPC_DIR_INODES


async def test_without_seccomp_sockets_fill_only_the_ipc_tmpfs():
    """A kernel without the seal binds sockets only in its ipc tmpfs, until its inodes run out
    (ENOSPC: a hard link too); its directory on the host and the workdir refuse them (Landlock)."""
    require(os.geteuid() == 0, "needs root (mounts)")
    run_dir = Path(tempfile.mkdtemp(prefix="bi-run-"))
    weaker = KernelLauncher(run_dir, kernel_fixtures.uid_slice(), {"skip": ("seccomp",)})
    await weaker.start()
    try:
        kernel = await weaker.launch()
        seen = await attack(weaker, kernel, MAKE.replace('RESULTS["files', 'pass  # RESULTS["files'),
                            ipc=os.path.dirname(kernel.connection["ip"]), sockets=SOCKETS, files=0,
                            own_socket=f"{kernel.connection['ip']}-1")
        made, _, error = seen.pop("sockets in the ipc dir").partition(", then ")
        assert int(made) < IPC_DIR_INODES and error == "ENOSPC"
        assert seen == {"sockets in the workdir": "0, then EACCES", "mknod a socket": "OSError:ENOSPC",
                        "link a socket": "OSError:ENOSPC"}
        outside = await attack(weaker, kernel, 'attempt("socket in the kernel dir", lambda: '
                               'sys.modules["socket"].socket(sys.modules["socket"].AF_UNIX).bind(ARGS["path"]))',
                               path=str(kernel.directory / "planted"))
        assert outside == {"socket in the kernel dir": "OSError:EROFS"}  # the view's kernel dir (Landlock behind)
    finally:
        await weaker.close()
        shutil.rmtree(run_dir, ignore_errors=True)
