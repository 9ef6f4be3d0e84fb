"""Give a type one whole MIME bundle: the bundle function, and nothing from IPython's other formatters."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable


def _nothing(obj: Any) -> None:
    return None


def register(shell: Any, types: tuple[type, ...], bundle: Callable[[Any], dict[str, Any]]) -> None:
    """Objects of ``types`` (and subclasses) display as ``bundle(obj)`` and nothing else.

    IPython asks every MIME formatter for what the mimebundle formatter left out, so
    ``_repr_html_`` and friends are silenced per type; ``bundle`` provides ``text/plain``.
    """
    formatter = shell.display_formatter
    for type_ in types:
        formatter.mimebundle_formatter.for_type(type_, bundle)
        for mime, mime_formatter in formatter.formatters.items():
            if mime != "text/plain":
                mime_formatter.for_type(type_, _nothing)
