"""The card editor's syntax check (``server/execution/syntax.py``) costs the server little, whatever the code.

Red team 5: an auto-run's code that does not compile was handed whole to IPython's input transformer, which
re-tokenises the cell for each transform: a 240 KB cell (within one socket message) cost 2.7 s of a server
thread holding the GIL, per message, and a cell of 1,000 ``x?`` lines made it raise ``RuntimeError`` ("still
changing after 500 iterations"), which the check did not catch: the auto-run task died and its run never
ended for the editor. Now code past ``SYNTAX_TRANSFORM_CHARS`` is only compiled, and any failure of the
transformer is a syntax problem of the cell. The transformer's passes cost more than the characters: 510
``x?`` lines (1.5 KB) took 18 s, so it is also run only on cells of at most ``SYNTAX_TRANSFORMS`` lines it
may rewrite.
"""

from __future__ import annotations

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from server.execution.syntax import syntax_problem
from server.limits import SOCKET_MESSAGE_BYTES, SYNTAX_TRANSFORM_CHARS, SYNTAX_TRANSFORMS


def test_a_cell_the_transformer_gives_up_on_is_a_syntax_problem(monkeypatch):
    monkeypatch.setattr("server.execution.syntax.SYNTAX_TRANSFORMS", 10_000)  # (the real give-up takes 20 s)
    problem = syntax_problem("x?\n" * 510 + ")")
    assert problem is not None and problem["line"] >= 1 and problem["message"]


@pytest.mark.parametrize("code", ["x = (\n" + "y = 1\n" * 40_000, "!ls\n" * 6_000 + ")", "x?\n" * 510 + ")",
                                  "%time 1\n" * 9 + ")"])
def test_a_long_or_magic_heavy_cell_that_does_not_compile_is_not_transformed(code, monkeypatch):
    transformed = []

    def transform_cell(self, cell):
        transformed.append(len(cell))
        raise SyntaxError("transformed")  # (the real one takes seconds here)
    monkeypatch.setattr(TransformerManager, "transform_cell", transform_cell)
    code = code[:SOCKET_MESSAGE_BYTES]
    assert syntax_problem(code) is not None
    assert transformed == [], "the whole cell went through IPython's transformer"


def test_a_short_cell_of_ipython_syntax_still_parses():
    assert syntax_problem("x = !ls\n%time 1\nprint(x)") is None
    assert syntax_problem("%time 1\n" * SYNTAX_TRANSFORMS) is None
    near_the_bound = "x = !ls\n%time 1\n" + "y = 1\n" * ((SYNTAX_TRANSFORM_CHARS - 20) // 6)
    assert len(near_the_bound) <= SYNTAX_TRANSFORM_CHARS and syntax_problem(near_the_bound) is None
