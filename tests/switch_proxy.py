"""A TCP proxy in front of several ``bi serve`` processes, as a load balancer with them as its targets: each new
connection goes to the first upstream that accepts it, so once one dies the next connections reach the next.
A connection ends with its upstream's (a websocket to a killed process drops, and its client reconnects).

The proxy runs its own event loop on a thread, so sync and async tests share it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class SwitchingProxy:
    """``ports``: the upstreams on 127.0.0.1, in order of preference (``ports`` may be changed later)."""

    def __init__(self, ports: list[int]):
        self.ports = list(ports)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._connections: set[asyncio.Task[None]] = set()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._forward(reader, writer)
        except asyncio.CancelledError:
            pass  # the proxy closes: the connection ends (and its task with no error to report)
        finally:
            self._connections.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for port in list(self.ports):
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        else:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    def close(self) -> None:
        """Stop listening, end every connection, and close the loop with nothing of it left pending."""
        async def stop() -> None:
            self._server.close()
            for task in self._connections:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await asyncio.sleep(0.1)  # the transports' closing callbacks
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side ends, then end the writer's side (both pipes of a connection end together)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
