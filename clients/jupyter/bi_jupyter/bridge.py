"""One kernel of a BI cards server, served on the local ZeroMQ ports of a Jupyter connection file.

The client (jupyter_client's KernelManager: nbclient, papermill, jupyter console) sees an ordinary
kernel process. This process starts a kernel on the server (``POST /api/kernels``) with the
personal access token in ``BI_JUPYTER_TOKEN``, opens its channels websocket (``v1.kernel.websocket.jupyter.org``:
a message's parts travel untouched) and relays: a client's message, once its signature checks with the
connection file's key, goes to the server; a server's message is signed with that key and sent to the
client that asked (replies by their parent's ``msg_id``; iopub to every subscriber). Shell messages wait for the
first iopub subscriber: a client's sockets reconnect to the ports (bound once the server's kernel runs) each on
its own timer, and a cell run before its client's subscription arrived would publish its outputs and its idle
status to no one (``jupyter console`` then waits for that status forever). The heartbeat is
answered here. Interrupts travel as ``interrupt_request`` on control (the kernel spec's
``interrupt_mode`` is ``message``). It ends when the kernel replies to a ``shutdown_request`` or the
server closes the websocket (the close reason goes to stderr: a culled or revoked kernel says why),
on SIGTERM, when the client that started it is gone (as ipykernel's parent poller does), and, loudly, when
one of its relays fails; it shuts its kernel down on the server as it goes. Messages from the client's
ports that are malformed or not signed with the connection file's key are dropped (anyone on the machine
may send them). With ``transport: ipc`` (``--KernelManager.transport=ipc``: jupyter_client puts the sockets
next to the connection file, in the user's private runtime folder) no other local user reaches the
ports; over TCP on 127.0.0.1, as with any Jupyter kernel, every local user can read iopub.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import signal
import sys
import threading
import urllib.parse
from typing import Any, cast

import zmq
import zmq.asyncio
from jupyter_client.session import Session
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

V1 = "v1.kernel.websocket.jupyter.org"
DELIMITER = b"<IDS|MSG>"
CHANNELS = {"shell": zmq.ROUTER, "control": zmq.ROUTER, "stdin": zmq.ROUTER, "iopub": zmq.XPUB}
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
REMEMBERED_REQUESTS = 10_000
TIMEOUT_SECONDS = 60  # a kernel start waits for the server's pool
PARENT_POLL_SECONDS = 1.0


def encode_v1(channel: str, parts: list[bytes]) -> bytes:
    pieces = [channel.encode(), *parts]
    offsets = [8 * (len(pieces) + 2)]
    for piece in pieces:
        offsets.append(offsets[-1] + len(piece))
    return b"".join(n.to_bytes(8, "little") for n in [len(offsets), *offsets]) + b"".join(pieces)


def decode_v1(frame: bytes) -> tuple[str, list[bytes]]:
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1):8 * (i + 2)], "little") for i in range(count)]
    pieces = [frame[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]
    return pieces[0].decode(), pieces[1:]


def _heartbeat(context: zmq.Context, address: str) -> None:
    socket = context.socket(zmq.ROUTER)
    socket.bind(address)
    try:
        zmq.proxy(socket, socket)  # echo, as ipykernel's heartbeat does
    except zmq.ContextTerminated:
        socket.close(linger=0)


class Bridge:
    def __init__(self, url: str, connection: dict[str, Any], token: str):
        self.url = url.rstrip("/")
        self.connection = connection
        self.headers = {"Authorization": f"token {token}"}
        self.session = Session(key=connection["key"].encode(), signature_scheme=connection["signature_scheme"])
        self.context = zmq.asyncio.Context()
        self.sockets: dict[str, zmq.asyncio.Socket] = {}
        self.requests: dict[str, list[bytes]] = {}  # msg_id -> the asking client's identities
        self.kernel_id: str | None = None
        self.websocket: WebSocketClientConnection | None = None
        self.subscribed: asyncio.Future[None] | None = None
        self.done = asyncio.Event()
        self.status = 0

    def address(self, channel: str) -> str:
        transport, ip, port = self.connection["transport"], self.connection["ip"], self.connection[f"{channel}_port"]
        return f"ipc://{ip}-{port}" if transport == "ipc" else f"{transport}://{ip}:{port}"

    async def start(self) -> None:
        http = AsyncHTTPClient()
        response = await http.fetch(f"{self.url}/api/kernels", method="POST", body="{}",
                                    headers={**self.headers, "Content-Type": "application/json"},
                                    connect_timeout=TIMEOUT_SECONDS, request_timeout=TIMEOUT_SECONDS)
        self.kernel_id = json.loads(response.body)["id"]
        scheme = "wss" if self.url.startswith("https") else "ws"
        ws_url = f"{scheme}{self.url.removeprefix('https').removeprefix('http')}/api/kernels/" \
                 f"{urllib.parse.quote(self.kernel_id)}/channels"
        request = HTTPRequest(ws_url, headers=self.headers, connect_timeout=TIMEOUT_SECONDS)
        self.websocket = await websocket_connect(request, subprotocols=[V1],
                                                 max_message_size=MAX_MESSAGE_BYTES)
        for channel, kind in CHANNELS.items():
            socket = self.sockets[channel] = self.context.socket(kind)
            socket.bind(self.address(channel))
        self.subscribed = asyncio.ensure_future(self._first_subscriber())
        threading.Thread(target=_heartbeat, args=(zmq.Context.instance(), self.address("hb")), daemon=True).start()

    async def _first_subscriber(self) -> None:
        """Returns once a client has subscribed to iopub (XPUB passes a subscription on as ``b"\\x01" + topic``)."""
        while (await self.sockets["iopub"].recv())[:1] != b"\x01":
            pass

    def _signed(self, frames: list[bytes]) -> tuple[list[bytes], list[bytes], str] | None:
        """The identities, parts and ``msg_id`` of a client's message, or None unless it is signed with the
        connection file's key (ZeroMQ frames from anyone on the machine: malformed ones are dropped, as
        ipykernel drops them)."""
        try:
            identities, parts = self.session.feed_identities(frames)
        except ValueError:
            return None
        parts = cast(list[bytes], parts)  # recv_multipart copies: bytes, not Frames
        message = parts[1:]
        if not parts or len(message) < 4 or not hmac.compare_digest(self.session.sign(message[:4]), parts[0]):
            return None
        try:
            header = json.loads(message[0])
        except ValueError:
            return None
        return cast(list[bytes], identities), message, str(header.get("msg_id", "")) if isinstance(header, dict) else ""

    async def from_client(self, channel: str) -> None:
        socket = self.sockets[channel]
        while True:
            if (signed := self._signed(await socket.recv_multipart())) is None:
                continue
            identities, message, msg_id = signed
            if channel == "shell":
                assert self.subscribed is not None
                await self.subscribed
            if len(self.requests) >= REMEMBERED_REQUESTS:
                self.requests.pop(next(iter(self.requests)))
            self.requests[msg_id] = identities
            assert self.websocket is not None
            await self.websocket.write_message(encode_v1(channel, message), binary=True)

    async def from_server(self) -> None:
        assert self.websocket is not None
        while (frame := await self.websocket.read_message()) is not None:
            if not isinstance(frame, bytes):
                continue
            channel, parts = decode_v1(frame)
            if channel not in self.sockets:
                continue
            signed = [DELIMITER, self.session.sign(parts[:4]), *parts]
            if channel == "iopub":
                await self.sockets[channel].send_multipart(signed)
                continue
            parent = json.loads(parts[1]).get("msg_id", "")
            identities = self.requests.get(parent)
            if identities is not None:
                await self.sockets[channel].send_multipart([*identities, *signed])
            if channel == "control" and json.loads(parts[0]).get("msg_type") == "shutdown_reply":
                return
        code, reason = self.websocket.close_code, self.websocket.close_reason
        print(f"bi-jupyter: the server closed the kernel's connection ({code}): {reason or 'no reason given'}",
              file=sys.stderr)
        self.status = 1

    async def shut_down(self) -> None:
        if self.subscribed is not None:
            self.subscribed.cancel()
        if self.websocket is not None:
            self.websocket.close()
        if self.kernel_id is not None:
            try:
                await AsyncHTTPClient().fetch(f"{self.url}/api/kernels/{urllib.parse.quote(self.kernel_id)}",
                                              method="DELETE", headers=self.headers)
            except (HTTPClientError, OSError):
                pass  # gone already (culled, or shut down by the request just relayed)
        for socket in self.sockets.values():
            socket.close(linger=1000)


async def parent_gone() -> None:
    """Returns once the process that started this one has exited."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_POLL_SECONDS)


async def run(url: str, connection_file: str) -> int:
    token = os.environ.get("BI_JUPYTER_TOKEN", "")
    if not token:
        print("bi-jupyter: set BI_JUPYTER_TOKEN to a personal access token of the server (POST /api/me/tokens)",
              file=sys.stderr)
        return 2
    with open(connection_file) as file:
        bridge = Bridge(url, json.load(file), token)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts come as messages; a terminal's Ctrl+C is the client's
    try:
        await bridge.start()
    except HTTPClientError as exc:
        body = exc.response.body.decode(errors="replace") if exc.response is not None else str(exc)
        print(f"bi-jupyter: the server refused to start a kernel ({exc.code}): {body}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    relays: dict[asyncio.Future[Any], str] = {asyncio.ensure_future(bridge.from_client(channel)): channel
                                              for channel in ("shell", "control", "stdin")}
    relays[asyncio.ensure_future(bridge.from_server())] = "server"
    ends = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(parent_gone())]
    done, _ = await asyncio.wait([*relays, *ends], return_when=asyncio.FIRST_COMPLETED)
    for task in done & relays.keys():
        if task.exception() is not None:
            print(f"bi-jupyter: the {relays[task]} relay stopped ({task.exception()!r}); the kernel is shut down",
                  file=sys.stderr)
            bridge.status = 1
    for task in [*relays, *ends]:
        task.cancel()
    await bridge.shut_down()
    return bridge.status
