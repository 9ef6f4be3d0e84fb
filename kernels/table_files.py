"""The agent's side of shown tables: open one a kernel wrote to its tables folder, to serve it once.

A kernel writes the whole table of a shown DataFrame to ``<its directory>/tables/<name>.arrow``
(``kernels.table_output``) and names it in the output; the server fetches it through
``GET /kernels/{id}/tables/{name}`` as it reads that output. Everything in the folder is the
kernel's, so it is opened as hostile: the folder and the file without following a symlink, the
file without blocking (a FIFO), and only a regular file of at most the size bound is served. The
name is removed as the file is opened: a table is served once, and the kernel cannot swap it after.
What the file holds is checked by the server, which reads it as the Arrow stream it claims to be.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .limits import ARROW_BYTES


class TableFileError(RuntimeError):
    """No table of that name could be served; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def open_table(folder: Path, name: str, max_bytes: int = ARROW_BYTES) -> tuple[int, int]:
    """An open descriptor of ``folder/<name>.arrow`` (its name removed) and its size.

    ``name`` must already be a table name (``kernels.wire.TABLE_FILE_NAME``).
    """
    try:
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise TableFileError(f"the kernel's tables folder is gone or replaced ({exc.strerror})", 409) from exc
    try:
        try:
            descriptor = os.open(f"{name}.arrow", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                                 dir_fd=directory)
        except FileNotFoundError:
            raise TableFileError(f"no table {name} (it was served already, or never written)", 404) from None
        except OSError as exc:  # a symlink (ELOOP) or something else that is not a file
            raise TableFileError(f"table {name} is not a file ({exc.strerror})", 409) from exc
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            os.close(descriptor)
            raise TableFileError(f"table {name} is not a file", 409)
        os.unlink(f"{name}.arrow", dir_fd=directory)
        if info.st_size > max_bytes:
            os.close(descriptor)
            raise TableFileError(f"table {name} takes {info.st_size} bytes, more than {max_bytes}", 413)
        return descriptor, info.st_size
    finally:
        os.close(directory)
