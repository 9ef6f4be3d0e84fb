"""Whether code parses, without running it: auto-runs of the card editor show a syntax error at once
instead of sending code that cannot run to the kernel."""

from __future__ import annotations

import ast
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager

PARSE_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # IPython runs top-level await too


def syntax_problem(code: str) -> dict[str, Any] | None:
    """None if ``code`` parses as IPython parses a cell (magics and ``!`` lines are calls, which the card
    policy then refuses with its own message), else where and why not: ``{"line", "column", "message"}``
    (1-based, as an editor shows them)."""
    try:
        try:
            compile(code, "<card>", "exec", PARSE_FLAGS)
        except SyntaxError:  # IPython's own syntax (slow to transform: 1 s for 100,000 characters), or none
            compile(TransformerManager().transform_cell(code), "<card>", "exec", PARSE_FLAGS)
    except SyntaxError as exc:
        return {"line": exc.lineno or 1, "column": exc.offset or 1, "message": exc.msg}
    except (ValueError, MemoryError, RecursionError) as exc:  # null bytes; nesting past the parser's limits
        return {"line": 1, "column": 1, "message": f"{type(exc).__name__}: {exc}"[:200]}
    return None
