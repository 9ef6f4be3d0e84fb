"""The bus interface and its message envelope.

A message names its envelope's version ``v``, so that tasks of two releases (a rolling deploy) understand each
other or skip what they cannot read; ``origin`` names the task that published it (``Bus.origin``). A task receives
its own messages too: whatever happens is applied the same way on every task, through the bus.

Version 1 is one JSON object ``{"v": 1, "topic": ..., "origin": ..., "body": {...}}``. Version 2 carries
values of the body that are JSON text already (``raw``: a card's output, which every task writes as it is to
its sockets) apart from the rest, so that no task parses and serialises them again: a JSON line
``{"v": 2, "topic", "origin", "body", "raw": [[key, length], ...]}``, a newline, then the raw values' bytes one
after another. This release reads both and writes ``Bus.message_version``: 1 by default (its raw values inside the
body), since the release before it reads only version 1 and a rolling deploy runs both; 2 once every task reads it
(the next release's default).

Handlers run on the event loop, in the order messages were published, and must not block; one that
raises is logged and the others still run. A task's own message, when it comes back, is not decoded: the task
kept its envelope (``OWN_KEPT`` of them, its body copied, its raw values as they were), so that whatever the
version its result is neither parsed nor serialised again there.

While the bus is ``connected`` every task hears every message. While it is not (Redis unreachable), a task
hears only its own: what must hold regardless (revocations) is kept in the store, and whoever depends on
the bus re-reads it when the bus comes back (``reconnected``) and, meanwhile, on a timer of its own.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import json
import uuid
from typing import Any
from collections.abc import Callable

from traitlets import Enum, MetaHasTraits, default
from traitlets.config import LoggingConfigurable

from .. import json_io
from ..environment import setting
from ..logs import get_logger

log = get_logger("bi.bus")

MESSAGE_VERSION = 2  # the newest envelope this release writes (when told to: ``Bus.message_version``)
WRITTEN_VERSION = 1  # the envelope it writes by default: the previous release reads no other
READABLE_VERSIONS = frozenset({1, 2})  # the envelopes it reads; others are logged and skipped
OWN_KEPT = 64  # own messages whose envelope a task keeps until they come back (a topic no task listens to never does)


@dataclasses.dataclass(frozen=True)
class Envelope:
    """``raw``: values of the body kept as JSON text (``text`` and ``value`` read a key either way)."""

    topic: str
    origin: str
    body: dict[str, Any]
    version: int = MESSAGE_VERSION
    raw: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def text(self, key: str) -> bytes:
        """The body's ``key`` as JSON text: as it came if it came raw (never parsed), else serialised."""
        return self.raw[key] if key in self.raw else json_io.dumps(self.body[key])

    def value(self, key: str) -> Any:
        """The body's ``key``, parsed if it came raw."""
        return json.loads(self.raw[key]) if key in self.raw else self.body[key]


Handler = Callable[[Envelope], None]


def encode(envelope: Envelope) -> bytes:
    """``envelope`` in its ``version``: raw values after the JSON line (2) or spliced into the body (1)."""
    if envelope.version == 1:
        message = json_io.dumps({"v": 1, "topic": envelope.topic, "origin": envelope.origin, "body": envelope.body})
        if not envelope.raw:
            return message
        spliced = b",".join(json_io.dumps(key) + b":" + text for key, text in envelope.raw.items())
        return message[:-2] + (b"," if envelope.body else b"") + spliced + b"}}"  # the body is the last key
    head = json_io.dumps({"v": 2, "topic": envelope.topic, "origin": envelope.origin, "body": envelope.body,
                          "raw": [[key, len(text)] for key, text in envelope.raw.items()]})
    return b"".join((head, b"\n", *envelope.raw.values()))


def decode(data: bytes) -> Envelope | None:
    """The envelope in ``data``, or None (logged) if this release cannot read it."""
    try:
        line, _, rest = data.partition(b"\n")  # compact JSON has no newline: version 1 is all of it
        message = json.loads(line)  # written by our own tasks
        version = message.get("v") if isinstance(message, dict) else None
        if version not in READABLE_VERSIONS:
            log.warning("bus_message_skipped", reason="unknown_version", version=repr(version)[:40])
            return None
        raw, at = {}, 0
        for key, length in message["raw"] if version == 2 else ():
            raw[str(key)] = rest[at:at + length]
            at += length
        if at != len(rest):
            raise ValueError("the raw values' lengths do not add up")
        return Envelope(str(message["topic"]), str(message["origin"]), dict(message["body"]), version, raw)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("bus_message_skipped", reason="unreadable", error=str(exc)[:200])
        return None


class _BusMeta(abc.ABCMeta, MetaHasTraits):
    """Lets a traitlets configurable have abstract methods."""


class Bus(LoggingConfigurable, metaclass=_BusMeta):
    """Publish/subscribe between the API tasks. Subscribe before ``start()``."""

    message_version = Enum(sorted(READABLE_VERSIONS), help="The envelope version this task writes (BI_BUS_MESSAGE_VERSION): "
                           f"{WRITTEN_VERSION}, which the previous release reads, or {MESSAGE_VERSION} (each result "
                           "serialised once for every task) once no task of that release runs.").tag(config=True)

    @default("message_version")
    def _default_message_version(self) -> int:
        return int(setting("BI_BUS_MESSAGE_VERSION", str(WRITTEN_VERSION)))

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.origin = uuid.uuid4().hex[:16]  # this task, as its messages name it
        self.handlers: dict[str, list[Handler]] = {}
        self.reconnected: list[Callable[[], None]] = []  # called when the bus connects again after a loss
        self.disconnected_at: float | None = None  # time.monotonic() since the bus is down; None while up
        self._own: collections.OrderedDict[bytes, Envelope] = collections.OrderedDict()  # sent, until heard

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
    async def publish(self, topic: str, body: dict[str, Any], raw: dict[str, bytes] | None = None) -> None:
        """Send ``body`` on ``topic`` to every task, this one included; ``raw``: more of the body, as JSON text
        (``Envelope.text`` hands it on as it is)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop listening and disconnect. Idempotent."""

    def encode(self, topic: str, body: dict[str, Any], raw: dict[str, bytes] | None) -> bytes:
        """A message of this task, in the version it writes; its envelope is kept for ``deliver`` (``OWN_KEPT``)."""
        data = encode(Envelope(topic, self.origin, body, self.message_version, raw or {}))
        self._own[data] = Envelope(topic, self.origin, json.loads(json_io.dumps(body)), self.message_version, raw or {})
        if len(self._own) > OWN_KEPT:
            self._own.popitem(last=False)
        return data

    def deliver(self, data: bytes) -> None:
        """Hand the message in ``data`` to this task's handlers of its topic (one of this task's as it was sent)."""
        envelope = self._own.pop(data, None) or decode(data)
        if envelope is None:
            return
        for handler in self.handlers.get(envelope.topic, ()):
            try:
                handler(envelope)
            except Exception:
                log.exception("bus_handler_failed", topic=envelope.topic, origin=envelope.origin)
