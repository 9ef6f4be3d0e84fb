"""The attack corpus, run as card code in real kernels forked by the real ``KernelLauncher``.

Card code cannot ``import os`` (``kernels.policy``), but the policy is a convenience, not a
boundary: every card below first recovers the real modules as a determined author would
(``PRELUDE``: ``pd.io.common.os``, ``sys`` from ``os._wrap_close.__init__.__globals__``, the real
``builtins`` from ``sys.modules``, ctypes from ``np.ctypeslib``), then attacks the OS layer.

Each card records one outcome per attempt in ``RESULTS`` (``"ok"``, a value, or the exception
and errno such as ``"PermissionError:EPERM"``) and prints it as JSON; each test compares the
whole dict, so every attempt must have run, and the errno names the layer that stopped it:
EPERM from seccomp (or from the uid for setuid), ENOENT from the mount view, EROFS from its
read-only root, EACCES from file permissions or Landlock, MemoryError from RLIMIT_AS. Where an
attack could only fail for a reason of its own (a typo, a missing module), a positive control
next to it shows the same code working where it is allowed.

The kernel's ipc directory is the one host path its uid owns: Landlock lets it only bind
sockets there, and the agent writes datasets through a checked handle of the dataset folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
from jupyter_client.asynchronous import AsyncKernelClient

import kernels
from kernels.helpers import dataset_filename
from kernels.launcher import KernelLauncher, LaunchedKernel
from kernels.sandbox.environment import DEFAULT as KERNEL_ENVIRONMENT
from kernels.template import SINGLE_THREAD_ENV
from tests.kernels.conftest import IN_EXECUTOR_CONTAINER
from tests.kernels.kernel_fixtures import connected, run, texts

CANARY = "bi-attack-canary-" + uuid.uuid4().hex
CANARY_VARIABLE = "BI_ATTACK_CANARY"
if IN_EXECUTOR_CONTAINER:  # its launcher serves the whole module: the agent has the canary before it starts
    os.environ[CANARY_VARIABLE] = CANARY
# Variables ipykernel sets for rich output once the kernel runs (after the environment layer).
IPYKERNEL_VARIABLES = {"TERM", "CLICOLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "PAGER", "GIT_PAGER", "MPLBACKEND"}
# Variables of the template's environment that the kernel's allowlist does not have.
TEMPLATE_ONLY = sorted(set(SINGLE_THREAD_ENV) - set(KERNEL_ENVIRONMENT))
MARKER = "ATTACK-RESULTS "
EPERM = "PermissionError:EPERM"
ENOENT = "FileNotFoundError:ENOENT"
EACCES = "PermissionError:EACCES"
EROFS = "OSError:EROFS"

PRELUDE = '''\
import json
import numpy as np
import pandas as pd

# The real modules, past the card policy.
os = pd.io.common.os
sys = next(cls for cls in ().__class__.__base__.__subclasses__()
           if cls.__name__ == "_wrap_close").__init__.__globals__["sys"]
builtins, errno = sys.modules["builtins"], sys.modules["errno"]
ctypes = np.ctypeslib.ctypes
libc = ctypes.CDLL(None, use_errno=True)
WORKDIR = os.getcwd()  # /tmp/workdir in the mount view; without one, the kernel's own directory's work/
RESULTS = {}


def attempt(name, action):
    """RESULTS[name]: "ok" (or the value) if action() works, else "<exception>:<errno>"."""
    try:
        value = action()
    except Exception as e:
        code = getattr(e, "errno", None) or getattr(getattr(e, "reason", None), "errno", None)
        value = type(e).__name__ + (":" + errno.errorcode.get(code, str(code)) if code else "")
    RESULTS[name] = "ok" if value is None else value


def read(action):
    """An attempt that records "read" when ``action`` returns what it read (not the content itself)."""
    return lambda: (action(), "read")[1]


def call(name, result):
    """RESULTS[name]: "ok", or the errno name of a libc call that returned -1."""
    RESULTS[name] = "ok" if result != -1 else errno.errorcode[ctypes.get_errno()]


'''
REPORT = f'\nprint({MARKER!r} + json.dumps(RESULTS, default=repr))\n'


async def attack(launcher: KernelLauncher, kernel: LaunchedKernel, code: str, **args: Any) -> dict[str, Any]:
    """Run ``PRELUDE`` + ``code`` (with ``ARGS`` = ``args``) in ``kernel``; return its ``RESULTS``."""
    card = PRELUDE + f"ARGS = json.loads({json.dumps(json.dumps(args))})\n" + code + REPORT
    status, outputs = await run(launcher, kernel, card)
    assert status == "ok", texts(outputs)
    # stdout only: stderr's messages (a flood written to fd 2) may come between stdout's, in the middle of a line
    stdout = "".join(m["content"]["text"] for m in outputs if m["content"].get("name") == "stdout")
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1, texts(outputs)
    # raw_decode: what an attack wrote to its own stdout (a forged log line) may follow on the same line
    return json.JSONDecoder().raw_decode(lines[0][len(MARKER):])[0]


def expected(full: dict[str, Any], container: dict[str, Any] | None = None) -> dict[str, Any]:
    """An attack's outcomes under the full sandbox, or in the executor container as compose starts it with the
    executor's seccomp profile (tests/containers/test_executor_attacks.py: a non-root agent with
    ``--user-namespaces``, each kernel in namespaces of its own inside a user namespace of the agent's uid, no
    cgroups) with ``container``'s differences: no /proc in the kernel (Docker masks parts of the container's, so
    a user namespace gets no fresh procfs) and uid 0 unmapped (EINVAL)."""
    return {**full, **(container or {})} if IN_EXECUTOR_CONTAINER else full




def shell_socket(kernel: LaunchedKernel) -> str:
    return f"{kernel.connection['ip']}-{kernel.connection['shell_port']}"


@pytest.fixture
def server_data_dir() -> Iterator[Path]:
    """A stand-in for the server's data dir (``BI_DATA_DIR``, by default ``./data`` of the project):
    next to the ``kernels`` package that the sandbox binds, root's, 0700, with a 0600 key file. In the
    executor container, where no server runs, the agent's own files in its writable tmpfs."""
    parent = Path(tempfile.gettempdir() if IN_EXECUTOR_CONTAINER else Path(kernels.__file__).resolve().parent.parent)
    parent = parent / "data"
    created = not parent.exists()
    parent.mkdir(mode=0o700, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="attack-", dir=parent))
    secret = directory / "server.key"
    secret.write_text(f"secret,{CANARY}\n")
    secret.chmod(0o600)
    yield directory
    shutil.rmtree(directory)
    if created:
        with contextlib.suppress(OSError):  # another run's data is in it
            parent.rmdir()


@pytest.fixture
def canary(monkeypatch) -> str:
    """A variable of the test process (set before the launcher starts when requested first)."""
    monkeypatch.setenv(CANARY_VARIABLE, CANARY)
    return CANARY


async def test_host_files_are_not_in_the_view(launcher, server_data_dir):
    """/etc/shadow and the server's data dir: the mount view has neither (ENOENT), and /etc
    holds only the files the view binds. Behind it, the uid (EACCES) and Landlock would refuse.
    In the executor container the same: the container's /etc and the agent's files are out of the view."""
    kernel = await launcher.launch()
    secret = server_data_dir / "server.key"
    seen = await attack(launcher, kernel, '''
attempt("read /etc/shadow", read(lambda: builtins.open("/etc/shadow").read()))
attempt("list the data dir", lambda: os.listdir(ARGS["data_dir"]))
attempt("read the secret", read(lambda: builtins.open(ARGS["secret"]).read()))
attempt("stat the secret", read(lambda: os.stat(ARGS["secret"])))
RESULTS["/etc"] = sorted(os.listdir("/etc"))
RESULTS["data dir's parent"] = sorted(os.listdir(os.path.dirname(os.path.dirname(ARGS["data_dir"]))))
''', data_dir=str(server_data_dir), secret=str(secret))
    etc, parent = set(seen.pop("/etc")), seen.pop("data dir's parent")
    assert etc <= {"ld.so.cache", "localtime"} and "data" not in parent
    assert seen == {"read /etc/shadow": ENOENT, "list the data dir": ENOENT, "read the secret": ENOENT,
                    "stat the secret": ENOENT}


async def test_no_environment_reaches_the_kernel(canary, launcher):
    """/proc/1/environ (pid 1 is the kernel itself) is closed by the uid change (EACCES); the
    agent's and the template's environ are outside the PID namespace (ENOENT); the kernel's own
    environment is the allowlist (environment layer), without the template's or the test's variables.
    In the executor container the kernel has no /proc at all (ENOENT), so it lists no process."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, '''
attempt("/proc/1/environ", read(lambda: builtins.open("/proc/1/environ", "rb").read()))
attempt("/proc/self/environ", read(lambda: builtins.open("/proc/self/environ", "rb").read()))
attempt("the agent's environ", read(lambda: builtins.open(f"/proc/{ARGS['agent']}/environ", "rb").read()))
attempt("the template's environ", read(lambda: builtins.open(f"/proc/{ARGS['template']}/environ", "rb").read()))
RESULTS["pid"] = os.getpid()
RESULTS["processes"] = sorted(name for name in os.listdir("/proc") if name.isdigit())
RESULTS["environ"] = dict(os.environ)
libc.getenv.restype = ctypes.c_char_p
RESULTS["libc getenv"] = {name: libc.getenv(name.encode()) for name in ARGS["names"]}
''', agent=os.getpid(), template=launcher.template.process.pid,
        names=[CANARY_VARIABLE, *TEMPLATE_ONLY])
    environ = seen.pop("environ")
    assert kernel.sandbox.environment.items() <= environ.items()  # the allowlist (HOME is the workdir)
    assert set(environ) - set(kernel.sandbox.environment) <= IPYKERNEL_VARIABLES
    assert seen.pop("libc getenv") == dict.fromkeys([CANARY_VARIABLE, *TEMPLATE_ONLY])
    assert seen == expected(
        {"/proc/1/environ": EACCES, "/proc/self/environ": EACCES, "the agent's environ": ENOENT,
         "the template's environ": ENOENT, "pid": 1, "processes": ["1"]},
        {"/proc/1/environ": ENOENT, "/proc/self/environ": ENOENT, "processes": []})
    assert os.environ[CANARY_VARIABLE] == canary and canary not in json.dumps(environ)


INJECT = '''
zmq, socket = sys.modules["zmq"], sys.modules["socket"]
Session = sys.modules["jupyter_client.session"].Session


def connect_unix(path):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)


def inject(info, linger_ms):
    """Send an execute_request signed with the leaked key to the kernel of ``info``."""
    context = zmq.Context()
    try:
        sock = context.socket(zmq.DEALER)
        sock.connect(f"ipc://{info['ip']}-{info['shell_port']}")
        Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"]).send(
            sock, "execute_request", {"code": f"INJECTED = {info['ip']!r}", "silent": False,
                                      "store_history": False, "user_expressions": {},
                                      "allow_stdin": False, "stop_on_error": True})
        return "reply" if sock.poll(500) else "no reply"
    finally:
        context.destroy(linger=linger_ms)  # the own kernel gets the message before this returns


own, sibling = ARGS["own"], ARGS["sibling"]
RESULTS["run dir"] = sorted(os.listdir(ARGS["run_dir"]))
attempt("list the sibling's directory", lambda: sorted(os.listdir(ARGS["sibling_dir"])))
attempt("read the sibling's connection file", read(lambda: builtins.open(ARGS["sibling_dir"] + "/connection.json").read()))
attempt("connect to the sibling's shell", lambda: connect_unix(ARGS["sibling_shell"]))
attempt("connect to the own shell", lambda: connect_unix(ARGS["own_shell"]))
attempt("inject into the sibling", lambda: inject(sibling, 0))
attempt("inject into the own kernel", lambda: inject(own, 2000))
'''


async def test_sibling_kernel_is_out_of_reach(launcher):
    """Kernel A, even given kernel B's full connection info (key included), can neither list B's
    directory nor connect to B's sockets: the mount view shows A only its own (ENOENT); behind it,
    B's directory is 0700 and B's. The same injection into A's own shell runs (positive control).
    In the executor container both kernels are the agent's uid, and the mount view alone keeps B from A."""
    a, b = await launcher.launch(), await launcher.launch()
    seen = await attack(launcher, a, INJECT, own=a.connection, sibling=b.connection,
                        run_dir=str(launcher.run_dir.resolve()), sibling_dir=str(b.directory),
                        sibling_shell=shell_socket(b), own_shell=shell_socket(a))
    assert seen == {
        "run dir": [a.directory.name],
        "list the sibling's directory": ENOENT,
        "read the sibling's connection file": ENOENT,
        "connect to the sibling's shell": ENOENT,
        "connect to the own shell": "ok",
        "inject into the sibling": "no reply",
        "inject into the own kernel": "no reply",  # A is busy with this cell; it runs the request next
    }
    for kernel, value in ((b, None), (a, a.connection["ip"])):
        status, outputs = await run(launcher, kernel, "print(repr(globals().get('INJECTED')))")
        assert (status, texts(outputs)) == ("ok", f"{value!r}\n")


async def test_no_network(launcher):
    """TCP to a port listening on the host's loopback and to the cloud metadata address, IPv6,
    and a URL through pandas: seccomp allows AF_UNIX sockets only (EPERM). Behind it, Landlock
    refuses TCP connect and the network namespace has no interface up."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        kernel = await launcher.launch()
        seen = await attack(launcher, kernel, """
socket = sys.modules["socket"]
attempt("tcp to the host", lambda: socket.create_connection(("127.0.0.1", ARGS["port"]), timeout=2))
attempt("metadata", lambda: socket.create_connection(("169.254.169.254", 80), timeout=2))
attempt("ipv6", lambda: socket.socket(socket.AF_INET6))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
attempt("read_csv of a url", lambda: pd.read_csv("http://169.254.169.254/latest/meta-data/"))
attempt("unix socket", lambda: socket.socket(socket.AF_UNIX).close())
""", port=port)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing ever reached the listener
            listener.accept()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # while from the host it is reachable
    assert seen == {"tcp to the host": EPERM, "metadata": EPERM, "ipv6": EPERM, "udp": EPERM,
                    "read_csv of a url": "URLError:EPERM", "unix socket": "ok"}


async def test_writes_outside_the_workdir_fail(launcher):
    """The root and the kernel's directory are read-only (EROFS, mount view); behind it, the dataset dir is
    root's (EACCES, file permissions) and Landlock. In the executor container the kernel directory lies beneath
    the workdir (compose's --run-dir=/tmp/workdir/run) and is the kernel's uid's, so the mount view alone keeps
    the agent's dataset files (hard links of its cache) from the kernel. The workdir is writable."""
    kernel = await launcher.launch()
    frame = pd.DataFrame({"store": ["a", "b"], "amount": [1, 2]})
    frame.to_parquet(kernel.dataset_dir / dataset_filename("sales"))  # as the agent places it
    seen = await attack(launcher, kernel, """
def write(path):
    with builtins.open(path, "w") as f:
        f.write("planted")

for path in ("/planted", "/usr/planted", "/tmp/planted", "/etc/planted", ARGS["datasets"] + "/planted.parquet",
             ARGS["datasets"] + "/sales.parquet"):
    attempt(f"write {path}", lambda: write(path))
attempt("write the workdir", lambda: write(WORKDIR + "/planted"))
attempt("mkdir in /usr", lambda: os.mkdir("/usr/planted"))
attempt("read back the workdir", lambda: builtins.open(WORKDIR + "/planted").read())
RESULTS["load_dataset"] = load_dataset("sales").shape
""", datasets=str(kernel.dataset_dir))
    datasets = str(kernel.dataset_dir)
    assert seen == {"write /planted": EROFS, "write /usr/planted": EROFS, "write /tmp/planted": EROFS,
                    "write /etc/planted": EROFS, f"write {datasets}/planted.parquet": EROFS,
                    f"write {datasets}/sales.parquet": EROFS, "write the workdir": "ok",
                    "mkdir in /usr": EROFS, "read back the workdir": "planted", "load_dataset": [2, 2]}
    assert pd.read_parquet(kernel.dataset_dir / dataset_filename("sales")).equals(frame)


async def test_dataset_dir_cannot_be_swapped(launcher):
    """The agent writes datasets into ``<kernel dir>/datasets``: the kernel cannot rename that directory or put
    a symlink of its own in its place (its directory is read-only in the view; behind it, Landlock)."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, """
datasets = ARGS["datasets"]
attempt("rename datasets", lambda: os.rename(datasets, datasets + ".old"))
attempt("symlink in its place", lambda: os.symlink("/etc", datasets))
""", datasets=str(kernel.dataset_dir))
    assert seen == {"rename datasets": EROFS, "symlink in its place": "FileExistsError:EEXIST"}
    datasets = os.lstat(kernel.dataset_dir)
    assert (datasets.st_uid, oct(datasets.st_mode)) == (os.getuid(), oct(0o40755))  # still the agent's directory


async def test_kernel_directory_takes_only_sockets(launcher):
    """The kernel's directory on the host only needs sockets (in its ipc/): regular files, directories and
    symlinks in it fail (read-only in the view; behind it, Landlock), so nothing lands on the host's disk."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, """
directory = ARGS["directory"]


def write(path):
    with builtins.open(path, "wb") as f:
        f.write(bytes(1 << 20))


attempt("write a file", lambda: write(directory + "/planted"))
attempt("mkdir", lambda: os.mkdir(directory + "/planted-dir"))
attempt("symlink", lambda: os.symlink("/etc", directory + "/planted-link"))
""", directory=str(kernel.directory))
    assert seen == {"write a file": EROFS, "mkdir": EROFS, "symlink": EROFS}


async def test_no_new_processes(launcher):
    """A fork bomb of 200, subprocess, posix_spawn, exec, os.system and a multiprocessing spawn
    of a fresh interpreter, all through recovered modules: seccomp denies fork, clone of a
    process and execve (EPERM; os.system's shell never starts: status 127). Behind it, the pids
    cgroup and RLIMIT_NPROC."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, """
subprocess = sys.modules["subprocess"]
multiprocessing = builtins.__import__("multiprocessing")
forks = {}
for _ in range(200):
    try:
        if os.fork() == 0:
            os._exit(0)
        forks["started"] = forks.get("started", 0) + 1
    except OSError as e:
        forks[errno.errorcode[e.errno]] = forks.get(errno.errorcode[e.errno], 0) + 1
RESULTS["fork bomb"] = forks


def spawn_interpreter():
    process = multiprocessing.get_context("spawn").Process(target=print)
    process.start()
    process.join()


attempt("subprocess", lambda: subprocess.run([sys.executable, "-c", "pass"]))
attempt("posix_spawn", lambda: os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], {}))
attempt("execv", lambda: os.execv(sys.executable, [sys.executable, "-c", "pass"]))
attempt("os.system", lambda: os.system("touch pwned"))
attempt("multiprocessing spawn", spawn_interpreter)
RESULTS["pwned"] = os.path.exists(WORKDIR + "/pwned")
""")
    assert seen == {"fork bomb": {"EPERM": 200}, "subprocess": EPERM, "posix_spawn": EPERM, "execv": EPERM,
                    "os.system": 127 << 8, "multiprocessing spawn": EPERM, "pwned": False}
    if kernel.sandbox.applies("cgroup"):  # no cgroups in a container (point 3 cannot add them)
        assert len(kernel.sandbox.cgroup().pids()) == 2  # the reaper and the kernel, nothing else


async def test_memory_hogs_fail(launcher):
    """4 GB at once and 3 GB in 64 MB steps hit RLIMIT_AS (MemoryError, the kernel lives on);
    memfd is denied by seccomp (EPERM); /dev/shm is not in the view (ENOENT); the workdir holds
    256 MB (RLIMIT_FSIZE: EFBIG, or its tmpfs size: ENOSPC). The memory cgroup never has to kill."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, """
kept = []


def heap(total_mb):
    while len(kept) * 64 < total_mb:
        kept.append(bytearray(64 << 20))  # zero-filled: every page touched


def fill(write, total_mb):
    chunk = bytes(16 << 20)
    for _ in range(total_mb // 16):
        write(chunk)


def in_file(path, total_mb):
    try:
        with builtins.open(path, "wb", buffering=0) as f:
            fill(f.write, total_mb)
    finally:
        if os.path.exists(path):
            RESULTS[f"{path} MB"] = os.path.getsize(path) >> 20
            os.remove(path)


def in_memfd(total_mb):
    fd = os.memfd_create("hog")
    try:
        fill(lambda chunk: os.write(fd, chunk), total_mb)
    finally:
        os.close(fd)


attempt("4 GB", lambda: bytearray(4 << 30))
attempt("3 GB heap", lambda: heap(3072))
RESULTS["heap MB"] = len(kept) * 64
kept.clear()
attempt("3 GB memfd", lambda: in_memfd(3072))
call("memfd via libc", libc.memfd_create(b"hog", 0))
attempt("3 GB /dev/shm", lambda: in_file("/dev/shm/hog", 3072))
attempt("3 GB workdir", lambda: in_file("hog", 3072))
""")
    assert 0 < seen.pop("heap MB") < 2048
    assert seen.pop("3 GB workdir") in ("OSError:EFBIG", "OSError:ENOSPC")
    assert 0 < seen.pop("hog MB") <= 256
    assert seen == {"4 GB": "MemoryError", "3 GB heap": "MemoryError", "3 GB memfd": EPERM,
                    "memfd via libc": "EPERM", "3 GB /dev/shm": ENOENT}
    assert launcher.is_alive(kernel.kernel_id)
    if kernel.sandbox.applies("cgroup"):
        assert not kernel.sandbox.cgroup().oom_killed()


async def reply_to(client: AsyncKernelClient, msg_id: str, timeout: float) -> dict[str, Any] | None:
    """The shell reply to ``msg_id``, or None if none came within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await client.get_shell_msg(timeout=left)
        except queue.Empty:
            break
        if message["parent_header"].get("msg_id") == msg_id:
            return message
    return None


async def printed(client: AsyncKernelClient, msg_id: str, text: str, timeout: float = 30) -> None:
    """Wait until the cell ``msg_id`` has printed ``text``."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        message = await client.get_iopub_msg(timeout=left)
        if (message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "stream"
                and text in message["content"]["text"]):
            return
    raise AssertionError(f"the cell did not print {text!r}")


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an orphaned kernel waits for host init)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_runaway_cells_are_stopped_from_outside(launcher):
    """Run time is bounded from outside: RLIMIT_CPU is set (300 s, too long to wait for here), an
    endless loop stops on interrupt (SIGINT, relayed by the reaper), and a C call that ignores
    SIGINT ends when the launcher stops the kernel (SIGKILL of its reaper, PR_SET_PDEATHSIG)."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, """
resource = builtins.__import__("resource")
RESULTS["cpu"] = resource.getrlimit(resource.RLIMIT_CPU)
""")
    assert seen == {"cpu": [300, 300]}
    async with connected(launcher, kernel) as client:
        # Not stop_on_error: ipykernel aborts the next request if it reaches the kernel before the abort of queued
        # requests is over, which a request sent as soon as the error reply came can (seen in 1 of 8 to 10 tries).
        loop = client.execute("print('looping', flush=True)\nwhile True:\n    pass\n", stop_on_error=False)
        await printed(client, loop, "looping")
        assert await reply_to(client, loop, 2) is None
        os.kill(kernel.pid, signal.SIGINT)
        reply = await reply_to(client, loop, 10)
        assert reply is not None
        assert (reply["content"]["status"], reply["content"]["ename"]) == ("error", "KeyboardInterrupt")

        stubborn = client.execute(PRELUDE + (
            "signal = sys.modules['signal']\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "print('sleeping', flush=True)\n"
            "libc.sleep(20)\n"))
        await printed(client, stubborn, "sleeping")
        os.kill(kernel.pid, signal.SIGINT)
        assert await reply_to(client, stubborn, 1) is None  # the interrupt is ignored
    if kernel.sandbox.applies("cgroup"):
        processes = kernel.sandbox.cgroup().pids()
        assert kernel.pid in processes and len(processes) == 2  # the reaper and the sleeping kernel
    else:  # no cgroup lists them (the executor container): the kernel's reaper, or the kernel itself
        processes = [kernel.pid]
    started = time.monotonic()
    await launcher.stop(kernel.kernel_id)
    assert time.monotonic() - started < 3
    assert not any(map(running, processes))


async def test_kill_attempts_hit_nothing(launcher):
    """Killing the parent (getppid() is 0: the own process group), everything (-1), the test
    process, the template and a sibling kernel by their host pids: seccomp lets a kernel signal
    itself only (EPERM). Behind it, the PID namespace hides those pids and the uids differ."""
    kernel, sibling = await launcher.launch(), await launcher.launch()
    seen = await attack(launcher, kernel, """
RESULTS["parent pid"] = os.getppid()
attempt("kill the parent", lambda: os.kill(os.getppid(), 9))
attempt("kill everything", lambda: os.kill(-1, 9))
attempt("kill the test process", lambda: os.kill(ARGS["test"], 9))
attempt("kill the template", lambda: os.kill(ARGS["template"], 9))
attempt("kill the sibling", lambda: os.kill(ARGS["sibling"], 9))
attempt("pidfd of the test process", lambda: os.pidfd_open(ARGS["test"]))
attempt("signal itself", lambda: os.kill(os.getpid(), 0))
""", test=os.getpid(), template=launcher.template.process.pid, sibling=sibling.pid)
    assert seen == expected({"parent pid": 0, "kill the parent": EPERM, "kill everything": EPERM,
                             "kill the test process": EPERM, "kill the template": EPERM, "kill the sibling": EPERM,
                             "pidfd of the test process": EPERM, "signal itself": "ok"},
                            # the test is pid 1 of the container: in the kernel's PID namespace, the kernel itself
                            {"kill the test process": "ok"} if os.getpid() == 1 else {})
    assert launcher.template.process.returncode is None
    for alive in (kernel, sibling):
        assert launcher.is_alive(alive.kernel_id)
        status, outputs = await run(launcher, alive, "print(1 + 1)")
        assert (status, texts(outputs)) == ("ok", "2\n")


async def test_policy_bypass_recovers_builtins_but_not_files(launcher):
    """The policy is a convenience: ``import os``, ``open`` and ``__import__`` are refused, yet the
    real ``builtins`` (``object.__subclasses__()`` -> ``os._wrap_close.__init__.__globals__``) and
    ``os`` (``load_dataset.__globals__``) are one step away and work. What they open is still
    contained: /etc/shadow is not in the view (ENOENT), the root is read-only (EROFS), TCP is
    denied by seccomp (EPERM)."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, """
def import_os():
    import os


attempt("import os", import_os)
attempt("policy open", lambda: open("/etc/hostname"))
attempt("policy __import__", lambda: __import__("socket"))
real_import, real_open = builtins.__import__, builtins.open
RESULTS["recovered __import__"] = real_import("socket").__name__
RESULTS["recovered exec"] = builtins.exec("import subprocess", {"__builtins__": builtins}) is None
RESULTS["load_dataset's os"] = load_dataset.__globals__["os"].getpid()
io = real_import("io")
attempt("recovered open /etc/shadow", lambda: real_open("/etc/shadow").read())
attempt("recovered open /usr for writing", lambda: real_open("/usr/lib/planted", "w"))
attempt("recovered io.FileIO", lambda: io.FileIO("/bin/planted", "w"))
attempt("recovered socket", lambda: real_import("socket").socket(2, 1))
""")
    assert seen == {
        "import os": "ImportError", "policy open": "PermissionError", "policy __import__": "PermissionError",
        "recovered __import__": "socket", "recovered exec": True, "load_dataset's os": 1,
        "recovered open /etc/shadow": ENOENT, "recovered open /usr for writing": EROFS,
        "recovered io.FileIO": EROFS, "recovered socket": EPERM,
    }


async def test_pandas_readers_see_only_the_view(launcher, server_data_dir):
    """``pd.read_csv`` reads any path it is given, so contained means: only what the view holds.
    /etc/passwd is not bound (the view's /etc is ld.so.cache and localtime: no account names of
    the host), the server's data dir is absent (ENOENT), URLs need TCP (EPERM, seccomp). The
    workdir and the placed datasets read fine."""
    kernel = await launcher.launch()
    pd.DataFrame({"v": [1, 2, 3]}).to_parquet(kernel.dataset_dir / dataset_filename("numbers"))
    seen = await attack(launcher, kernel, """
attempt("read_csv /etc/passwd", read(lambda: pd.read_csv("/etc/passwd", sep=":", header=None)))
attempt("read_csv the data dir secret", read(lambda: pd.read_csv(ARGS["secret"])))
attempt("read_table /proc/1/environ", read(lambda: pd.read_table("/proc/1/environ")))
attempt("read_parquet of the data dir", lambda: pd.read_parquet(ARGS["data_dir"]))
attempt("read_csv of a url", lambda: pd.read_csv("http://10.0.0.1/data.csv"))
pd.DataFrame({"a": [1, 2]}).to_csv(WORKDIR + "/own.csv", index=False)
RESULTS["read_csv of the workdir"] = pd.read_csv(WORKDIR + "/own.csv")["a"].tolist()
RESULTS["read_parquet of the datasets"] = pd.read_parquet(ARGS["datasets"])["v"].tolist()
""", secret=str(server_data_dir / "server.key"), data_dir=str(server_data_dir),
        datasets=str(kernel.dataset_dir))
    assert seen == expected(
        {"read_csv /etc/passwd": ENOENT, "read_csv the data dir secret": ENOENT,
         "read_table /proc/1/environ": EACCES, "read_parquet of the data dir": "FileNotFoundError",
         "read_csv of a url": "URLError:EPERM", "read_csv of the workdir": [1, 2],
         "read_parquet of the datasets": [1, 2, 3]},
        {"read_table /proc/1/environ": ENOENT})


async def test_pickle_payloads_run_but_start_nothing(launcher):
    """``pd.read_pickle`` runs whatever a pickle says (hand-made protocol-0 bytes: no pickle
    import needed): a payload that makes a directory in the workdir does run (positive control),
    but payloads calling os.system and subprocess cannot start a process (seccomp: the shell
    never starts, status 127; EPERM)."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, r"""
PAYLOADS = {
    "mkdir": b"cposix\nmkdir\n(S'payload-ran'\ntR.",
    "os.system": b"cposix\nsystem\n(S'touch pwned'\ntR.",
    "subprocess": b"csubprocess\ncheck_output\n((S'/usr/bin/touch'\nS'pwned'\nltR.",
}
for name, payload in PAYLOADS.items():
    with builtins.open(f"{WORKDIR}/{name}.pkl", "wb") as f:
        f.write(payload)
    attempt(f"read_pickle {name}", lambda: pd.read_pickle(f"{WORKDIR}/{name}.pkl"))
RESULTS["payload ran"] = os.path.isdir(WORKDIR + "/payload-ran")
RESULTS["pwned"] = os.path.exists(WORKDIR + "/pwned")
""")
    assert seen == {"read_pickle mkdir": "ok", "read_pickle os.system": 127 << 8, "read_pickle subprocess": EPERM,
                    "payload ran": True, "pwned": False}


async def test_ctypes_system_calls_are_denied(launcher):
    """libc through ``np.ctypeslib.ctypes``: ptrace, mount, umount, unshare, chroot and
    non-unix sockets are denied by seccomp (EPERM); setuid(0)/setgid(0) fail for want of
    privilege (the uid layer: seccomp allows them)."""
    kernel = await launcher.launch()
    seen = await attack(launcher, kernel, """
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x00020000, 0x40000000
MS_REMOUNT, MS_BIND = 0x20, 0x1000
call("ptrace attach the test process", libc.ptrace(16, ARGS["test"], None, None))
call("ptrace traceme", libc.ptrace(0, 0, None, None))
call("mount tmpfs", libc.mount(b"none", WORKDIR.encode(), b"tmpfs", 0, None))
call("remount / read-write", libc.mount(None, b"/", None, MS_REMOUNT | MS_BIND, None))
call("umount /usr", libc.umount2(b"/usr", 2))
call("unshare user", libc.unshare(CLONE_NEWUSER))
call("unshare mount", libc.unshare(CLONE_NEWNS))
call("unshare net", libc.unshare(CLONE_NEWNET))
call("chroot", libc.chroot(WORKDIR.encode()))
call("setuid 0", libc.setuid(0))
call("setgid 0", libc.setgid(0))
call("socket inet", libc.socket(2, 1, 0))
call("socket packet", libc.socket(17, 3, 0))
call("socket netlink", libc.socket(16, 3, 0))
RESULTS["uid"] = os.getresuid()
""", test=os.getpid())
    assert seen.pop("uid") == [os.getuid() if kernel.uid is None else kernel.uid] * 3  # in a container: the agent's
    assert seen == expected(dict.fromkeys(["ptrace attach the test process", "ptrace traceme", "mount tmpfs",
                                           "remount / read-write", "umount /usr", "unshare user", "unshare mount",
                                           "unshare net", "chroot", "setuid 0", "setgid 0", "socket inet",
                                           "socket packet", "socket netlink"], "EPERM"),
                            {"setuid 0": "EINVAL", "setgid 0": "EINVAL"})  # uid 0 is not mapped in its namespace
