"""The environment allowlist: nothing of the parent's environment survives."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from kernels.sandbox import environment

CANARY = "BI_TEST_CANARY_" + "x" * 16

CHILD = """
import ctypes, json, os
from kernels.sandbox import environment
environment.apply()
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
print(json.dumps({"environ": dict(os.environ), "proc": open("/proc/self/environ", "rb").read().decode(),
                  "getenv": (libc.getenv(b"SECRET_TOKEN") or b"").decode()}))
"""


def test_only_the_allowlist_remains():
    """A process started with a secret in its environment keeps none of it, not even in /proc."""
    env = {**os.environ, "SECRET_TOKEN": CANARY}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         check=True, timeout=30)
    seen = json.loads(out.stdout)
    assert seen["environ"] == environment.DEFAULT
    assert CANARY not in out.stdout
    assert seen["proc"].strip("\0") == "" and seen["getenv"] == ""
