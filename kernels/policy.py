"""The card policy: blocked imports, blocked builtins and no magics, for an early, clear error.

This is a convenience for card authors, not a boundary. The boundary is the OS sandbox
(``kernels.sandbox``: uid, namespaces, seccomp, Landlock, rlimits, cgroups), which must hold on
its own. The policy is installed into the shell's user namespace by ``install(shell)``:

- Imports. Cells run with ``exec(code, user_ns)``, and the ``import`` statement looks up
  ``__import__`` in the builtins of the executing frame, which come from ``user_ns["__builtins__"]``.
  So the user namespace gets its own builtins dict whose ``__import__`` refuses ``BLOCKED_MODULES``.
  This catches every import statement compiled in a cell (including inside functions and lambdas
  defined there and later called by pandas), whether or not the module is already in
  ``sys.modules``, and nothing else: pandas, numpy, pyarrow and bokeh keep their own module
  builtins, so their internal and lazy imports are untouched. A ``sys.meta_path`` finder would not
  do: it is consulted only for modules not yet loaded, and cannot tell who is importing without
  walking frames (and a stack walk would also refuse pandas' lazy imports made on a cell's behalf).
- Builtins. The same dict replaces ``BLOCKED_BUILTINS`` by functions that raise ``PermissionError``.
  ``__import__`` itself must stay callable for the import statement, which always passes five
  positional arguments; other calls are refused, and a call that mimics the statement only gets
  what an import statement gets. IPython's ``open`` and ``__builtin__`` entries, which would
  shadow the dict in the user namespace, are removed.
- Magics and shell escapes. IPython turns ``%x``, ``%%x``, ``!cmd`` and ``!!cmd`` into calls of
  ``run_line_magic``, ``run_cell_magic``, ``system`` and ``getoutput`` on the shell; those are
  replaced on the shell instance, so every magic (``%run``, ``%%bash``, ``%env``, ``%load``, ``x?``
  ...) and every shell escape fails, and no subprocess is ever started for one.

What this does NOT stop (and why the OS layers exist); each is a one-liner for a determined author:

- ``().__class__.__base__.__subclasses__()`` reaches every loaded class, hence ``os._wrap_close``
  and its ``__init__.__globals__`` (``os.system``), ``subprocess.Popen``, ``io.FileIO`` ...;
- ``__globals__`` of any Python function handed to cards (``load_dataset``, the blocked stubs
  below, ``display``, ``get_ipython``) holds its module's real builtins and imports;
- ``get_ipython()`` is the shell: its kernel, sockets and session key, and its class's own
  ``system_raw`` and magics;
- attributes of allowed modules that are blocked modules (``warnings.sys``, ``pd.io.common.os``,
  ``np.ctypeslib.ctypes``) and frames reached through ``exc.__traceback__.tb_frame.f_back``;
- library functions that touch files, processes or code: ``pd.read_csv("/etc/passwd")``,
  ``pd.read_pickle`` (arbitrary code), ``pyarrow.fs``, ``np.load(allow_pickle=True)``.
"""

from __future__ import annotations

import builtins
from typing import Any, NoReturn
from collections.abc import Callable

# Modules whose job is the file system, processes, the network, loading or inspecting code, or
# the kernel's own plumbing. Matched on the top-level package (``os`` blocks ``os.path``), with the
# C modules behind them (``_io``, ``_socket``...) where those are importable on their own.
BLOCKED_MODULES = (
    # processes and the operating system
    "os", "posix", "sys", "subprocess", "_posixsubprocess", "multiprocessing", "concurrent",
    "signal", "_signal", "pty", "fcntl", "resource", "select", "selectors", "mmap",
    "threading", "_thread", "asyncio",
    # files
    "io", "_io", "pathlib", "shutil", "tempfile", "glob", "fileinput", "shelve", "dbm",
    # network
    "socket", "_socket", "ssl", "http", "urllib", "urllib3", "requests", "ftplib", "smtplib",
    "poplib", "imaplib", "socketserver", "xmlrpc", "webbrowser",
    # loading and inspecting code
    "builtins", "importlib", "imp", "zipimport", "pkgutil", "runpy", "code", "codeop", "marshal",
    "pickle", "_pickle", "ctypes", "_ctypes", "cffi", "gc", "inspect",
    # the kernel's plumbing
    "zmq", "jupyter_client", "jupyter_core", "ipykernel", "IPython", "comm", "tornado",
    "traitlets", "debugpy", "kernels",
)
# Submodules of blocked packages that cards may use: rich display objects (Markdown, HTML...).
ALLOWED_MODULES = ("IPython.display",)

BLOCKED_BUILTINS = {
    "open": "use load_dataset(name) to read data",
    "exec": "cards run only the code in their cells",
    "eval": "cards run only the code in their cells",
    "compile": "cards run only the code in their cells",
    "__import__": "use an import statement",
    "input": "cards run unattended",
    "breakpoint": "cards run unattended",
}


def is_blocked(module: str) -> bool:
    """Whether card code may not import ``module`` (a dotted name)."""
    if any(module == ok or module.startswith(ok + ".") for ok in ALLOWED_MODULES):
        return False
    return module.partition(".")[0] in BLOCKED_MODULES


def _blocked_builtin(name: str, hint: str) -> Callable[..., NoReturn]:
    def blocked(*args: Any, **kwargs: Any) -> NoReturn:
        raise PermissionError(f"{name!r} is blocked in cards; {hint}")

    blocked.__name__ = blocked.__qualname__ = name
    return blocked


def _guarded_import(*args: Any, **kwargs: Any) -> Any:
    """``__import__`` for card code: the import statement minus ``BLOCKED_MODULES``."""
    if kwargs or len(args) != 5:
        raise PermissionError(f"'__import__' is blocked in cards; {BLOCKED_BUILTINS['__import__']}")
    name, _globals, _locals, _fromlist, level = args
    if level == 0 and is_blocked(name):
        raise ImportError(f"import of {name!r} is blocked in cards "
                          "(no file system, process, network or interpreter access)", name=name)
    return builtins.__import__(*args)


def card_builtins() -> dict[str, Any]:
    """A copy of the builtins (as they are now, with IPython's additions) under the policy."""
    namespace = dict(builtins.__dict__)
    namespace.update((name, _blocked_builtin(name, hint)) for name, hint in BLOCKED_BUILTINS.items())
    namespace["__import__"] = _guarded_import  # the import statement calls it (module docstring)
    return namespace


def _blocked_magic(kind: str) -> Callable[..., NoReturn]:
    def blocked(name: str, *args: Any, **kwargs: Any) -> NoReturn:
        raise PermissionError(f"magic {kind}{name} is blocked in cards (no magics or shell escapes)")

    return blocked


def _blocked_shell_escape(*args: Any, **kwargs: Any) -> NoReturn:
    raise PermissionError("shell escapes (!command) are blocked in cards (no processes)")


def install(shell: Any) -> None:
    """Apply the policy to an IPython shell's user namespace and its magic entry points."""
    namespace = card_builtins()
    for ns in (shell.user_ns, shell.user_global_ns):
        ns["__builtins__"] = namespace
        ns.pop("__builtin__", None)
        ns.pop("open", None)
    shell.run_line_magic = _blocked_magic("%")
    shell.run_cell_magic = _blocked_magic("%%")
    shell.system = shell.system_piped = shell.system_raw = _blocked_shell_escape
    shell.getoutput = _blocked_shell_escape
    shell.automagic = False
