"""Secrets kept in the data directory in embedded mode, created once with mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from collections.abc import Callable


def read_or_create(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(48)) -> tuple[str, bool]:
    """The secret in ``path``, creating it first if missing; also whether it was created now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path.read_text().strip(), False
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value, True
