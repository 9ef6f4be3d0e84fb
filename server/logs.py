"""JSON logs with structlog (``configure_logging`` is the executor agent's, ``kernels.logs``).

``audit(event, **fields)`` writes the audit events named in DESIGN.md §10
(``login_success``, ``login_failed``, ``dataset_created``, ...) with ``audit=True``.
"""

from __future__ import annotations

from typing import Any

import structlog

from kernels.logs import configure_logging

__all__ = ["audit", "configure_logging", "get_logger"]


def get_logger(name: str = "bi") -> Any:
    return structlog.get_logger(name)


def audit(event: str, **fields: Any) -> None:
    """Write an audit event; ``fields`` are its keys (ids, email, ip, ...)."""
    structlog.get_logger("bi.audit").info(event, audit=True, **fields)
