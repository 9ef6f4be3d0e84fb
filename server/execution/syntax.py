"""Whether code parses, without running it: auto-runs of the card editor show a syntax error at once
instead of sending code that cannot run to the kernel.

Code that does not compile goes through IPython's input transformer (magics, ``!`` lines, help) only up to
``SYNTAX_TRANSFORM_CHARS`` and ``SYNTAX_TRANSFORMS`` lines it may rewrite: it re-tokenises the cell for each
transform (240 KB cost 2.7 s; 510 ``x?`` lines, 1.5 KB, 18 s) and gives up with ``RuntimeError`` after 500
of them. Past either bound the compile error is the answer (cards refuse magics and shell lines anyway),
and the transformer giving up is a syntax problem of the cell."""

from __future__ import annotations

import ast
import re
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager

from ..limits import SYNTAX_TRANSFORM_CHARS, SYNTAX_TRANSFORMS

PARSE_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # IPython runs top-level await too
IPYTHON_SYNTAX = re.compile(r"^[ \t]*[%!?]|[?][ \t]*$|=[ \t]*[%!]", re.MULTILINE)
"""A line the transformer may rewrite (a magic, a shell command, help): each costs it a pass over the cell."""


def syntax_problem(code: str) -> dict[str, Any] | None:
    """None if ``code`` parses as IPython parses a cell (magics and ``!`` lines are calls, which the card
    policy then refuses with its own message), else where and why not: ``{"line", "column", "message"}``
    (1-based, as an editor shows them)."""
    try:
        try:
            compile(code, "<card>", "exec", PARSE_FLAGS)
        except SyntaxError:  # IPython's own syntax (slow to transform: 1 s for 100,000 characters), or none
            if len(code) > SYNTAX_TRANSFORM_CHARS or len(IPYTHON_SYNTAX.findall(code)) > SYNTAX_TRANSFORMS:
                raise
            compile(TransformerManager().transform_cell(code), "<card>", "exec", PARSE_FLAGS)
    except SyntaxError as exc:
        return {"line": exc.lineno or 1, "column": exc.offset or 1, "message": exc.msg}
    except (ValueError, MemoryError, RecursionError, RuntimeError) as exc:  # null bytes; nesting past the
        # parser's limits; the transformer giving up
        return {"line": 1, "column": 1, "message": f"{type(exc).__name__}: {exc}"[:200]}
    return None
