"""The in-process bus of the embedded default: one task, nothing to connect to."""

from __future__ import annotations

from typing import Any

from .base import Bus


class LocalBus(Bus):
    """Delivers each message to this process's handlers before ``publish`` returns.

    Messages are encoded as on Redis and handed back as a task's own are there (``Bus.deliver``), so handlers
    get the same copies either way."""

    async def start(self) -> None:
        pass

    async def publish(self, topic: str, body: dict[str, Any], raw: dict[str, bytes] | None = None) -> None:
        self.deliver(self.encode(topic, body, raw))

    async def close(self) -> None:
        pass
