"""The template's preload: the data stack imported and a table read and grouped once, on its one thread."""

from __future__ import annotations

import os
import subprocess
import sys

from kernels.template import SINGLE_THREAD_ENV

PRELOADED = """
import os, sys
from kernels import template
template.preload()  # raises if anything it ran left a thread behind (a fork keeps only the forking one)
print(len(os.listdir("/proc/self/task")), "pyarrow.dataset" in sys.modules)
"""


def test_preload_warms_the_dataset_path_on_one_thread():
    """``load_dataset``'s reader is imported before the fork and the warm-up read starts no thread."""
    done = subprocess.run([sys.executable, "-P", "-c", PRELOADED], env={**os.environ, **SINGLE_THREAD_ENV},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True"]
