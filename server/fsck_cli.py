"""``bi fsck [--repair] [--grace=SECONDS]``: check the store for what faults left behind (``services/fsck.py``).

Prints one line per problem (kind, subject, found or repaired) and exits 1 while any is left
unrepaired, 0 when the store is consistent.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, cast

from traitlets import Bool, Float

from .app import BIApp
from .logs import configure_logging
from .services.fsck import GRACE_SECONDS, Problem, fsck


class FsckApp(BIApp):
    description = ("Check the store for records without blobs, blobs without records and deletions cut short;"
                   " with --repair, fix what can be fixed.")
    repair = Bool(False, help="Fix what can be fixed (delete orphan blobs, finish deletions).").tag(config=True)
    grace_seconds = Float(GRACE_SECONDS, help="Blobs younger than this are never orphans (an upload may be "
                                              "writing their record).").tag(config=True)
    aliases = {**BIApp.aliases, "grace": "FsckApp.grace_seconds"}
    flags = {"repair": ({"FsckApp": {"repair": True}}, "Fix what can be fixed.")}
    subcommands: dict[str, Any] = {}

    def start(self) -> None:
        configure_logging(cast(int, self.log_level), sys.stderr)
        problems = asyncio.run(self._check())
        for problem in problems:
            sys.stdout.write(problem.line() + "\n")
        left = [problem for problem in problems if not problem.repaired]
        sys.stderr.write(f"{len(problems)} problem(s) found, {len(problems) - len(left)} repaired.\n")
        self.exit(1 if left else 0)

    async def _check(self) -> list[Problem]:
        store = self.make_store()
        await store.open()
        try:
            return await fsck(store, self.repair, self.grace_seconds)
        finally:
            await store.close()
