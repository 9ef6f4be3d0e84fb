"""The card policy: blocked imports, builtins and magics, in-process and in a real kernel."""

from __future__ import annotations

import re
import sys

import pytest

from kernels import policy
from tests.kernels.kernel_fixtures import execute, started_kernel

IMPORT_REASON = "is blocked in cards (no file system, process, network or interpreter access)"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("policy")
    with started_kernel(workdir, "ipc", workdir / "datasets") as client:
        yield client


def run_with_card_builtins(code: str) -> dict:
    namespace = {"__builtins__": policy.card_builtins()}
    exec(compile(code, "<cell>", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("name, blocked", [
    ("os", True), ("os.path", True), ("importlib.util", True), ("IPython", True), ("IPython.core", True),
    ("IPython.display", False), ("pandas", False), ("numpy.linalg", False), ("bokeh.plotting", False),
    ("ossaudiodev", False), ("pyarrow.parquet", False),
])
def test_is_blocked(name, blocked):
    assert policy.is_blocked(name) is blocked


def test_loaded_module_is_still_refused_in_process():
    assert "os" in sys.modules
    with pytest.raises(ImportError, match=re.escape(f"import of 'os' {IMPORT_REASON}")):
        run_with_card_builtins("import os")


def test_libraries_keep_their_lazy_imports_in_process():
    """pandas imports its HTML formatter on first use, from its own module: not a card import."""
    sys.modules.pop("pandas.io.formats.html", None)
    namespace = run_with_card_builtins("import pandas as pd\nhtml = pd.DataFrame({'a': [1]}).to_html()")
    assert namespace["html"].startswith("<table")
    assert "pandas.io.formats.html" in sys.modules


@pytest.mark.parametrize("module", policy.BLOCKED_MODULES)
def test_blocked_import(kernel, module):
    result = execute(kernel, f"import {module}")
    assert result.error == ("ImportError", f"import of {module!r} {IMPORT_REASON}")


@pytest.mark.parametrize("code, module", [
    ("from os import path", "os"),
    ("import os.path", "os.path"),
    ("import pandas as pd, subprocess", "subprocess"),
    ("def f():\n    import socket\nf()", "socket"),
])
def test_blocked_import_forms(kernel, code, module):
    result = execute(kernel, code)
    assert result.error == ("ImportError", f"import of {module!r} {IMPORT_REASON}")


def test_import_in_a_function_called_by_pandas(kernel):
    result = execute(kernel, "import pandas as pd\n"
                             "def f(x):\n    import shutil\n    return x\n"
                             "pd.Series([1, 2]).apply(f)")
    assert result.error == ("ImportError", f"import of 'shutil' {IMPORT_REASON}")


def test_data_stack_works(kernel):
    result = execute(kernel, "import numpy as np\nimport pandas as pd\nimport pyarrow as pa\n"
                             "from IPython.display import Markdown\n"
                             "df = pd.DataFrame({'k': ['a', 'b', 'a'], 'v': [1, 2, 3]})\n"
                             "print(df.groupby('k')['v'].sum().to_dict(), int(np.arange(4).sum()),\n"
                             "      pa.table(df).num_rows, df.to_html()[:6])")
    assert result.error is None
    assert result.stdout == "{'a': 4, 'b': 2} 6 3 <table\n"


@pytest.mark.parametrize("code, name", [
    ("open('/etc/passwd')", "open"),
    ("exec('1')", "exec"),
    ("eval('1')", "eval"),
    ("compile('1', 'x', 'eval')", "compile"),
    ("__import__('pandas')", "__import__"),
    ("input()", "input"),
    ("breakpoint()", "breakpoint"),
    ("__builtins__['open']('/etc/passwd')", "open"),
])
def test_blocked_builtin(kernel, code, name):
    ename, evalue = execute(kernel, code).error
    assert ename == "PermissionError"
    assert evalue.startswith(f"{name!r} is blocked in cards; ")
    assert "\n" not in evalue


@pytest.mark.parametrize("code, message", [
    ("%run x.py", "magic %run is blocked"),
    ("%env", "magic %env is blocked"),
    ("%load x.py", "magic %load is blocked"),
    ("%sx ls", "magic %sx is blocked"),
    ("%system ls", "magic %system is blocked"),
    ("%pip list", "magic %pip is blocked"),
    ("%%bash\nls", "magic %%bash is blocked"),
    ("%%writefile x.py\n1", "magic %%writefile is blocked"),
    ("x = 1\nx?", "magic %pinfo is blocked"),
    ("!ls", "shell escapes (!command) are blocked"),
    ("!!ls", "shell escapes (!command) are blocked"),
    ("files = !ls", "shell escapes (!command) are blocked"),
])
def test_magics_and_shell_escapes_are_blocked(kernel, code, message):
    ename, evalue = execute(kernel, code).error
    assert ename == "PermissionError"
    assert evalue.startswith(message)
