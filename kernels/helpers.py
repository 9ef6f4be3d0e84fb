"""The helper API of card code: ``load_dataset(name)``.

Layout: the executor agent places each dataset the session may read, read-only, as one Parquet
file ``<dataset_dir>/<dataset_filename(name)>``; ``dataset_dir`` defaults to
``/tmp/workdir/datasets`` (the kernel's tmpfs workdir). ``dataset_filename`` keeps names readable
(``売上`` -> ``売上.parquet``) and escapes, as ``%XX``, only what could leave the directory or hide
a file: ``%``, ``/``, ``\\``, control characters and a leading ``.``. So ``../x`` becomes
``%2E.%2Fx.parquet``, a plain file name inside ``dataset_dir``. Names are NFC-normalised first;
the agent must use the same function to write the files.

A file is read memory-mapped (the agent places the stored file itself where it can: a hard link, so
its pages are the page cache's, not a copy) with pyarrow's threads, as many as the kernel's task limit
leaves room for (``arrow_threads``), at most ``MAX_ARROW_THREADS``.
"""

from __future__ import annotations

import functools
import os
import resource
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_DATASET_DIR = "/tmp/workdir/datasets"
SUFFIX = ".parquet"
_ESCAPED = frozenset("%/\\\x7f") | {chr(code) for code in range(32)}
MAX_ARROW_THREADS = 4  # each thread's stack and malloc arena count against the address space limit
TASK_SHARE = 4  # pyarrow may take at most a quarter of the tasks the kernel has left (RLIMIT_NPROC)


class DatasetNotFound(KeyError):
    """No dataset of that name in this kernel; the message lists the ones there are."""

    def __str__(self) -> str:
        return str(self.args[0])


def dataset_filename(name: str) -> str:
    """The file name (no directory) under which dataset ``name`` is stored."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a dataset name is a non-empty string, not {name!r}")
    name = unicodedata.normalize("NFC", name)
    escaped = "".join(f"%{ord(char):02X}" if char in _ESCAPED else char for char in name)
    if escaped.startswith("."):
        escaped = "%2E" + escaped[1:]
    return escaped + SUFFIX


def dataset_names(dataset_dir: str) -> list[str]:
    """The names of the datasets in ``dataset_dir``, sorted."""
    try:
        files = os.listdir(dataset_dir)
    except FileNotFoundError:
        return []
    return sorted(unquote(file[: -len(SUFFIX)]) for file in files if file.endswith(SUFFIX))


def read_dataset(dataset_dir: str, name: str) -> pd.DataFrame:
    """Dataset ``name`` of ``dataset_dir`` as a DataFrame, or ``DatasetNotFound``."""
    path = os.path.join(dataset_dir, dataset_filename(name))
    if not os.path.isfile(path):
        available = ", ".join(repr(known) for known in dataset_names(dataset_dir)) or "none"
        raise DatasetNotFound(f"no dataset named {name!r}; available: {available}")
    threads = arrow_threads()
    table = pq.read_table(path, memory_map=True, use_threads=threads > 1)
    return table.to_pandas(use_threads=threads > 1)


def warm_up() -> None:
    """Read a small Parquet table into pandas and filter and group it, once, in the template before it
    forks (on this thread only): what pandas and pyarrow set up on first use (modules they import lazily,
    caches) is then shared by every kernel instead of redone by each for its first card."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"region": ["a", "b"] * 50, "amount": range(100),
                             "day": pa.array(range(100), pa.timestamp("s"))}), sink)
    # ParquetFile without pre-buffering, as read_table would start an I/O thread (fork keeps no thread)
    table = pq.ParquetFile(pa.BufferReader(sink.getvalue()), pre_buffer=False).read(use_threads=False)
    frame = table.to_pandas(use_threads=False)
    frame[frame.amount > 10].groupby("region").amount.agg(["sum", "count", "mean"])


@functools.cache
def arrow_threads() -> int:
    """The threads pyarrow's pools get in this process (set once): the CPUs, within a share of the tasks
    ``RLIMIT_NPROC`` leaves (it counts threads, and a thread pyarrow cannot start aborts the kernel)."""
    limit = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    try:
        room = MAX_ARROW_THREADS if limit == resource.RLIM_INFINITY else (limit - _tasks()) // TASK_SHARE
    except OSError:  # no /proc: one thread is always safe
        room = 1
    threads = max(1, min(os.cpu_count() or 1, MAX_ARROW_THREADS, room))
    pa.set_cpu_count(threads)
    pa.set_io_thread_count(threads)
    return threads


def _tasks() -> int:
    """The threads of this process (the uid's other tasks are its own kernel's: a uid per kernel)."""
    return len(os.listdir("/proc/self/task"))


def loader(dataset_dir: str) -> Callable[[str], pd.DataFrame]:
    """The ``load_dataset`` function that card code gets, bound to ``dataset_dir``."""

    def load_dataset(name: str) -> pd.DataFrame:
        """Return the dataset ``name`` as a pandas DataFrame."""
        return read_dataset(dataset_dir, name)

    return load_dataset
