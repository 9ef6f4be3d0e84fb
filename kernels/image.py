"""The kernel image version: what a card's result depends on besides its code, data and parameters.

A digest of the Python version, of the installed versions of the packages card code runs on and of
the ``kernels`` package's own sources (the executor image copies them rather than installing a
distribution, so their version alone would say nothing).
The agent reports it in ``/health``; the server puts it in the result cache key, so an upgrade of
the kernel image never serves a result computed by the old one.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
from pathlib import Path

PACKAGES = ("ipykernel", "pandas", "numpy", "pyarrow", "bokeh", "matplotlib", "japanize-matplotlib", "scipy",
            "scikit-learn", "statsmodels", "tqdm", "ipywidgets", "jupyter-mimetypes")


@functools.cache
def image_version() -> str:
    parts = [f"python=={platform.python_version()}"]
    for name in PACKAGES:
        try:
            parts.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} missing")
    sources = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        sources.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    parts.append(f"kernels=={sources.hexdigest()}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
