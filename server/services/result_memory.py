"""Recent cached results in this task's memory, so that a cache hit costs no store round trip for the result.

A hit on the store reads the cache entry, checks its tables and reads its outputs blob: a few milliseconds
embedded, tens on DynamoDB and S3. ``CardRunner`` asks here first, by the same exact key (code, author, data
versions, parameters, kernel image: an entry is never stale in what it shows), after checking the caller's
rights as for any run. What can make an entry wrong is its deletion from the store (superseded, forced over,
or evicted by a quota, with its tables): ``OutputTables`` reports every table it deletes, and the task that
deleted it publishes the ids on the bus (``result.dropped``), so that every task forgets the results that
show them. Entries are kept at most ``seconds``, within ``max_bytes`` (their outputs' serialised size,
least recently used out first), serialised: each hit parses its own copy.

A task whose bus is down may miss another's deletions: it neither reads nor fills its memory while the bus
is down, and forgets everything when it connects again.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Iterable
from typing import Any

from .. import json_io
from ..bus import Bus, Envelope

DROPPED = "result.dropped"


@dataclasses.dataclass
class _Kept:
    until: float  # time.monotonic()
    result: bytes  # serialised: each hit gets its own copy, parsed in C
    output_ids: tuple[str, ...]


class ResultMemory:
    def __init__(self, bus: Bus, max_bytes: int, seconds: float):
        self.bus = bus
        self.max_bytes = max_bytes
        self.seconds = seconds
        self.bytes = 0
        self.drops = 0  # deletions heard so far: a result read from the store before one is not kept
        self._kept: collections.OrderedDict[str, _Kept] = collections.OrderedDict()
        self._keys_of: dict[str, set[str]] = {}  # output id -> keys of the results showing it
        bus.subscribe(DROPPED, self._on_dropped)
        bus.reconnected.append(self.clear)

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the result kept for ``key`` (None: read the store)."""
        kept = self._kept.get(key)
        if kept is None or not self.bus.connected:
            return None
        if kept.until <= time.monotonic():
            self._forget(key)
            return None
        self._kept.move_to_end(key)
        result: dict[str, Any] = json.loads(kept.result)
        return result

    def put(self, key: str, result: dict[str, Any], output_ids: Iterable[str], drops: int) -> None:
        """Keep ``result`` for ``key``, showing the tables ``output_ids``, read from the store when ``drops`` was
        the count of deletions heard (a deletion heard since may have been of these tables)."""
        if not self.bus.connected or self.seconds <= 0 or drops != self.drops:
            return
        data = json_io.dumps(result)
        if len(data) > self.max_bytes:
            return
        self._forget(key)
        kept = _Kept(time.monotonic() + self.seconds, data, tuple(output_ids))
        self._kept[key] = kept
        self.bytes += len(data)
        for output_id in kept.output_ids:
            self._keys_of.setdefault(output_id, set()).add(key)
        while self.bytes > self.max_bytes:
            self._forget(next(iter(self._kept)))

    async def dropped(self, output_ids: list[str]) -> None:
        """These tables were deleted from the store: forget the results showing them, here and on every task."""
        self._drop(output_ids)
        await self.bus.publish(DROPPED, {"output_ids": output_ids})

    def clear(self) -> None:
        self.drops += 1
        self._kept.clear()
        self._keys_of.clear()
        self.bytes = 0

    def _on_dropped(self, envelope: Envelope) -> None:
        self._drop([str(output_id) for output_id in envelope.body["output_ids"]])

    def _drop(self, output_ids: Iterable[str]) -> None:
        self.drops += 1
        for output_id in output_ids:
            for key in self._keys_of.pop(output_id, set()):
                self._forget(key)

    def _forget(self, key: str) -> None:
        kept = self._kept.pop(key, None)
        if kept is None:
            return
        self.bytes -= len(kept.result)
        for output_id in kept.output_ids:
            keys = self._keys_of.get(output_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_of[output_id]
