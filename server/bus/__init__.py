"""The bus between API tasks: publish/subscribe of versioned messages on named topics.

``base.Bus`` is the one interface handlers and services use; ``local.LocalBus`` delivers inside
this process (the embedded default), ``redis_bus.RedisBus`` through Redis (ElastiCache, Valkey,
``redis-server``) to every API task, this one included. ``make_bus`` picks by the configured URL.
"""

from __future__ import annotations

from typing import Any

from .base import MESSAGE_VERSION, Bus, Envelope, Handler
from .local import LocalBus
from .redis_bus import RedisBus

__all__ = ["MESSAGE_VERSION", "Bus", "Envelope", "Handler", "LocalBus", "RedisBus", "make_bus"]


def make_bus(redis_url: str, **kwargs: Any) -> Bus:
    """A Redis bus on ``redis_url``, or without one the in-process bus."""
    if redis_url:
        return RedisBus(url=redis_url, **kwargs)
    return LocalBus(**kwargs)
