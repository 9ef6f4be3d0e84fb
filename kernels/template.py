"""The template process: imports the data stack once, then forks kernels from itself on request.

The executor agent starts it as ``python -m kernels.template FD`` with a socket as file
descriptor FD, and talks JSON lines over it:

    -> {"op": "spawn", "kernel_id": "...", "connection_file": "...", "dataset_dir": "...", "tables_dir": "...", "sandbox": {...}}
       with the write end of the kernel's output pipe attached (SCM_RIGHTS)
    <- {"event": "ready", "pid": 1000}                      (once, after the imports)
    <- {"event": "spawned", "kernel_id": "...", "pid": 1234}
    <- {"event": "exited", "kernel_id": "...", "pid": 1234, "status": -9}
    <- {"event": "error", "kernel_id": "...", "message": "..."}

Each child's fd 0 is ``/dev/null`` and its fds 1 and 2 the pipe that came with its request, which
the agent reads (``kernels.kernel_output``): the template's own stdio (the agent's, hence the
server's log) and the pipes of other requests never reach a kernel. Everything else the child
inherits is pointed at ``/dev/null`` by the sandbox.

Before it forks it imports ``PRELOAD`` (named there): numpy, pandas and pyarrow; Bokeh; matplotlib
with pandas' plotting backend, set up by ``kernels.plots`` (Agg, PNG outputs, a Japanese font, the
font list built); tqdm, ipywidgets and jupyter_mimetypes; and the kernel itself, whose IPython shell it builds
(``kernels.kernel.prepare``). A kernel forked from it imports any of those at no cost, and shares their memory.

It never runs card code itself. It must stay single-threaded so that fork is safe: the agent
starts it with BLAS and jemalloc background threads switched off, and it checks at start.
Each child is sandboxed (``kernels.sandbox``) and then serves the Jupyter protocol on ipc
sockets (``kernels.kernel.serve``); the template reaps it and reports its exit. Every child dies
with the template and the template with its agent (``PR_SET_PDEATHSIG``), so an agent that is
killed leaves no kernel running.
"""

from __future__ import annotations

import collections
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

PRELOAD = (
    # the data stack
    "numpy", "pandas", "pyarrow", "pyarrow.parquet", "pyarrow.dataset",  # load_dataset's read_table uses the last
    # charts: Bokeh, and matplotlib with pandas' plotting backend (``kernels.plots`` sets it up)
    "bokeh.plotting", "bokeh.embed", "bokeh.io",
    "matplotlib", "matplotlib.pyplot", "matplotlib_inline.backend_inline", "pandas.plotting._matplotlib",
    # progress bars, widgets, jupyter_kernel_client's set_variable/get_variable
    "tqdm", "tqdm.auto", "ipywidgets", "jupyter_mimetypes",
    # the kernel itself
    "zmq", "ipykernel.kernelapp", "ipykernel.ipkernel", "kernels.kernel", "kernels.sandbox",
)
"""What every kernel has imported already (nothing of it in its namespace: cards import what they use,
at no cost). What a kernel imports beyond this it imports itself, in its own memory and time.

scipy, scikit-learn and statsmodels are installed but not here: with them the template holds ~2,900
modules instead of ~1,400, and each kernel's start (the IPython shell, anything that walks the
modules) writes to, and so copies, about 10 MB more of the template's pages: 37 MB of USS for every
idle kernel instead of 27 (the target is 30). A card that imports them pays instead, once per kernel
(``bench/kernels.py`` prints each library's time and memory)."""

# Variables the agent sets for the template so that nothing it imports starts a thread.
SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
    # Each thread's malloc arena reserves 64 MiB of address space against RLIMIT_AS.
    "MALLOC_ARENA_MAX": "2",
}

PR_SET_CHILD_SUBREAPER = 36
MAX_FDS_PER_READ = 16

Spawner = Callable[[dict[str, Any]], None]


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def preload() -> None:
    """Import ``PRELOAD``, set matplotlib up and build the kernels' IPython shell (``kernel.prepare``), read a
    dataset once (``helpers.warm_up``); then freeze every object, so that no kernel's garbage collector writes to
    (and so copies) the pages it shares with the template."""
    from kernels import helpers, kernel

    for name in PRELOAD:
        importlib.import_module(name)
    kernel.prepare()
    helpers.warm_up()
    gc.freeze()
    if thread_count() != 1:
        raise RuntimeError(f"the template has {thread_count()} threads after imports; fork is unsafe")


def run_child(request: dict[str, Any]) -> None:
    """In the forked child: sandbox this process, then serve the kernel. Never returns."""
    from kernels import kernel, sandbox

    status = 1
    try:
        sandbox.enter(request["sandbox"])
        kernel.serve(request["connection_file"], request["dataset_dir"], request.get("tables_dir", ""),
                     on_bound=lambda: sandbox.seal(request["sandbox"]))
        status = 0
    except Exception:  # noqa: BLE001 - whatever it was, the agent logs it and the child exits
        stream = sys.__stderr__  # the kernel's output pipe: the agent logs it as this kernel's output
        if stream is not None:
            traceback.print_exc(file=stream)
            stream.flush()
    finally:
        os._exit(status)


class Template:
    """The fork loop: requests in on the control socket, children out, exits reported."""

    def __init__(self, control: socket.socket, spawn_child: Spawner = run_child):
        self.control = control
        self.spawn_child = spawn_child
        self.children: dict[int, str] = {}
        self.pid = os.getpid()
        self._buffer = b""
        self._pipes: collections.deque[int] = collections.deque()  # received, in request order
        self._wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(wakeup_w, False)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def send(self, message: dict[str, Any]) -> None:
        self.control.sendall(json.dumps(message).encode() + b"\n")

    def serve_forever(self) -> None:
        while True:
            readable, _, _ = select.select([self.control.fileno(), self._wakeup_r], [], [])
            if self._wakeup_r in readable:
                os.read(self._wakeup_r, 4096)
                self.reap()
            if self.control.fileno() in readable:
                data, fds, _, _ = socket.recv_fds(self.control, 65536, MAX_FDS_PER_READ)
                self._pipes.extend(fds)
                if not data:
                    return
                self._buffer += data
                while b"\n" in self._buffer:
                    line, self._buffer = self._buffer.split(b"\n", 1)
                    self.handle(json.loads(line))

    def handle(self, request: dict[str, Any]) -> None:
        if request.get("op") != "spawn":
            self.send({"event": "error", "kernel_id": request.get("kernel_id"),
                       "message": f"unknown op {request.get('op')!r}"})
            return
        if not self._pipes:
            self.send({"event": "error", "kernel_id": request.get("kernel_id"),
                       "message": "a spawn request needs the kernel's output pipe"})
            return
        output = self._pipes.popleft()
        pid = os.fork()
        if pid == 0:
            self._become_child(request, output)
        os.close(output)
        self.children[pid] = request["kernel_id"]
        self.send({"event": "spawned", "kernel_id": request["kernel_id"], "pid": pid})

    def _become_child(self, request: dict[str, Any], output: int) -> None:
        """In the child: die with the template (which dies with its agent), then become the kernel.

        Nothing else would end a kernel whose agent was killed: its reaper would be adopted by init.
        """
        from kernels.sandbox._libc import PR_SET_PDEATHSIG, prctl

        prctl("template", PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != self.pid:  # the template died before the line above
            os._exit(1)
        os.close(signal.set_wakeup_fd(-1))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.control.close()
        os.close(self._wakeup_r)
        while self._pipes:
            os.close(self._pipes.popleft())
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, source in ((0, null), (1, output), (2, output)):
            os.dup2(source, fd)
        os.close(null)
        os.close(output)
        try:
            self.spawn_child(request)
        finally:
            os._exit(1)

    def reap(self) -> None:
        """Collect every ended child: our reapers, and kernels orphaned when their reaper was killed."""
        while True:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            kernel_id = self.children.pop(pid, None)
            if kernel_id is None:  # an orphaned kernel (we are its subreaper): nothing to report
                continue
            status = -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)
            self.send({"event": "exited", "kernel_id": kernel_id, "pid": pid, "status": status})


def main() -> None:
    """Run in its own session (a terminal's Ctrl+C is for the agent) and die with the agent."""
    from kernels.sandbox._libc import PR_SET_PDEATHSIG, prctl

    prctl("template", PR_SET_PDEATHSIG, signal.SIGKILL)
    prctl("template", PR_SET_CHILD_SUBREAPER, 1)  # a kernel whose reaper was killed ends up here, reaped
    control = socket.socket(fileno=int(sys.argv[1]))
    preload()
    template = Template(control)
    template.send({"event": "ready", "pid": os.getpid()})
    template.serve_forever()


if __name__ == "__main__":
    main()
