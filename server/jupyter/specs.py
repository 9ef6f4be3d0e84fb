"""The one kernel spec this server offers, as Jupyter Server describes kernel specs.

Every kernel is the pool's sandboxed Python kernel, named ``python3`` so that notebooks written
elsewhere run unchanged. Its logos are ipykernel's, served without a token (browsers load them as
images, which cannot carry one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipykernel

from ..errors import NotFoundError
from ..execution.session import Limits
from .kernel import KERNEL_NAME

RESOURCES = {path.name: path for path in (Path(ipykernel.__file__).parent / "resources").glob("logo-*")}
CONTENT_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}


def check(name: str | None) -> None:
    """NotFoundError unless ``name`` (None: the default) is this server's kernel spec."""
    if name not in (None, "", KERNEL_NAME):
        raise NotFoundError(f"No kernel spec {name!r}; this server offers only {KERNEL_NAME!r}.")


def model(limits: Limits) -> dict[str, Any]:
    return {
        "name": KERNEL_NAME,
        "spec": {
            "argv": [],  # kernels are forked inside an executor agent's sandbox, not launched by a command
            "display_name": "Python 3 (BI sandbox)",
            "language": "python",
            "interrupt_mode": "signal",
            "env": {},
            "metadata": {"bi": {"wall_seconds": limits.wall_seconds, "output_bytes": limits.output_bytes,
                                "datasets": "load_dataset(name) reads each dataset you could see when the "
                                            "kernel started"}},
        },
        "resources": {Path(name).stem: f"/kernelspecs/{KERNEL_NAME}/{name}" for name in sorted(RESOURCES)},
    }


def resource(name: str, filename: str) -> tuple[bytes, str]:
    """The bytes and content type of one of the spec's files."""
    check(name)
    if filename not in RESOURCES:
        raise NotFoundError(f"The kernel spec has no file {filename!r}.")
    path = RESOURCES[filename]
    return path.read_bytes(), CONTENT_TYPES.get(path.suffix, "application/octet-stream")
