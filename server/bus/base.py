"""The bus interface and its message envelope.

A message is a JSON object ``{"v": 1, "topic": ..., "origin": ..., "body": {...}}``: ``v`` is the
envelope's version, so that tasks of two releases (a rolling deploy) understand each other or skip
what they cannot read; ``origin`` names the task that published it (``Bus.origin``). A task receives
its own messages too: whatever happens is applied the same way on every task, through the bus.

Handlers run on the event loop, in the order messages were published, and must not block; one that
raises is logged and the others still run.

While the bus is ``connected`` every task hears every message. While it is not (Redis unreachable), a task
hears only its own: what must hold regardless (revocations) is kept in the store, and whoever depends on
the bus re-reads it when the bus comes back (``reconnected``) and, meanwhile, on a timer of its own.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import uuid
from typing import Any
from collections.abc import Callable

from traitlets import MetaHasTraits
from traitlets.config import LoggingConfigurable

from .. import json_io
from ..logs import get_logger

log = get_logger("bi.bus")

MESSAGE_VERSION = 1  # the envelope this release writes
READABLE_VERSIONS = frozenset({1})  # the envelopes it reads; others are logged and skipped


@dataclasses.dataclass(frozen=True)
class Envelope:
    topic: str
    origin: str
    body: dict[str, Any]
    version: int = MESSAGE_VERSION


Handler = Callable[[Envelope], None]


def encode(envelope: Envelope) -> bytes:
    return json_io.dumps({"v": envelope.version, "topic": envelope.topic, "origin": envelope.origin,
                          "body": envelope.body})


def decode(raw: bytes) -> Envelope | None:
    """The envelope in ``raw``, or None (logged) if this release cannot read it."""
    try:
        message = json.loads(raw)  # written by our own tasks
        version = message.get("v") if isinstance(message, dict) else None
        if version not in READABLE_VERSIONS:
            log.warning("bus_message_skipped", reason="unknown_version", version=repr(version)[:40])
            return None
        return Envelope(str(message["topic"]), str(message["origin"]), dict(message["body"]), version)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("bus_message_skipped", reason="unreadable", error=str(exc)[:200])
        return None


class _BusMeta(abc.ABCMeta, MetaHasTraits):
    """Lets a traitlets configurable have abstract methods."""


class Bus(LoggingConfigurable, metaclass=_BusMeta):
    """Publish/subscribe between the API tasks. Subscribe before ``start()``."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.origin = uuid.uuid4().hex[:16]  # this task, as its messages name it
        self.handlers: dict[str, list[Handler]] = {}
        self.reconnected: list[Callable[[], None]] = []  # called when the bus connects again after a loss
        self.disconnected_at: float | None = None  # time.monotonic() since the bus is down; None while up

    @property
    def connected(self) -> bool:
        """Whether every task hears what this one publishes (and this one every task)."""
        return self.disconnected_at is None

    def subscribe(self, topic: str, handler: Handler) -> None:
        self.handlers.setdefault(topic, []).append(handler)

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and listen to the subscribed topics."""

    @abc.abstractmethod
    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        """Send ``body`` on ``topic`` to every task, this one included."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop listening and disconnect. Idempotent."""

    def deliver(self, raw: bytes) -> None:
        """Hand the message in ``raw`` to this task's handlers of its topic."""
        envelope = decode(raw)
        if envelope is None:
            return
        for handler in self.handlers.get(envelope.topic, ()):
            try:
                handler(envelope)
            except Exception:
                log.exception("bus_handler_failed", topic=envelope.topic, origin=envelope.origin)
