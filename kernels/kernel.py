"""The locked-down kernel: an IPython kernel with the card policy, ``load_dataset`` and Bokeh JSON.

Two ways to start one, serving the Jupyter protocol over the ``tcp`` or ``ipc`` transport of its
connection file:

- ``python -P -m kernels.kernel -f <connection file> [--dataset-dir=<dir>] [--tables-dir=<dir>]`` (``-P``: no
  working directory on ``sys.path``);
- ``serve(connection_file, dataset_dir)`` in a process forked from the template, which has
  imported this module (and so everything it needs) before forking.

The connection file is only read when it names every port (for ``ipc``, any positive numbers: the
sockets are ``<ip>-<port>``); given port 0, the kernel picks ports and rewrites the file.

Outputs are data, not HTML: Bokeh models as JSON items (``bokeh_output``), DataFrames and
Series as a schema, a first page and an Arrow stream (``table_output``), matplotlib figures as PNG
once a cell ends (``plots``). Kernels of the Jupyter API are switched to what Jupyter frontends
render (``notebook_output``).

The user namespace offers ``load_dataset`` and nothing else pre-imported: cards import pandas,
numpy and bokeh themselves (already loaded, so it costs nothing) and stay plain Python.

What the kernel does not do, so that it runs under a read-only root, an empty environment and
a seccomp filter without fork: it reads no config files (configuration comes from argv or
``serve`` only), creates no profile directory, writes no history database, runs no startup files,
loads no extensions, does not add the working directory to ``sys.path`` itself, names cells
``<ipython-input-N-...>`` (ipykernel's names need ``tempfile.gettempdir()``, which probes for a
writable directory by creating files), binds no TCP pipe for subprocess output, offers no debugger
(debugpy would spawn an adapter process), and refuses every magic and shell escape (``policy``).
Its control channel serves interrupts, shutdowns and kernel_info only (``CONTROL_REQUESTS``):
ipykernel would run any shell request there too, outside the limits the server puts on runs, and
create subshells (threads running code beside the shell); its kernel_info offers neither subshells nor
the debugger.
It starts threads (heartbeat, iopub, control, shell channel, stdout/stderr fd capture) but no
processes; ``tests/kernels/test_kernel.py`` checks that with audit hooks.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

# No debugger: debugpy would start an adapter process, and importing it already runs `uname -p`.
# With the import refused, ipykernel's debugger module (imported here, once) reports it missing.
sys.modules.setdefault("debugpy", None)  # type: ignore[arg-type]  # None refuses the import

# Modules ipykernel and IPython import lazily while a kernel starts: imported here so that the
# template has them before it forks (saves ~10 ms per kernel, no module files read after sandboxing).
import faulthandler  # noqa: E402,F401
import pdb  # noqa: E402,F401,T100

import IPython.core.completerlib  # noqa: E402,F401
import IPython.core.debugger  # noqa: E402,F401
import IPython.core.logger  # noqa: E402,F401
import IPython.core.oinspect  # noqa: E402,F401
import ipykernel.debugger  # noqa: E402,F401
import tornado.platform.asyncio  # noqa: E402,F401
import comm  # noqa: E402
import zmq  # noqa: E402
from IPython.core.compilerop import CachingCompiler  # noqa: E402
from IPython.core.profiledir import ProfileDir
from ipykernel.iostream import IOPubThread, OutStream
from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelbase import Kernel
from ipykernel.kernelapp import IPKernelApp, kernel_aliases
from ipykernel.zmqshell import ZMQInteractiveShell
from jupyter_client.session import Session
from traitlets import Bool, Dict, DottedObjectName, Integer, Type, Unicode
from traitlets.config import Config

from kernels import bokeh_output, helpers, html_output, notebook_output, plots, policy, scalar_output, table_output
from kernels.limits import ARROW_BYTES, STREAM_MESSAGE_CHARS
from kernels.wire import CONTROL_REQUESTS, NOTEBOOK_REQUEST, control_refusal


class ControlHandlers(dict):
    """ipykernel's control handlers, cut to ``CONTROL_REQUESTS``: any other type gets ``refuse``."""

    def __init__(self, handlers: dict[str, Any], refuse: Any):
        super().__init__({msg_type: handlers[msg_type] for msg_type in CONTROL_REQUESTS})
        self.refuse = refuse

    def get(self, msg_type: str, default: Any = None) -> Any:  # ipykernel looks handlers up with get
        return super().get(msg_type, self.refuse)

HEARTBEAT_BIND_SECONDS = 10
COMM_REQUESTS = ("comm_open", "comm_msg", "comm_close")


INTERRUPTED = compile("raise KeyboardInterrupt", "<interrupted>", "exec")  # a cell interrupted before it ran


class LockedDownShell(ZMQInteractiveShell):
    """The IPython shell of every kernel of a process, built once by ``prepare`` before any kernel exists: in the
    template, before it forks, so that a forked kernel starts with it built (its traitlets objects, formatters,
    magics and completer, our outputs and policy installed: some 10 ms of a forked kernel's start, and 10 MB of
    its memory that stays shared) and only ``attach``es it. The template runs no code in it,
    and each kernel has its own copy (the fork's), so nothing passes from one kernel to another.

    It keeps no history database, has no IPython directory (nothing is read from or written to one) and compiles
    with the plain IPython compiler (ipykernel's names cells after temporary files). The template's
    ``preload`` checks that building it started no thread."""

    in_cell = False  # an execute_request is being handled
    interrupt_pending = False  # a SIGINT came while it was, outside its code
    _running_code = False

    def init_ipython_dir(self, ipython_dir: str | None) -> None:
        """No IPython directory: IPython would create ``~/.ipython``, in the template the host's."""

    def on_sigint(self, signum: int, frame: Any) -> None:
        """SIGINT while the kernel handles a shell message: it interrupts the code running (a cell's, a comm
        handler's, an inspected attribute's); in a cell's handling outside its code, it is kept for that code
        (``run_code``). ipykernel's ``KeyboardInterrupt`` there dropped the execute_request unanswered: its run waited
        out its wall clock, and its kernel was killed."""
        if self.in_cell and not self._running_code:
            self.interrupt_pending = True
            return
        raise KeyboardInterrupt

    async def run_code(self, code_obj: Any, result: Any = None, *, async_: bool = False) -> bool:
        """Run the user's code, interrupted at once by a SIGINT that came before it (``on_sigint``)."""
        if self.interrupt_pending:
            self.interrupt_pending = False
            code_obj = INTERRUPTED
        self._running_code = True
        try:
            return bool(await super().run_code(code_obj, result, async_=async_))
        finally:
            self._running_code = False

    def attach(self, kernel: LockedDownKernel) -> None:
        """Serve ``kernel`` from now on: what IPython set from the process it was built in, set again for this one
        (after the sandbox: its working directory and environment), and outputs on the kernel's session."""
        self.kernel = self.parent = kernel
        self.starting_dir = os.getcwd()
        self.init_environment()
        self.displayhook.session = self.display_pub.session = kernel.session
        self.displayhook.pub_socket = self.display_pub.pub_socket = kernel.iopub_socket
        self.displayhook.topic = kernel._topic("execute_result")


def prepare() -> None:
    """Set up what every kernel of this process shares (the template calls this before it forks): matplotlib
    (``plots.prepare``) and the shell, with the outputs and the policy that do not depend on the kernel."""
    plots.prepare()
    if LockedDownShell.initialized():
        return
    config = Config({"HistoryManager": {"enabled": False}})  # no history.sqlite, no saving thread
    shell = LockedDownShell.instance(config=config, profile_dir=ProfileDir(config=config),
                                     compiler_class=CachingCompiler)
    for install in (bokeh_output.install, plots.install, html_output.install, scalar_output.install, policy.install):
        install(shell)


class LockedDownKernel(IPythonKernel):
    """An IPython kernel whose user namespace runs under ``kernels.policy``, serving the shell ``prepare`` built.

    Its ``__init__`` is ``IPythonKernel``'s but for the debugger (none here: that one lists the file of every
    loaded module for debugpy, and in a forked kernel its references to 1,400 module objects copied some 2,600
    pages of the template, 9 to 16 ms), macOS's App Nap and ``JPY_SESSION_NAME`` (no kernel's environment has it).
    """

    implementation = "bi-cards"
    dataset_dir = Unicode(helpers.DEFAULT_DATASET_DIR,
                          help="Directory of the session's datasets (kernels.helpers).").tag(config=True)
    arrow_limit_bytes = Integer(ARROW_BYTES,
                                help="Largest Arrow stream a shown DataFrame carries (kernels.table_output)."
                                ).tag(config=True)
    tables_dir = Unicode("", help="Folder the whole tables of shown DataFrames are written to, for the agent to "
                                  "serve (kernels.table_output); empty: only their first rows are shown.").tag(config=True)

    def __init__(self, **kwargs: Any):
        Kernel.__init__(self, **kwargs)  # not IPythonKernel's: see the class docstring
        prepare()  # done already in a kernel forked from the template
        self.shell = shell = LockedDownShell.instance()
        shell.attach(self)
        self.comm_manager = comm.get_comm_manager()
        shell.configurables.append(self.comm_manager)
        for msg_type in COMM_REQUESTS:
            self.shell_handlers[msg_type] = getattr(self.comm_manager, msg_type)
        shell.user_ns["load_dataset"] = helpers.loader(self.dataset_dir)
        table_output.install(shell, self.arrow_limit_bytes, self.tables_dir)
        self.control_handlers = ControlHandlers(self.control_handlers, self.refuse_on_control)
        self.shell_handlers[NOTEBOOK_REQUEST] = self.switch_to_notebook

    @property
    def kernel_info(self) -> dict[str, Any]:
        """ipykernel's, offering none of the features the control channel refuses (subshells, the debugger):
        JupyterLab 4.6 asks a kernel that offers subshells for one before it runs a cell, and waits."""
        return {**super().kernel_info, "supported_features": []}

    async def switch_to_notebook(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        """The server's ``NOTEBOOK_REQUEST``: outputs for a Jupyter frontend from now on."""
        assert self.shell is not None and self.session is not None
        notebook_output.enable(self.shell)
        self.session.send(stream, "bi_notebook_reply", {"status": "ok"}, parent, ident)

    def pre_handler_hook(self) -> None:
        assert isinstance(self.shell, LockedDownShell)
        self.saved_sigint_handler = signal.signal(signal.SIGINT, self.shell.on_sigint)

    async def execute_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        """ipykernel's, with a SIGINT outside the cell's code kept for it (``LockedDownShell.on_sigint``); one left
        when the cell is answered (its code ended, or never ran) is dropped."""
        assert isinstance(self.shell, LockedDownShell)
        self.shell.in_cell = True
        try:
            await super().execute_request(stream, ident, parent)
        finally:
            self.shell.in_cell = self.shell.interrupt_pending = False

    def _send_interrupt_children(self) -> None:
        """An ``interrupt_request`` on control: SIGINT to this process, which starts none. ipykernel signals
        its process group, which the sandbox refuses: the interrupt worked, yet its reply said EPERM."""
        os.kill(os.getpid(), signal.SIGINT)

    async def _progressively_terminate_all_children(self) -> None:
        """Nothing to end at shutdown: a kernel starts no processes. ipykernel looks for children with psutil,
        which reads ``/proc/stat``, hidden from kernels, and logged a traceback at every shutdown."""

    def refuse_on_control(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        """Answer a message the control channel does not serve with an error reply."""
        reply_type, content = control_refusal(parent["header"]["msg_type"])
        assert self.session is not None  # set once the kernel serves messages
        self.session.send(stream, reply_type, content, parent, ident)


class BoundedOutStream(OutStream):
    """stdout and stderr in messages of at most ``STREAM_MESSAGE_CHARS`` characters: one huge write would
    otherwise be one message past the relay's bound, which costs the kernel its link."""

    def _flush_buffers(self) -> Any:
        for parent, data in super()._flush_buffers():
            for start in range(0, len(data), STREAM_MESSAGE_CHARS):
                yield parent, data[start : start + STREAM_MESSAGE_CHARS]


class LockedDownKernelApp(IPKernelApp):
    """``IPKernelApp`` for ``LockedDownKernel``, touching no files but its connection file."""

    name = "bi-kernel"
    kernel_class = Type(LockedDownKernel, klass="ipykernel.kernelbase.Kernel")  # type: ignore[assignment]
    classes = [LockedDownKernel, ZMQInteractiveShell, ProfileDir, Session]
    aliases = Dict({**kernel_aliases, "dataset-dir": "LockedDownKernel.dataset_dir",
                    "tables-dir": "LockedDownKernel.tables_dir"})
    ignore_cwd = Bool(True)
    outstream_class = DottedObjectName("kernels.kernel.BoundedOutStream")

    def init_profile_dir(self) -> None:
        """A profile without a directory: nothing is read from or written to it."""
        self.profile_dir = ProfileDir(config=self.config)

    def init_config_files(self) -> None:
        """No config files to stage."""

    def load_config_file(self, *args: Any, **kwargs: Any) -> None:
        """No config files (they are Python code); argv and ``serve`` configure the kernel."""

    def init_iopub(self, context: Any) -> None:
        """As ipykernel's, without the TCP pipe that collects output of forked subprocesses."""
        self.iopub_socket = context.socket(zmq.XPUB)
        self.iopub_socket.linger = 1000
        self._apply_curve_server_options(self.iopub_socket)
        self.iopub_port = self._bind_socket(self.iopub_socket, self.iopub_port)
        self.configure_tornado_logger()
        self.iopub_thread = IOPubThread(self.iopub_socket, pipe=False, session=self.session)
        self.iopub_thread.start()
        self.iopub_socket = self.iopub_thread.background_socket

    def log_connection_info(self) -> None:
        """Record the ports; print no "how to connect" banner."""
        self._ports = {"shell": self.shell_port, "iopub": self.iopub_port, "stdin": self.stdin_port,
                       "hb": self.hb_port, "control": self.control_port}

    def init_extensions(self) -> None:
        """No IPython extensions (the default one, storemagic, is a magic)."""

    def init_code(self) -> None:
        """No startup files, PYTHONSTARTUP or exec_lines."""

    def parse_command_line(self, argv: Any = None) -> None:
        """An empty ``argv`` (``serve``: its ``Config`` says everything) is not parsed: traitlets would first build
        an argument parser of every option of every class, a tenth of a forked kernel's start."""
        if argv == []:
            self.argv = []
            return
        super().parse_command_line(argv)


def serve(connection_file: str, dataset_dir: str = helpers.DEFAULT_DATASET_DIR, tables_dir: str = "",
          on_bound: Callable[[], None] | None = None) -> None:
    """Serve a kernel in this process until it is shut down (for the template's forked children).

    ``on_bound`` runs once every socket is bound (``ipc`` only: the heartbeat binds in its own
    thread), before the first request is served: the sandbox's ``seal``.
    """
    config = Config({"LockedDownKernel": {"dataset_dir": dataset_dir, "tables_dir": tables_dir},
                     "LockedDownKernelApp": {"connection_file": connection_file}})
    app = LockedDownKernelApp.instance(config=config)
    app.initialize([])
    if on_bound is not None:
        heartbeat = f"{app.ip}-{app.hb_port}"
        deadline = time.monotonic() + HEARTBEAT_BIND_SECONDS
        while not os.path.exists(heartbeat):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the heartbeat socket {heartbeat} was not bound in {HEARTBEAT_BIND_SECONDS} s")
            time.sleep(0.001)
        on_bound()
    app.start()


def main() -> None:
    """``python -m kernels.kernel -f <connection file>``."""
    prepare()  # what the template does before it forks
    LockedDownKernelApp.launch_instance()


if __name__ == "__main__":
    main()
