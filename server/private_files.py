"""Files only the server's user can read (the data directory 0700, files in it 0600), whatever the umask."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

import structlog

log = structlog.get_logger("bi.files")

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` as a directory of mode 0700, created with its parents if missing.

    A directory of another user (a mount) keeps its mode, with a warning: we may still write there."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    try:
        path.chmod(DIR_MODE)
    except PermissionError:
        log.warning("directory_not_private", path=str(path), mode=oct(path.stat().st_mode & 0o777))
    return path


def private_file(path: Path, create: bool = False) -> None:
    """Set the mode of ``path`` to 0600 if it exists; with ``create``, make it (empty) if it does not."""
    if create:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    if path.exists():
        path.chmod(FILE_MODE)


def create_private_file(path: Path) -> BinaryIO:
    """A new file of mode 0600, open for writing; ``FileExistsError`` if ``path`` exists."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb")


def empty_dir(path: Path) -> list[str]:
    """Remove everything inside ``path`` (if it exists); the names removed."""
    if not path.is_dir():
        return []
    removed = []
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed
