"""The kernel image version: what a card's result depends on besides its code, data and parameters.

A digest of the Python version and of the installed versions of the packages card code runs on.
The agent reports it in ``/health``; the server puts it in the result cache key, so an upgrade of
the kernel image never serves a result computed by the old one.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform

PACKAGES = ("bi-cards", "ipykernel", "pandas", "numpy", "pyarrow", "bokeh")


@functools.cache
def image_version() -> str:
    parts = [f"python=={platform.python_version()}"]
    for name in PACKAGES:
        try:
            parts.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} missing")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
