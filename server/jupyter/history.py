"""A Jupyter kernel's input history, kept by the server, answering ``history_request`` as IPython does.

Kernels keep no history themselves (no history database under a read-only root), so the server
keeps what each of its kernels ran: the code and execution count of every ``execute_input`` the
kernel publishes, the last ``JUPYTER_HISTORY_ENTRIES`` of at most ``JUPYTER_HISTORY_CHARS`` together (an input
longer than that alone is not kept). Each kernel the session had is an IPython
session of its own, numbered from 1 (a restart starts the next). The reply has the inputs only:
with ``output``, each entry's output is ``None``.

- ``tail``: the last ``n`` inputs;
- ``range``: lines ``start`` to ``stop`` (exclusive; None: to the end) of ``session`` (0 or
  absent: the current one; negative: counted back from it);
- ``search``: inputs matching the glob ``pattern`` (``*`` and ``?``), the last ``n`` of them
  (all when ``n`` is absent), each input once with ``unique``.
"""

from __future__ import annotations

import collections
import fnmatch
from typing import Any

from ..limits import JUPYTER_HISTORY_CHARS, JUPYTER_HISTORY_ENTRIES

Entry = tuple[int, int, str]  # session, line (execution count), input


class InputHistory:
    def __init__(self, size: int = JUPYTER_HISTORY_ENTRIES, chars: int = JUPYTER_HISTORY_CHARS):
        self.session = 1
        self.size = size
        self.chars = chars
        self._kept = 0  # characters of the inputs kept
        self._entries: collections.deque[Entry] = collections.deque()

    def add(self, line: Any, code: Any) -> None:
        """Record an ``execute_input`` (a run without ``store_history`` repeats the last line: not kept); the
        oldest go past ``size`` inputs or ``chars`` characters."""
        if not isinstance(line, int) or not isinstance(code, str) or len(code) > self.chars:
            return
        if self._entries and self._entries[-1][:2] == (self.session, line):
            return
        self._entries.append((self.session, line, code))
        self._kept += len(code)
        while len(self._entries) > self.size or self._kept > self.chars:
            self._kept -= len(self._entries.popleft()[2])

    def new_session(self) -> None:
        """The kernel was replaced: what it runs from now on is the next session."""
        self.session += 1

    def reply(self, request: dict[str, Any]) -> dict[str, Any]:
        """The content of the ``history_reply`` to a ``history_request``'s content."""
        kind = request.get("hist_access_type")
        if kind == "tail":
            found = self._last(list(self._entries), request.get("n"))
        elif kind == "range":
            found = self._range(request.get("session"), request.get("start"), request.get("stop"))
        elif kind == "search":
            found = self._search(request.get("pattern"), request.get("n"), bool(request.get("unique")))
        else:
            return {"status": "error", "ename": "ValueError", "evalue": f"unknown hist_access_type {kind!r}",
                    "traceback": [], "history": []}
        output = bool(request.get("output"))
        return {"status": "ok",
                "history": [[session, line, [code, None] if output else code] for session, line, code in found]}

    @staticmethod
    def _last(entries: list[Entry], n: Any) -> list[Entry]:
        return entries[-n:] if isinstance(n, int) and n > 0 else entries if n is None else []

    def _range(self, session: Any, start: Any, stop: Any) -> list[Entry]:
        wanted = self.session if not isinstance(session, int) or session == 0 else \
            self.session + session if session < 0 else session
        first = start if isinstance(start, int) else 1
        return [entry for entry in self._entries if entry[0] == wanted and entry[1] >= first
                and (not isinstance(stop, int) or entry[1] < stop)]

    def _search(self, pattern: Any, n: Any, unique: bool) -> list[Entry]:
        glob = pattern if isinstance(pattern, str) and pattern else "*"
        found = [entry for entry in self._entries if fnmatch.fnmatchcase(entry[2], glob)]
        if unique:
            latest = {entry[2]: entry for entry in found}
            found = [entry for entry in found if latest[entry[2]] is entry]
        return self._last(found, n)
