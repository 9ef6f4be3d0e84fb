"""Tornado's HTTP server with the bounds an anonymous caller meets first: timeouts and a connection cap.

Tornado has one timer for a request's head, from the moment it waits for it; here a new connection
gets ``header_timeout`` for its first request and a kept-alive one ``idle_timeout`` for each next
one. Each client address may hold ``max_connections_per_client`` connections that still speak HTTP
(a websocket leaves the count once upgraded, after sign-in); further ones are closed at once.
Connections from trusted proxies are not counted: they carry many clients.
"""

from __future__ import annotations

import collections
import copy
from typing import Any

import structlog
from tornado import httpserver, httputil, iostream

from .client_address import TrustedProxies

log = structlog.get_logger("bi.http")


class BIHTTPServer(httpserver.HTTPServer):
    def initialize(self, request_callback: Any, *, trusted_proxies: TrustedProxies,  # type: ignore[override]
                   header_timeout: float, idle_timeout: float, max_connections_per_client: int,
                   **kwargs: Any) -> None:
        """``kwargs``: those of ``tornado.httpserver.HTTPServer`` (``body_timeout``, ``max_body_size``...)."""
        super().initialize(request_callback, idle_connection_timeout=header_timeout, **kwargs)
        self.trusted_proxies = trusted_proxies
        self.max_connections_per_client = max_connections_per_client
        self._kept_alive_params = copy.copy(self.conn_params)
        self._kept_alive_params.header_timeout = idle_timeout
        self._open: collections.Counter[str] = collections.Counter()
        self._client_of: dict[iostream.IOStream, str] = {}
        self._kept_alive: set[iostream.IOStream] = set()
        self._capped: set[str] = set()

    def handle_stream(self, stream: iostream.IOStream, address: Any) -> None:
        client = address[0] if isinstance(address, tuple) else ""
        if not self.trusted_proxies.trusts(client):
            if self._open[client] >= self.max_connections_per_client:
                if client not in self._capped:
                    self._capped.add(client)
                    log.warning("connections_capped", ip=client, limit=self.max_connections_per_client)
                stream.close()
                return
            self._open[client] += 1
            self._client_of[stream] = client
        super().handle_stream(stream, address)

    def start_request(self, server_conn: Any, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        stream = server_conn.stream
        if stream in self._kept_alive:
            request_conn.params = self._kept_alive_params  # type: ignore[attr-defined]
        else:
            self._kept_alive.add(stream)
        return super().start_request(server_conn, request_conn)

    def on_close(self, server_conn: Any) -> None:
        self._kept_alive.discard(server_conn.stream)
        client = self._client_of.pop(server_conn.stream, None)
        if client is not None:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]
            if self._open[client] < self.max_connections_per_client:
                self._capped.discard(client)
        super().on_close(server_conn)
