"""JSON logs with structlog (``configure_logging`` is the executor agent's, ``kernels.logs``).

Audit events are written by ``services/audit.record``, which logs them (``audit=True``) and keeps them
in the store.
"""

from __future__ import annotations

from typing import Any

import structlog

from kernels.logs import configure_logging

__all__ = ["configure_logging", "get_logger"]


def get_logger(name: str = "bi") -> Any:
    return structlog.get_logger(name)
