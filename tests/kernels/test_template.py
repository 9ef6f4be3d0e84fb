"""The template's preload: the data stack imported, the kernels' shell built and a table read and grouped once, on
its one thread, writing nothing to its home."""

from __future__ import annotations

import os
import subprocess
import sys

from kernels.template import SINGLE_THREAD_ENV

PRELOADED = """
import os, sys
from kernels import template
template.preload()  # raises if anything it ran left a thread behind (a fork keeps only the forking one)
from kernels.kernel import LockedDownShell
print(len(os.listdir("/proc/self/task")), "pyarrow.dataset" in sys.modules, LockedDownShell.initialized())
"""


def test_preload_warms_the_dataset_path_on_one_thread(tmp_path):
    """``load_dataset``'s reader is imported before the fork, and neither the warm-up read nor the shell starts a
    thread (IPython's history would) or creates an IPython directory (``~/.ipython``: the host's)."""
    done = subprocess.run([sys.executable, "-P", "-c", PRELOADED],
                          env={**os.environ, **SINGLE_THREAD_ENV, "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True", "True"]
    assert not (tmp_path / ".ipython").exists()
