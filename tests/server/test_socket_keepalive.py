"""Every websocket is pinged by the server, so that CloudFront (which closes a websocket after 10 minutes
without a byte from the origin) never cuts an idle dashboard or editor."""

from __future__ import annotations

import asyncio

from server import limits

from .test_card_socket import connect
from .test_dashboards import owner_with_dashboard


async def test_an_idle_socket_is_pinged_and_stays_open(api, monkeypatch):
    assert 0 < limits.SOCKET_PING_SECONDS < 600
    monkeypatch.setattr(limits, "SOCKET_PING_SECONDS", 0.2)
    token, dashboard = await owner_with_dashboard(api)
    socket = await connect(api, token, path=f"/api/dashboards/{dashboard['id']}/ws")
    pings: list[bytes] = []
    socket.connection.on_ping = pings.append
    # The client reads what comes (a snapshot, the card's output, presence), which lets it see pings.
    reading = asyncio.ensure_future(asyncio.gather(*(socket.connection.read_message() for _ in range(10))))
    await asyncio.sleep(1.5)
    assert len(pings) >= 3
    assert socket.connection.close_code is None and not reading.done()  # its pongs keep it open
    reading.cancel()
