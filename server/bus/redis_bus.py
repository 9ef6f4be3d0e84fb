"""The bus on Redis pub/sub: every API task subscribes to one channel per topic.

``url`` is ``redis://`` or, for TLS (ElastiCache's encryption in transit), ``rediss://``; a password
(AUTH, ElastiCache's auth token) or user and password go in it: ``rediss://:TOKEN@host:6379/0``, or the
password in ``password`` (``BI_REDIS_PASSWORD``: a secret apart from the URL).
``ca_file`` names the CA that signs the server's certificate when the system's do not.

While Redis cannot be reached, publishing delivers to this task alone (its own viewers still see
their runs) and the listener reconnects every ``reconnect_seconds``, subscribing again; once it has, the
``reconnected`` callbacks run (what was missed meanwhile is read again from the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from traitlets import Float, Unicode, default

from ..environment import setting
from .base import Bus, log


class RedisBus(Bus):
    url = Unicode(help="Redis URL (redis:// or rediss:// for TLS), with the AUTH password in it.").tag(config=False)
    channel_prefix = Unicode("bi:", help="Prefix of the bus's channel names (several deployments on one "
                                         "Redis).").tag(config=True)
    password = Unicode(help="AUTH password when the URL has none (BI_REDIS_PASSWORD).").tag(config=True)
    ca_file = Unicode(help="CA bundle that verifies the Redis server's TLS certificate (empty: the "
                           "system's).").tag(config=True)
    reconnect_seconds = Float(1.0, help="Seconds between attempts to reach Redis again.").tag(config=True)
    socket_timeout = Float(5.0, help="Seconds a Redis command may take before it fails.").tag(config=True)

    @default("password")
    def _default_password(self) -> str:
        return setting("BI_REDIS_PASSWORD")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        options: dict[str, Any] = {"socket_timeout": self.socket_timeout,
                                   "socket_connect_timeout": self.socket_timeout, "health_check_interval": 15}
        if self.password:
            options["password"] = self.password
        if self.ca_file and self.url.startswith("rediss://"):
            options["ssl_ca_certs"] = self.ca_file
        self._client = aioredis.Redis.from_url(self.url, **options)
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._sending = asyncio.Lock()  # one publish at a time: messages leave in the order they were sent
        self.disconnected_at = time.monotonic()  # not yet connected

    def channel(self, topic: str) -> str:
        return self.channel_prefix + topic

    async def start(self) -> None:
        """Subscribe; returns once subscribed, or after the first failure (it keeps trying)."""
        self._listener = asyncio.create_task(self._listen())
        await self._subscribed.wait()

    async def _listen(self) -> None:
        topics = {self.channel(topic): topic for topic in self.handlers}
        first = True
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*topics)
                down = time.monotonic() - (self.disconnected_at or time.monotonic())
                self.disconnected_at = None
                log.info("bus_connected", channels=len(topics), down_seconds=round(down, 1))
                self._subscribed.set()
                if not first:
                    self._reconnected()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "message":
                        self.deliver(message["data"])
            except (RedisError, OSError) as exc:
                if self.connected or not self._subscribed.is_set():
                    log.warning("bus_disconnected", error=str(exc)[:200])
                if self.connected:
                    self.disconnected_at = time.monotonic()
            finally:
                first = False
                self._subscribed.set()  # start() waits for the first attempt, not for success
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self.reconnect_seconds)

    def _reconnected(self) -> None:
        self._own.clear()  # what this task sent while it was not subscribed never comes back
        for callback in self.reconnected:
            try:
                callback()
            except Exception:
                log.exception("bus_reconnected_callback_failed")

    async def publish(self, topic: str, body: dict[str, Any], raw: dict[str, bytes] | None = None) -> None:
        data = self.encode(topic, body, raw)
        try:
            async with self._sending:
                await self._client.publish(self.channel(topic), data)
        except (RedisError, OSError) as exc:
            log.warning("bus_publish_failed", topic=topic, error=str(exc)[:200])
            self.deliver(data)  # the other tasks miss it; this one's viewers do not

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await self._client.aclose()
