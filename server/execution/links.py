"""The server's ZeroMQ links to a kernel: bounded messages, and a watch for links the bound cut.

Every socket of a kernel client refuses a message part over ``max_bytes`` (``zmq.MAXMSGSIZE``)
while reading its header, before anything is allocated; ZeroMQ then drops that connection (and
reconnects), with no error to the reader. ZeroMQ holds every part of a message until its last
one arrives, so the whole message is bounded before the server: the agent's relay, which the
server always reaches kernels through, drops the link once a message passes its bound. ``dropped`` waits for such a drop on any channel, so
that the pool can tell a kernel that sent too much (it is alive, yet a link dropped) from one that
died (its exit comes from the agent). Each JSON part of a message is checked for depth and counted
before it is parsed (``json_io.check_shape``, ``limits.KERNEL_JSON_DEPTH``, ``limits.KERNEL_JSON_VALUES``):
a part past either is a bad part (``ValueError``), dropped like one with a bad signature.
``message_cost`` estimates what a message costs once parsed, for the pool's ``DecodeBudget``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from zmq.utils.monitor import parse_monitor_message

from .. import json_io
from ..limits import KERNEL_JSON_DEPTH, KERNEL_JSON_VALUES, KERNEL_RECEIVE_MESSAGES, KERNEL_VALUE_BYTES
from ..errors import BIError

CHANNELS = ("shell", "iopub", "stdin", "control")


def bound_messages(client: AsyncKernelClient, max_bytes: int) -> None:
    """Make every socket ``client`` creates from now on refuse message parts over ``max_bytes`` and hold at
    most ``KERNEL_RECEIVE_MESSAGES`` messages unread (then the kernel waits)."""
    client.context.setsockopt(zmq.MAXMSGSIZE, max_bytes)
    client.context.setsockopt(zmq.RCVHWM, KERNEL_RECEIVE_MESSAGES)
    client.session.unpack = unpack_part


def unpack_part(data: bytes) -> Any:
    """One JSON part of a kernel message within the depth and values allowed; ``ValueError`` if not."""
    _values(data)
    return json.loads(data)


def message_cost(parts: list[bytes]) -> int:
    """Bytes the message of ``parts`` (a signature, four JSON parts and buffers) costs once parsed, about;
    ``ValueError`` for a JSON part ``unpack_part`` would refuse."""
    return sum(len(part) for part in parts) + KERNEL_VALUE_BYTES * sum(_values(part) for part in parts[1:5])


def _values(data: bytes) -> int:
    try:
        return json_io.check_shape(data, KERNEL_JSON_DEPTH, KERNEL_JSON_VALUES)
    except BIError as exc:
        raise ValueError(exc.message) from None


async def dropped(client: AsyncKernelClient) -> str:
    """Wait until a connection of ``client`` (its channels started) to its kernel drops; the channel's name."""
    sockets = {name: getattr(client, f"{name}_channel").socket for name in CHANNELS}
    monitors = {name: socket.get_monitor_socket(zmq.EVENT_DISCONNECTED) for name, socket in sockets.items()}
    waits = [asyncio.ensure_future(_disconnected(name, monitor)) for name, monitor in monitors.items()]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        return done.pop().result()
    finally:
        for wait in waits:
            wait.cancel()
        for name, monitor in monitors.items():
            if not sockets[name].closed:  # the client may have stopped its channels already
                with contextlib.suppress(zmq.ZMQError):
                    sockets[name].disable_monitor()
            monitor.close(linger=0)


async def _disconnected(name: str, monitor: zmq.asyncio.Socket) -> str:
    while True:
        event = parse_monitor_message(await monitor.recv_multipart())
        if event["event"] == zmq.EVENT_DISCONNECTED:
            return name
