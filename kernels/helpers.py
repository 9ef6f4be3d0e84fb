"""The helper API of card code: ``load_dataset(name)``.

Layout: the executor agent places each dataset the session may read, read-only, as one Parquet
file ``<dataset_dir>/<dataset_filename(name)>``; ``dataset_dir`` defaults to
``/tmp/workdir/datasets`` (the kernel's tmpfs workdir). ``dataset_filename`` keeps names readable
(``売上`` -> ``売上.parquet``) and escapes, as ``%XX``, only what could leave the directory or hide
a file: ``%``, ``/``, ``\\``, control characters and a leading ``.``. So ``../x`` becomes
``%2E.%2Fx.parquet``, a plain file name inside ``dataset_dir``. Names are NFC-normalised first;
the agent must use the same function to write the files.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote

import pandas as pd

DEFAULT_DATASET_DIR = "/tmp/workdir/datasets"
SUFFIX = ".parquet"
_ESCAPED = frozenset("%/\\\x7f") | {chr(code) for code in range(32)}


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
    return pd.read_parquet(path, engine="pyarrow")


def loader(dataset_dir: str) -> Callable[[str], pd.DataFrame]:
    """The ``load_dataset`` function that card code gets, bound to ``dataset_dir``."""

    def load_dataset(name: str) -> pd.DataFrame:
        """Return the dataset ``name`` as a pandas DataFrame."""
        return read_dataset(dataset_dir, name)

    return load_dataset
